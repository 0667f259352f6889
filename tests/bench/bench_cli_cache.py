"""Benchmark (a script, not a test; it asserts no time): the `torchsanity check` command line on a tree of
300+ real PyTorch files, cold and cached, measured side by side in one run, with ruff as the reference.

    .venv/bin/pip install --no-deps labml-nn ruff      # the `bench` extra
    .venv/bin/python tests/bench/bench_cli_cache.py    # labml_nn + torch's nn / optim / utils.data modules
    .venv/bin/python tests/bench/bench_cli_cache.py DIR  # any other tree

Printed (targets of the CLI issue): first run vs cached re-run (>= 20x), a cached re-run after editing one
file vs checking that file alone (<= 2x), -j 1 vs the default (all cores), the engine's cost relative to
bare libcst parsing of the files it parses, how many files were skipped as unable to hold a finding (and
a check that analysing them anyway finds nothing), and `ruff check --select ALL` on the same tree.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locates without importing (labml_nn imports labml)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_tree(target: Path, minimum: int) -> str:
    """Copy labml_nn (when installed) and torch's nn / optim / utils.data sources into ``target``."""
    sources = []
    labml = _package_dir("labml_nn")
    if labml is not None:
        sources.append(("labml_nn", labml))
    torch_dir = _package_dir("torch")
    assert torch_dir is not None, "torch is not installed"
    for sub in ("nn", "optim", "utils/data"):
        sources.append((f"torch_{sub.replace('/', '_')}", torch_dir / sub))
    count = 0
    labels = []
    for name, folder in sources:
        files = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
        for path in files:
            destination = target / name / path.relative_to(folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        count += len(files)
        labels.append(f"{name} ({len(files)} files)")
        if count >= minimum and labml is not None and name != "labml_nn":
            break
    try:
        labels[0] += f", labml-nn {version('labml-nn')}" if labml is not None else ""
    except PackageNotFoundError:
        pass
    return ", ".join(labels)


def snapshot_package(target: Path) -> dict[str, str]:
    """Copy this checkout's package into ``target`` and return the environment that runs the copy: the CLI
    measured is the code as it is now, even while the working tree is being edited (an edited engine
    module is, rightly, a new cache)."""
    repo = Path(__file__).resolve().parents[2]
    package = target / "torchsanity"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for name in ("analyzers", "server", "probes"):
        shutil.copytree(repo / name, package / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dict(os.environ, PYTHONPATH=str(target))


ENV: dict[str, str] | None = None


def timed(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=ENV)
    return time.perf_counter() - started, proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", nargs="?", help="a directory to copy and check (default: see above)")
    parser.add_argument("--min-files", type=int, default=300)
    args = parser.parse_args(argv)

    import libcst as cst

    from torchsanity.analyzers import Config, Project, analyze_source
    from torchsanity.analyzers.relevance import may_hold_finding

    check = [sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--format", "json", "--exit-zero"]
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")

    global ENV
    with tempfile.TemporaryDirectory(prefix="torchsanity-cli-bench-") as tmp:
        ENV = snapshot_package(Path(tmp) / "package")
        work = Path(tmp) / "tree"
        work.mkdir()
        if args.tree:
            shutil.copytree(args.tree, work, dirs_exist_ok=True)
            label = args.tree
        else:
            label = default_tree(work, args.min_files)
        files = sorted(work.rglob("*.py"))
        texts = {p: p.read_text(encoding="utf-8", errors="replace") for p in files}
        lines = sum(t.count("\n") for t in texts.values())
        print(f"tree: {label}")
        print(f"      {len(files)} files, {lines:,} lines; python {sys.version.split()[0]}, libcst {version('libcst')}, "
              f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        print()

        timed(check + ["--no-cache", str(files[0])], work)  # warm imports, page cache
        probe = subprocess.run([sys.executable, "-c", "import torchsanity.server, sys; print(torchsanity.server.__file__)"],
                               env=ENV, capture_output=True, text=True).stdout.strip()
        print(f"      the CLI runs from a snapshot of the package: {probe}")

        # In-process: which files are skipped, what parsing them costs, what the engine costs.
        project = Project(work)
        relevant = {p for p in files if may_hold_finding(texts[p], str(p), project)[0]}
        skipped = [p for p in files if p not in relevant]
        t0 = time.perf_counter()
        for p in files:
            try:
                cst.parse_module(texts[p])
            except Exception:
                pass
        t_parse_all = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in files:
            try:
                ast.parse(texts[p])
            except Exception:
                pass
        t_ast = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in relevant:
            try:
                cst.parse_module(texts[p])
            except Exception:
                pass
        t_parse_relevant = time.perf_counter() - t0
        config, engine_project = Config(), Project(work)
        t0 = time.perf_counter()
        for p in sorted(relevant):
            analyze_source(texts[p], str(p), config, engine_project)
        t_engine = time.perf_counter() - t0
        hidden = sum(len(analyze_source(texts[p], str(p), config, Project(work)).findings) for p in skipped)

        rows: list[tuple[str, float, str]] = []
        t_nocache_j1, proc = timed(check + ["--no-cache", "-j", "1", "."], work)
        rows.append(("check -j 1, no cache", t_nocache_j1, f"exit {proc.returncode}"))
        t_nocache, proc = timed(check + ["--no-cache", "."], work)
        rows.append(("check (default: all cores), no cache", t_nocache, f"exit {proc.returncode}"))
        shutil.rmtree(work / ".torchsanity_cache", ignore_errors=True)
        t_first, first = timed(check + ["."], work)
        rows.append(("check, first run (fills the cache)", t_first, f"{len(__import__('json').loads(first.stdout))} findings"))
        t_cached, cached = timed(check + ["."], work)
        stats_command = [sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--exit-zero", "--statistics", "."]
        stats = timed(stats_command, work)[1].stdout.strip().splitlines()[-1]
        rows.append(("check, cached re-run (nothing changed)", t_cached,
                     ("same output; " if cached.stdout == first.stdout else "OUTPUT DIFFERS; ") + stats))

        # Edit one file that no other file imports (a training script), as a user does between runs.
        importers = {p for p in files if "import" in texts[p]}
        edited = next((p for p in sorted(relevant) if p.name in ("experiment.py", "train.py") and p in importers), sorted(relevant)[0])
        rel = edited.relative_to(work).as_posix()
        t_alone, _ = timed(check + ["--no-cache", rel], work)
        rows.append((f"check {rel} alone, no cache", t_alone, ""))
        edited.write_text(texts[edited] + "\n# edited\n", encoding="utf-8")
        t_edit, _ = timed(check + ["."], work)
        rows.append(("check, cached re-run after editing that file", t_edit, ""))

        t_ruff = t_ruff_cached = None
        if ruff:
            t_ruff, proc = timed([ruff, "check", "--select", "ALL", "--no-cache", "--exit-zero", "--quiet", "."], work)
            rows.append(("ruff check --select ALL, no cache", t_ruff, f"ruff {version('ruff')}"))
            timed([ruff, "check", "--select", "ALL", "--exit-zero", "--quiet", "."], work)
            t_ruff_cached, _ = timed([ruff, "check", "--select", "ALL", "--exit-zero", "--quiet", "."], work)
            rows.append(("ruff check --select ALL, cached re-run", t_ruff_cached, ""))
        else:
            print("ruff is not installed (pip install ruff): no reference run")

        width = max(len(name) for name, _, _ in rows)
        for name, seconds, note in rows:
            print(f"{name:<{width}}  {seconds:7.2f} s  {note}")
        print()
        print("in-process, one core:")
        print(f"  bare libcst parse, all {len(files)} files:               {t_parse_all:7.2f} s  (CPython ast.parse: {t_ast:.2f} s)")
        print(f"  files skipped (cannot hold a finding, not parsed):  {len(skipped):7d}     analysed anyway: {hidden} findings")
        print(f"  bare libcst parse of the {len(relevant)} files analysed:       {t_parse_relevant:7.2f} s")
        print(f"  engine (analyze_source) on those files:             {t_engine:7.2f} s")
        print()
        print("ratios (one run, side by side):")
        print(f"  first run / cached re-run:                          {t_first / t_cached:7.1f}x  (target >= 20x)")
        print(f"  re-run after one edit / that file checked alone:    {t_edit / t_alone:7.2f}x  (target <= 2x)")
        print(f"  -j 1 / default (all cores), no cache:               {t_nocache_j1 / t_nocache:7.2f}x")
        print(f"  engine / bare parse of the files it parses:         {t_engine / t_parse_relevant:7.2f}x  (target <= 2x)")
        print(f"  CLI, no cache / bare parse of every file:           {t_nocache / t_parse_all:7.2f}x")
        if t_ruff:
            print(f"  torchsanity first run / ruff (no cache):            {t_first / t_ruff:7.1f}x")
            print(f"  torchsanity cached / ruff cached:                   {t_cached / t_ruff_cached:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
