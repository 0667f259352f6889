"""The cache's index, one per engine in a few shard files (a damaged index is a miss, concurrent writers
merge, deleted files' entries and old engines' indexes go),
the table of rule codes the CLI validates against (equal to the registry), and a run answered from the
cache that imports neither libcst nor the rules (the real CLI in a child process, with ``-X importtime``),
also when it settles questions about callers and writes SARIF (the rules' entries kept in the cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ADAM_L2, CLEAN, cache_entries, write

from torchsanity.analyzers import Config, FileReport, all_rules, analyze_source
from torchsanity.analyzers.codes import CODES, RULES
from torchsanity.server.check_cache import Cache, file_hash

NO_TORCH = "def add(a, b):\n    return a + b\n"
CALLER_QUESTIONS = Path(__file__).resolve().parents[1] / "analyzers" / "projects" / "eval_called_under_no_grad"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frozen_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a child process that runs a copy of the package as it is now: an edit of the
    working tree during the test (a new engine, so a new cache) cannot change what the test sees."""
    target = tmp_path_factory.mktemp("package")
    (target / "torchsanity").mkdir()
    for name in ("analyzers", "server", "probes"):
        shutil.copytree(REPO / name, target / "torchsanity" / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import torchsanity.server as s; print(s.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(target)
    return env


def _json(cli, *args):
    result = cli("check", "--format", "json", *args)
    assert result.code in (0, 1), result.err
    return json.loads(result.out)


def _tree(folder: Path, count: int = 6) -> None:
    for i in range(count):
        write(folder / f"m{i}.py", (ADAM_L2, CLEAN, NO_TORCH)[i % 3])


# ---- the table of codes -----------------------------------------------------------------------------


def test_the_code_table_is_the_registry():
    registry = tuple((rule.code, rule.name) for rule in all_rules())
    table = "".join(f'    ("{code}", "{name}"),\n' for code, name in registry)
    assert RULES == registry, f"analyzers/codes.py is stale; its RULES should read:\n{table}"


def test_a_code_the_table_lacks_is_still_looked_up_in_the_registry(monkeypatch):
    """A rule added without its line in the table is not refused: the registry answers after the table."""
    from torchsanity.analyzers import codes
    from torchsanity.analyzers.config import unknown_selector_message

    monkeypatch.setattr(codes, "CODES", tuple(c for c in codes.CODES if c != "SAN504"))
    assert unknown_selector_message("SAN504") is None
    assert unknown_selector_message("SAN504", exact=True) is None
    assert "did you mean" in unknown_selector_message("SAN5999")


# ---- what a cached run imports ----------------------------------------------------------------------


def _imports(cwd: Path, env: dict[str, str], fmt: str, *args: str) -> tuple[str, set[str]]:
    """The output of a real `check` child process and the modules it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "torchsanity.server", "check", "--format", fmt,
                           *args, "."], cwd=cwd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.stdout, modules


@pytest.mark.parametrize("fmt, extra", [
    ("json", []),
    ("json", ["--select", "SAN5,SAN101", "--ignore", "SAN502"]),
    ("full", []),  # the default on a terminal: source lines with carets, read without the parser
    ("sarif", []),  # the rules' entries (their pages) kept in the cache by the first run
])
def test_a_cached_run_imports_neither_libcst_nor_the_rules(tmp_path, fmt, extra, frozen_env):
    _tree(tmp_path, 14)
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nselect = ["ALL"]\nignore = ["SAN1"]\n'
                                       '[tool.torchsanity.severity]\nSAN504 = "warning"\n')
    heavy = ("libcst", "torchsanity.analyzers.engine", "torchsanity.analyzers.registry",
             "torchsanity.server.check_workers")
    first, imported = _imports(tmp_path, frozen_env, fmt, *extra)
    assert all(name in imported for name in heavy)  # the first run analyses: the probe sees the imports
    assert any(name.startswith("torchsanity.analyzers.rules.") for name in imported)
    again, imported = _imports(tmp_path, frozen_env, fmt, *extra)
    assert again == first and (json.loads(first) if fmt in ("json", "sarif") else "^" in first)
    assert not [name for name in imported if name in heavy or name.startswith("torchsanity.analyzers.rules")]


def test_a_cached_run_settles_callers_and_writes_sarif_without_libcst(tmp_path, frozen_env):
    """Questions about callers (``evaluate`` in engine.py: called under no_grad from main.py and with
    gradients from smoke.py; ``Validator.validate``: under inference_mode only) are settled from the cached
    summaries, and SARIF's rule entries come from the cache (kept there by a JSON run): the cached runs
    import no libcst, and every output is the output without the cache."""
    shutil.copytree(CALLER_QUESTIONS, tmp_path, dirs_exist_ok=True)
    write(tmp_path / "smoke.py", "import engine\n\n\ndef smoke(model, loader):\n    return engine.evaluate(model, loader, 'cpu')\n")
    write(tmp_path / "optim.py", ADAM_L2)
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nselect = ["ALL"]\n')
    heavy = ("libcst", "torchsanity.analyzers.project", "torchsanity.analyzers.registry",
             "torchsanity.analyzers.engine")
    first, imported = _imports(tmp_path, frozen_env, "json")
    assert all(name in imported for name in heavy)
    questions = {Path(e["path"]).name: e["questions"] for e in cache_entries(tmp_path / ".torchsanity_cache")}
    assert {tuple(q) for q in questions["engine.py"]} >= {("evaluate", "SAN202"), ("Validator.validate", "SAN202")}
    san202 = {(d["path"], d["line"]) for d in json.loads(first) if d["code"] == "SAN202"}
    assert san202 == {("engine.py", 6)}  # validate's provisional finding is dropped: settled
    outputs = {"json": first}
    for fmt in ("sarif", "json", "sarif"):
        out, imported = _imports(tmp_path, frozen_env, fmt)
        assert not [name for name in imported if name in heavy or name.startswith("torchsanity.analyzers.rules")], fmt
        assert outputs.setdefault(fmt, out) == out
    for fmt, out in outputs.items():
        assert _imports(tmp_path, frozen_env, fmt, "--no-cache")[0] == out, fmt
    sarif = json.loads(outputs["sarif"])["runs"][0]
    assert [rule["id"] for rule in sarif["tool"]["driver"]["rules"]] == list(CODES)
    assert {r["ruleId"] for r in sarif["results"]} == {"SAN202", "SAN504"}


def test_damaged_sarif_entries_in_the_cache_are_made_again(cli, tmp_path):
    write(tmp_path / "m.py", ADAM_L2)
    expected = cli("check", "--format", "sarif", "--no-cache", ".").out
    assert cli("check", "--format", "sarif", ".").out == expected
    (kept,) = (tmp_path / ".torchsanity_cache").glob("index-*/derived/sarif-rules.json")
    for damage in ("", "[1, 2]", '{"id": "SAN101"}', "\x00\xff"):
        kept.write_text(damage, encoding="utf-8")
        assert cli("check", "--format", "sarif", ".").out == expected, damage
        assert [rule["id"] for rule in json.loads(kept.read_text(encoding="utf-8"))] == list(CODES)


# ---- a damaged index --------------------------------------------------------------------------------


def _shards(tmp_path: Path) -> list[Path]:
    (index,) = (tmp_path / ".torchsanity_cache").glob("index-*")
    return sorted(index.glob("*.json"))


def _damage(text: str) -> dict[str, str]:
    data = json.loads(text)
    entry_key = next(iter(data["entries"]))

    def with_entry(**changes):
        changed = json.loads(text)
        changed["entries"][entry_key].update(changes)
        return json.dumps(changed)

    return {
        "truncated": text[: len(text) // 2],
        "empty": "",
        "binary": "\x00\xff garbage",
        "a list": "[1, 2, 3]",
        "entries not a table": json.dumps({"format": data["format"], "entries": [1]}),
        "an older format": json.dumps(dict(data, format=data["format"] - 1)),
        "dependencies not pairs": with_entry(dependencies=5),
        "a report without findings": with_entry(report={}),
        "a finding without a position": with_entry(report={"findings": [{"code": "SAN504"}], "problems": []}),
        "an entry that is a string": json.dumps(dict(data, entries={entry_key: "x"})),
    }


def test_a_damaged_index_is_a_miss_never_an_error_or_a_wrong_result(cli, tmp_path):
    _tree(tmp_path)
    expected = _json(cli, "--no-cache", ".")
    assert _json(cli, ".") == expected
    good = {shard: shard.read_text(encoding="utf-8") for shard in _shards(tmp_path)}
    for name in _damage(next(iter(good.values()))):
        for shard, text in good.items():  # every shard damaged the same way
            shard.write_text(_damage(text)[name], encoding="utf-8")
        result = cli("check", "--format", "json", "--statistics", ".")
        assert result.code == 1 and not result.err, (name, result.err)
        assert _json(cli, ".") == expected, name
        assert sum(len(json.loads(p.read_text(encoding="utf-8"))["entries"]) for p in _shards(tmp_path)) == 6, name


def test_a_changed_file_is_analysed_again(cli, tmp_path):
    _tree(tmp_path)
    _json(cli, ".")
    write(tmp_path / "m1.py", ADAM_L2)  # was clean
    assert "6 unchanged" not in cli("check", "--statistics", ".").out
    assert {d["path"] for d in _json(cli, ".")} == {"m0.py", "m1.py", "m3.py"}
    assert "6 files checked: 2 could not hold a finding (not parsed), 6 unchanged (from the cache)." in (
        cli("check", "--statistics", ".").out)


# ---- writers ----------------------------------------------------------------------------------------


def _report(path: Path) -> FileReport:
    return analyze_source(path.read_text(encoding="utf-8"), str(path), Config())


def test_two_writers_merge_their_entries(tmp_path):
    """Two runs that started from the same index each keep their new entries: the index is read again
    and merged when written."""
    a, b = write(tmp_path / "a.py", ADAM_L2), write(tmp_path / "b.py", CLEAN)
    config = Config()
    first, second = Cache(tmp_path / "cache"), Cache(tmp_path / "cache")
    assert first.get(str(a), config, file_hash(a)) is None and second.get(str(b), config, file_hash(b)) is None
    first.put(str(a), config, file_hash(a), _report(a), False, {})
    second.put(str(b), config, file_hash(b), _report(b), False, {})
    first.save()
    second.save()
    reader = Cache(tmp_path / "cache")
    report, skipped, _, _ = reader.get(str(a), config, file_hash(a))
    assert [f.code for f in report.findings] == ["SAN504"] and not skipped
    assert reader.get(str(b), config, file_hash(b))[0].findings == []
    assert reader.get(str(b), config, file_hash(a)) is None  # another content: a miss
    assert reader.get(str(a), Config(select=("SAN1",)), file_hash(a)) is None  # another configuration
    assert not list((tmp_path / "cache").glob(".tmp-*"))


def test_a_dependency_that_changes_or_appears_invalidates_the_entry(tmp_path):
    a, helper, absent = write(tmp_path / "a.py", ADAM_L2), write(tmp_path / "helper.py", CLEAN), tmp_path / "new.py"
    config = Config()
    cache = Cache(tmp_path / "cache")
    cache.put(str(a), config, file_hash(a), _report(a), False, {helper: True, absent: False})
    cache.save()
    assert Cache(tmp_path / "cache").get(str(a), config, file_hash(a)) is not None
    write(absent, NO_TORCH)
    assert Cache(tmp_path / "cache").get(str(a), config, file_hash(a)) is None
    absent.unlink()
    write(helper, ADAM_L2)
    assert Cache(tmp_path / "cache").get(str(a), config, file_hash(a)) is None


def test_entries_of_deleted_files_and_indexes_of_old_engines_are_removed(tmp_path):
    """A deleted file's entry goes when its shard is next written; old engines' indexes beyond three go."""
    config = Config()
    gone = write(tmp_path / "gone.py", ADAM_L2)
    a = next(path for path in (tmp_path / f"a{i}.py" for i in range(1000))
             if Cache._key(str(path), config)[0] == Cache._key(str(gone), config)[0])  # the same shard
    write(a, ADAM_L2)
    directory = tmp_path / "cache"
    cache = Cache(directory)
    cache.put(str(gone), config, file_hash(gone), _report(gone), False, {})
    cache.save()
    for i in range(6):
        write(directory / f"index-old{i}" / "0.json", '{"format": 4, "entries": {}}')
        os.utime(directory / f"index-old{i}", (1000 + i, 1000 + i))
    write(directory / "index-older.json", "{}")  # not a folder: removed too
    os.utime(directory / "index-older.json", (900, 900))
    write(directory / "v1" / "ab" / "abcd.json", "{}")  # the per-file entries of format 3
    gone.unlink()
    cache = Cache(directory)
    cache.put(str(a), config, file_hash(a), _report(a), False, {})
    cache.save()
    assert [Path(e["path"]).name for e in cache_entries(directory)] == [a.name]
    assert sorted(p.name for p in directory.glob("index-old*")) == ["index-old3", "index-old4", "index-old5"]
    assert not (directory / "v1").exists()


def test_concurrent_runs_on_different_folders_share_one_index(tmp_path, frozen_env):
    for folder in ("one", "two"):
        _tree(tmp_path / folder, 14)
    base = [sys.executable, "-m", "torchsanity.server", "check", "--cache-dir", str(tmp_path / "cache"), "-j", "1"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(args), cwd=tmp_path, capture_output=True, text=True, timeout=240,
                              env=frozen_env)

    procs = [subprocess.Popen(base + ["--format", "json", folder], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=frozen_env) for folder in ("one", "two", "one", "two")]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [1] * 4, [err for _, err in outputs]
    assert outputs[0][0] == outputs[2][0] and outputs[1][0] == outputs[3][0]
    assert len(json.loads(outputs[0][0])) == 5 and not list((tmp_path / "cache").glob(".tmp-*"))
    assert "28 files checked" in run("--statistics", "one", "two").stdout  # the index is whole again
    again = json.loads(run("--format", "json", "one", "two").stdout)
    assert again == json.loads(run("--format", "json", "--no-cache", "one", "two").stdout) and len(again) == 10
    assert "28 unchanged (from the cache)" in run("--statistics", "one", "two").stdout
    assert len(cache_entries(tmp_path / "cache")) == 28
