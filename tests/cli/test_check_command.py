"""`torchsanity check`: paths, formats, fixes, configuration, exit codes and parallel checking,
through the real CLI entry point (``torchsanity.server.cli.main``) and a real child process."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from cli_helpers import ADAM_L2, CLEAN, SAFE_FIX, SAFE_FIXED, write

from torchsanity.analyzers import Project, all_rules

HERE = Path(__file__).parent
ANALYZER_TESTS = HERE.parent / "analyzers"
CORPUS = ANALYZER_TESTS / "corpus"
PROJECTS = ANALYZER_TESTS / "projects"
_EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>SAN\d{3}(?:\s*,\s*SAN\d{3})*)")
TEXT_LINE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<code>SAN\d{3}) (?P<message>.+)$", re.M)


def expected(folder: Path, files: list[Path]) -> set[tuple[str, int, str]]:
    out = set()
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _EXPECT.search(line)
            if match:
                for code in re.split(r"\s*,\s*", match.group("codes")):
                    out.add((path.relative_to(folder).as_posix(), number, code))
    return out


# ---- the text format and exit codes ----------------------------------------------------------------


def test_text_format_reads_like_ruff(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "train.py")
    assert result.code == 1
    first = result.out.splitlines()[0]
    assert re.fullmatch(r"train\.py:2:7: SAN504 .+", first), first
    assert "Found 1 problem." in result.out
    assert "1 hidden fix can be enabled with the `--unsafe-fixes` option" in result.out
    write(tmp_path / "move.py", SAFE_FIX)
    assert "[*] 1 fixable with `torchsanity check --fix`." in cli("check", "move.py").out
    assert result.err == ""


def test_clean_file_exits_zero(cli, tmp_path):
    write(tmp_path / "ok.py", CLEAN)
    result = cli("check", "ok.py")
    assert result.code == 0, result.out
    assert result.out.strip() == "All checks passed!"


def test_quiet_prints_findings_only(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "ok.py", CLEAN)
    assert cli("check", "-q", "ok.py").out == ""
    result = cli("check", "-q", "train.py")
    assert result.code == 1
    assert [line.split(": ")[1].split()[0] for line in result.out.splitlines()] == ["SAN504"]


def test_default_path_is_the_working_directory(cli, tmp_path):
    write(tmp_path / "pkg" / "train.py", ADAM_L2)
    result = cli("check")
    assert result.code == 1
    assert "pkg/train.py:2:7: SAN504" in result.out


def test_exit_zero(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "--exit-zero", "train.py")
    assert result.code == 0 and "SAN504" in result.out


def test_missing_path_is_a_usage_error(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "nope.py", "train.py")
    assert result.code == 2
    assert "nope.py" in result.err and "no such file" in result.err
    assert "train.py:2:7: SAN504" in result.out  # the rest is still checked


@pytest.mark.parametrize("args", [["--format", "xml"], ["--select", "E501"], ["--ignore", "SAN1x"], ["--jobs", "-3"]])
def test_bad_arguments_exit_2(cli, tmp_path, args):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", *args, "train.py")
    assert result.code == 2
    assert "Traceback" not in result.err


def test_output_file(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "--format", "json", "-o", "report.json", "train.py")
    assert result.code == 1 and result.out == ""
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [d["code"] for d in data] == ["SAN504"]


# ---- JSON, SARIF, GitHub ---------------------------------------------------------------------------


def test_json_format_is_the_public_shape(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "--format", "json", "train.py")
    assert result.code == 1
    data = json.loads(result.out)
    assert isinstance(data, list) and len(data) == 1
    finding = data[0]
    assert set(finding) >= {"path", "line", "column", "end_line", "end_column", "code", "name", "severity", "message"}
    assert finding["path"] == "train.py"
    assert (finding["line"], finding["column"], finding["code"]) == (2, 7, "SAN504")
    assert finding["name"] == "adam-l2-weight-decay"
    assert finding["severity"] in ("error", "warning", "info")
    edit = finding["fix"]["edits"][0]
    assert (edit["line"], edit["new_text"]) == (2, "AdamW")


def test_json_on_clean_input_is_an_empty_list(cli, tmp_path):
    write(tmp_path / "ok.py", CLEAN)
    result = cli("check", "--format", "json", "ok.py")
    assert result.code == 0 and json.loads(result.out) == []


def test_json_reports_syntax_errors_as_san000_entries(cli, tmp_path):
    write(tmp_path / "broken.py", "def f(:\n")
    data = json.loads(cli("check", "--format", "json", "broken.py").out)
    assert len(data) == 1 and data[0]["code"] == "SAN000" and data[0]["name"] == "syntax-error"
    assert data[0]["message"].startswith("syntax error")


def test_sarif_format(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "broken.py", "def f(:\n")
    result = cli("check", "--format", "sarif", ".")
    assert result.code == 1
    log = json.loads(result.out)
    assert log["version"] == "2.1.0" and "sarif" in log["$schema"]
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "torchsanity"
    assert [r["id"] for r in driver["rules"]] == [r.code for r in all_rules()]
    (result_,) = run["results"]
    assert result_["ruleId"] == "SAN504"
    assert driver["rules"][result_["ruleIndex"]]["id"] == "SAN504"
    assert result_["level"] in ("error", "warning", "note")
    location = result_["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "train.py"
    assert location["region"]["startLine"] == 2 and location["region"]["startColumn"] == 7
    replacement = result_["fixes"][0]["artifactChanges"][0]["replacements"][0]
    assert replacement["insertedContent"]["text"] == "AdamW"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["descriptor"]["id"] for n in notes] == ["SAN000"]


def test_github_format(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "broken.py", "x = (\n")
    result = cli("check", "--format", "github", ".")
    assert result.code == 1
    lines = result.out.splitlines()
    assert any(re.fullmatch(r"::warning file=train\.py,line=2,col=7,title=SAN504::Adam .+", line) for line in lines), lines
    assert any(line.startswith("::error file=broken.py,line=") for line in lines), lines


def test_github_escapes_properties_and_data():
    from torchsanity.server.check_formats import github_line

    line = github_line("warning", "a,b:c.py", 1, 2, "SAN101", "50% done\nnext")
    assert line == "::warning file=a%2Cb%3Ac.py,line=1,col=2,title=SAN101::50%25 done%0Anext"


def test_statistics(cli, tmp_path):
    write(tmp_path / "a.py", ADAM_L2)
    write(tmp_path / "b.py", ADAM_L2)
    result = cli("check", "--statistics", ".")
    assert result.code == 1
    row = next(line for line in result.out.splitlines() if "SAN504" in line)
    assert row.split()[0] == "2" and "adam-l2-weight-decay" in row
    data = json.loads(cli("check", "--statistics", "--format", "json", ".").out)
    assert {"code": "SAN504", "name": "adam-l2-weight-decay", "count": 2, "fixable": 2} in data


# ---- selection and configuration -------------------------------------------------------------------


def test_select_and_ignore(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    assert cli("check", "--ignore", "SAN504", "train.py").code == 0
    assert cli("check", "--ignore", "san5", "train.py").code == 0  # prefixes, any case
    assert cli("check", "--select", "SAN1,SAN2", "train.py").code == 0
    assert cli("check", "--select", "SAN1", "--select", "SAN504", "train.py").code == 1


def test_cli_flags_override_pyproject(cli, tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nselect = ["SAN1"]\n')
    write(tmp_path / "train.py", ADAM_L2)
    assert cli("check", "train.py").code == 0  # the configuration does not select SAN504
    assert cli("check", "--select", "SAN504", "train.py").code == 1  # the flag replaces it
    assert cli("check", "--no-config", "train.py").code == 1  # or ignore the configuration
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nignore = ["SAN504"]\n')
    assert cli("check", "train.py").code == 0
    assert cli("check", "--no-config", "train.py").code == 1


def test_per_file_ignores_through_the_cli(cli, tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nper-file-ignores = { "legacy/*" = ["SAN504"] }\n')
    write(tmp_path / "legacy" / "old.py", ADAM_L2)
    write(tmp_path / "new.py", ADAM_L2)
    result = cli("check", ".")
    assert "new.py:2:7: SAN504" in result.out and "old.py" not in result.out


def test_config_found_from_a_subdirectory(cli, tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nignore = ["SAN504"]\n')
    write(tmp_path / "src" / "train.py", ADAM_L2)
    assert cli("check", "train.py", cwd=tmp_path / "src").code == 0


def test_invalid_configuration_is_exit_2(cli, tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nselekt = ["SAN1"]\n')
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "train.py")
    assert result.code == 2 and "selekt" in result.err and "Traceback" not in result.err
    write(tmp_path / "pyproject.toml", "[tool.torchsanity\n")
    assert cli("check", "train.py").code == 2
    assert cli("check", "--no-config", "train.py").code == 1


def test_noqa_through_the_cli(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2.replace("1e-4)\n", "1e-4)  # noqa: SAN504\n"))
    assert cli("check", "train.py").code == 0


# ---- file discovery --------------------------------------------------------------------------------


def test_directories_skip_non_python_and_tool_folders(cli, tmp_path):
    write(tmp_path / "src" / "train.py", ADAM_L2)
    write(tmp_path / "src" / "notes.txt", ADAM_L2)
    write(tmp_path / "src" / "train.pyc", b"\x00\x01binary")
    write(tmp_path / "README.md", ADAM_L2)
    for folder in (".venv", "venv", ".git", "node_modules", "__pycache__", "build", ".tox"):
        write(tmp_path / folder / "lib.py", ADAM_L2)
    data = json.loads(cli("check", "--format", "json", ".").out)
    assert sorted({d["path"] for d in data}) == ["src/train.py"]


def test_exclude_globs(cli, tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nexclude = ["tests/", "*_generated.py"]\n')
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "model_generated.py", ADAM_L2)
    write(tmp_path / "tests" / "buggy.py", ADAM_L2)
    write(tmp_path / "tests" / "deep" / "buggy2.py", ADAM_L2)
    data = json.loads(cli("check", "--format", "json", ".").out)
    assert sorted({d["path"] for d in data}) == ["train.py"]
    # As in ruff: a file named on the command line is checked even when excluded ...
    named = json.loads(cli("check", "--format", "json", "tests/buggy.py", "model_generated.py").out)
    assert sorted({d["path"] for d in named}) == ["model_generated.py", "tests/buggy.py"]
    # ... and so is a directory named explicitly (the exclusion applies below the named path) ...
    below = json.loads(cli("check", "--format", "json", "tests").out)
    assert sorted({d["path"] for d in below}) == ["tests/buggy.py", "tests/deep/buggy2.py"]
    # ... unless --force-exclude.
    assert cli("check", "--force-exclude", "tests/buggy.py", "model_generated.py").code == 0
    assert cli("check", "--no-config", ".").out.count("SAN504") == 4


def test_explicit_file_with_any_extension_is_checked(cli, tmp_path):
    write(tmp_path / "train_script", ADAM_L2)
    assert "train_script:2:7: SAN504" in cli("check", "train_script").out


def test_a_file_named_twice_is_checked_once(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "--format", "json", "train.py", ".", "./train.py")
    assert len(json.loads(result.out)) == 1


def test_paths_outside_the_working_directory_are_absolute(cli, tmp_path):
    write(tmp_path / "outside" / "train.py", ADAM_L2)
    (tmp_path / "here").mkdir()
    data = json.loads(cli("check", "--format", "json", tmp_path / "outside", cwd=tmp_path / "here").out)
    assert data[0]["path"] == str(tmp_path / "outside" / "train.py")


# ---- --fix and --diff ------------------------------------------------------------------------------


def test_fix_writes_and_is_idempotent(cli, tmp_path):
    path = write(tmp_path / "train.py", SAFE_FIX)
    result = cli("check", "--fix", "--unsafe-fixes", "train.py")
    assert result.code == 0, result.out
    assert path.read_text(encoding="utf-8") == SAFE_FIXED
    assert "1 fixed, 0 remaining" in result.out
    again = cli("check", "--fix", "--unsafe-fixes", "train.py")
    assert again.code == 0 and path.read_text(encoding="utf-8") == SAFE_FIXED
    assert again.out.strip() == "All checks passed!"


def test_fix_reports_what_remains(cli, tmp_path):
    # SAN901 is fixable; the second file has a syntax error: reported, not touched, exit 1.
    write(tmp_path / "train.py", SAFE_FIX)
    broken = write(tmp_path / "broken.py", "def f(:\n")
    result = cli("check", "--fix", "--unsafe-fixes", ".")
    assert result.code == 1
    assert "broken.py:1:" in result.out and "syntax error" in result.out
    assert broken.read_text() == "def f(:\n"


def test_diff_writes_nothing(cli, tmp_path):
    path = write(tmp_path / "train.py", SAFE_FIX)
    result = cli("check", "--diff", "--unsafe-fixes", "train.py")
    assert result.code == 1
    assert path.read_text(encoding="utf-8") == SAFE_FIX
    assert "--- a/train.py" in result.out and "+++ b/train.py" in result.out
    assert "-x.cuda()" in result.out and "+x = x.cuda()" in result.out
    assert "Would fix 1 problem" in result.err
    write(tmp_path / "train.py", CLEAN)
    clean = cli("check", "--diff", "--unsafe-fixes", "train.py")
    assert clean.code == 0 and clean.out == ""


def test_diff_applies_as_a_patch(cli, tmp_path):
    """The diff is exactly the change `--fix` makes."""
    import difflib

    write(tmp_path / "a" / "train.py", SAFE_FIX)
    diff = cli("check", "--diff", "--unsafe-fixes", "a").out
    expected = "".join(difflib.unified_diff(SAFE_FIX.splitlines(True), SAFE_FIXED.splitlines(True),
                                            "a/a/train.py", "b/a/train.py"))
    assert diff == expected


def test_fix_keeps_crlf_bom_encoding_and_mode(cli, tmp_path):
    crlf = write(tmp_path / "crlf.py", SAFE_FIX.replace("\n", "\r\n").encode())
    bom = write(tmp_path / "bom.py", b"\xef\xbb\xbf" + SAFE_FIX.encode())
    latin = write(tmp_path / "latin.py", ("# -*- coding: latin-1 -*-\n# caf\xe9\n" + SAFE_FIX).encode("latin-1"))
    os.chmod(crlf, 0o755)
    assert cli("check", "--fix", "--unsafe-fixes", ".").code == 0
    assert crlf.read_bytes() == SAFE_FIXED.replace("\n", "\r\n").encode()
    assert stat.S_IMODE(os.stat(crlf).st_mode) == 0o755
    assert bom.read_bytes() == b"\xef\xbb\xbf" + SAFE_FIXED.encode()
    assert latin.read_bytes() == ("# -*- coding: latin-1 -*-\n# caf\xe9\n" + SAFE_FIXED).encode("latin-1")
    assert not list(tmp_path.glob("*.torchsanity-tmp"))


def test_fix_without_trailing_newline(cli, tmp_path):
    path = write(tmp_path / "train.py", SAFE_FIX.rstrip("\n"))
    assert cli("check", "--fix", "--unsafe-fixes", "train.py").code == 0
    assert path.read_text(encoding="utf-8") == SAFE_FIXED.rstrip("\n")


# ---- parallel checking and cross-file projects -----------------------------------------------------


def test_parallel_equals_in_process(cli, tmp_path):
    for i in range(30):
        write(tmp_path / f"m{i:02}" / "train.py", ADAM_L2 if i % 3 else CLEAN)
    write(tmp_path / "broken.py", "x = (\n")
    write(tmp_path / "binary.py", b"\x00\xff\xfe")
    serial = cli("check", "--format", "json", "-j", "1", ".")
    parallel = cli("check", "--format", "json", "-j", "2", ".")
    assert serial.code == parallel.code == 1
    assert json.loads(serial.out) == json.loads(parallel.out)
    assert len(json.loads(serial.out)) == 20 + 2


def test_parallel_fix(cli, tmp_path):
    files = [write(tmp_path / f"f{i:02}.py", SAFE_FIX) for i in range(20)]
    result = cli("check", "--fix", "--unsafe-fixes", "-j", "2", ".")
    assert result.code == 0 and "20 fixed, 0 remaining" in result.out
    assert all(f.read_text(encoding="utf-8") == SAFE_FIXED for f in files)


def test_worker_count():
    from torchsanity.server.check_workers import PARALLEL_THRESHOLD, _worker_count

    assert _worker_count(0, 1) == 1  # one file: in-process
    assert _worker_count(0, PARALLEL_THRESHOLD - 1) == 1
    assert _worker_count(1, 1000) == 1
    assert _worker_count(4, 1000) == 4
    assert _worker_count(64, PARALLEL_THRESHOLD) == PARALLEL_THRESHOLD


@pytest.mark.parametrize("folder", sorted(p for p in PROJECTS.iterdir() if p.is_dir()) if PROJECTS.is_dir() else [],
                         ids=lambda p: p.name)
def test_project_folders_resolve_across_files(cli, folder):
    """A directory is checked as a project: the `# expect:` findings of the analyzer tests, through the CLI."""
    data = json.loads(cli("check", "--no-config", "--format", "json", ".", cwd=folder).out)
    actual = {(d["path"], d["line"], d["code"]) for d in data}
    assert actual == expected(folder, sorted(folder.rglob("*.py")))


def test_corpus_through_the_cli_in_parallel(cli):
    """The whole analyzer corpus, parallel, equals the per-file expectations."""
    if not CORPUS.is_dir() or not list(CORPUS.glob("*.py")):
        pytest.skip("no corpus yet")
    data = json.loads(cli("check", "--no-config", "--format", "json", "-j", "2", ".", cwd=CORPUS).out)
    assert all(d["code"] is not None for d in data), [d for d in data if d["code"] is None]
    actual = {(d["path"], d["line"], d["code"]) for d in data}
    assert actual == expected(CORPUS, sorted(CORPUS.glob("*.py")))


def test_project_object_is_per_root():
    from torchsanity.server.check_workers import _project

    assert _project(None) is None
    assert isinstance(_project("/tmp"), Project) and _project("/tmp") is _project("/tmp")


# ---- the real process ------------------------------------------------------------------------------


def test_real_process(cli_process, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "broken.py", "def f(:\n")
    result = cli_process("check", ".")
    assert result.code == 1, result.err
    assert "train.py:2:7: SAN504" in result.out
    assert re.search(r"^broken\.py:\d+:\d+: SAN000 syntax error", result.out, re.M)
    assert "Traceback" not in result.out + result.err
    assert cli_process("check", "--format", "json", "nope").code == 2


def test_diff_is_a_patch_that_reproduces_fix(cli, tmp_path):
    """`patch -p1 < diff` gives byte for byte what `--fix` writes, with CRLF and without a final newline."""
    import shutil
    import subprocess

    if shutil.which("patch") is None:
        pytest.skip("no patch(1)")
    for name in ("a", "b"):
        write(tmp_path / name / "crlf.py", SAFE_FIX.replace("\n", "\r\n").encode())
        write(tmp_path / name / "no_newline.py", SAFE_FIX.rstrip("\n"))
        write(tmp_path / name / "torch_seed.py", "import torch\nimport random\ntorch.manual_seed(0)\nrandom.shuffle(items)")
    diff = cli("check", "--no-config", "--diff", "--unsafe-fixes", ".", cwd=tmp_path / "a").out
    assert diff
    subprocess.run(["patch", "-p1", "--quiet"], input=diff.encode(), cwd=tmp_path / "a", check=True)
    assert cli("check", "--no-config", "--fix", "--unsafe-fixes", ".", cwd=tmp_path / "b").code in (0, 1)
    for name in ("crlf.py", "no_newline.py", "torch_seed.py"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
