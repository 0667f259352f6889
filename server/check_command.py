"""`torchsanity check PATH…`: the static checks on files and directories.

Exit status: 0 clean, 1 findings (or files that do not parse / cannot be read), 2 usage error,
configuration error or an internal error. Files are checked in parallel on every core when there
are enough of them to pay for the worker start-up; each worker keeps its own :class:`Project` per
root, so helpers imported from sibling modules resolve as they do in-process.
"""

from __future__ import annotations

import argparse
import difflib
import multiprocessing
import os
import re
import sys
import tokenize
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .check_formats import FORMATS, Summary, format_statistics, problem_line, render
from .file_discovery import Target, discover

# Fewer files than this are checked in-process: a worker pool costs more than it saves.
PARALLEL_THRESHOLD = 12
_SELECTOR = re.compile(r"^(ALL|SAN\d{0,3})$")


# ---- arguments -----------------------------------------------------------------------------------


def _codes(value: str) -> list[str]:
    codes = [part.strip().upper() for part in value.split(",") if part.strip()]
    for code in codes:
        if not _SELECTOR.match(code):
            raise argparse.ArgumentTypeError(f"invalid rule selector {code!r} (expected ALL or a code / prefix like SAN1, SAN101)")
    return codes


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid job count {value!r}") from None
    if jobs < 0:
        raise argparse.ArgumentTypeError("the job count must be 0 (all cores) or more")
    return jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", default=None,
                        help="files or directories to check (default: the current directory)")
    parser.add_argument("--format", "--output-format", dest="format", choices=FORMATS, default="text",
                        help="output format (default: text)")
    parser.add_argument("--fix", action="store_true", help="apply every safe fix and write the files")
    parser.add_argument("--diff", action="store_true",
                        help="print the safe fixes as a unified diff and write nothing (exit 1 when there is a fix)")
    parser.add_argument("--statistics", action="store_true", help="print the number of findings per rule")
    parser.add_argument("--select", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to enable (replaces the configuration's select)")
    parser.add_argument("--ignore", type=_codes, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to disable (added to the configuration's ignore)")
    parser.add_argument("--no-config", action="store_true", help="ignore [tool.torchsanity] in pyproject.toml")
    parser.add_argument("--force-exclude", action="store_true",
                        help="apply the configuration's exclude to files named on the command line too")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("-o", "--output-file", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("-j", "--jobs", type=_jobs, default=0, metavar="N",
                        help="worker processes (default 0: one per core; 1: in-process)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print findings only, no summary")


# ---- the work of one file (runs in a worker or in-process) ------------------------------------------


@dataclass
class FileResult:
    report: object  # FileReport
    fixed: int = 0
    diff: str = ""
    write_error: str | None = None


_PROJECTS: dict[str, object] = {}


def _project(root: str | None):
    from ..analyzers import Project

    if root is None:
        return None
    project = _PROJECTS.get(root)
    if project is None:
        project = _PROJECTS[root] = Project(root)
    return project


def _encoding_of(path: str) -> str:
    with open(path, "rb") as handle:
        encoding, _ = tokenize.detect_encoding(handle.readline)
    return encoding


def check_target(target: Target, mode: str) -> FileResult:
    """Analyse (``mode="check"``), fix and write (``"fix"``) or diff (``"diff"``) one file. Never raises."""
    from ..analyzers import FileProblem, FileReport, analyze_file, analyze_source, fix_source
    from ..analyzers.source import read_source

    path = target.path
    try:
        project = _project(target.project_root)
        if mode == "check":
            return FileResult(analyze_file(path, target.config, project))
        try:
            source = read_source(path)
        except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
            return FileResult(analyze_file(path, target.config, project))  # reports why it is unreadable
        before = analyze_source(source, path, target.config, project)
        if not any(f.fix is not None for f in before.findings):
            return FileResult(before)
        fixed_text, after = fix_source(source, path, target.config, project)
        fixed_text = keep_line_endings(source, fixed_text)
        if fixed_text == source:
            return FileResult(before)
        remaining = Counter(f.code for f in after.findings)
        fixed = sum(max(0, n - remaining.get(code, 0)) for code, n in Counter(f.code for f in before.findings).items())
        if mode == "diff":
            diff = unified_diff(source, fixed_text, path)
            return FileResult(before, fixed=fixed, diff=diff)
        try:
            _write(path, fixed_text)
        except (OSError, UnicodeEncodeError) as error:
            return FileResult(before, write_error=f"cannot write fixes: {error}")
        return FileResult(after, fixed=fixed)
    except Exception as error:  # an engine bug: one line for this file, the other files still run
        report = FileReport(path=path)
        report.problems.append(FileProblem(path, "internal-error", f"internal error: {type(error).__name__}: {error}"))
        return FileResult(report)


def unified_diff(before: str, after: str, path: str) -> str:
    """A unified diff that `patch` / `git apply` accept, also when a file does not end in a newline."""
    lines = []
    for line in difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
    ):
        lines.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(lines)


_LONE_LF = re.compile(r"(?<!\r)\n")


def keep_line_endings(source: str, fixed: str) -> str:
    """Lines that fixes insert end in "\\n"; in a file whose every line ends in "\\r\\n", make them match."""
    if "\r\n" in source and not _LONE_LF.search(source):
        return _LONE_LF.sub("\r\n", fixed)
    return fixed


def _write(path: str, text: str) -> None:
    encoding = _encoding_of(path)  # keeps a PEP 263 cookie's encoding and a UTF-8 BOM (utf-8-sig)
    data = text.encode(encoding)
    tmp = f"{path}.torchsanity-tmp"
    mode = os.stat(path).st_mode
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode & 0o7777)
    os.replace(tmp, path)


def _check_batch(batch: list[Target], mode: str) -> list[FileResult]:
    return [check_target(target, mode) for target in batch]


# ---- scheduling ------------------------------------------------------------------------------------


def _worker_count(requested: int, files: int) -> int:
    if requested == 1 or files < PARALLEL_THRESHOLD:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = requested or cores
    return max(1, min(workers, files))


def _pool_context():
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")  # workers inherit the imported engine: no start-up import
    return None


def check_targets(targets: Sequence[Target], mode: str = "check", jobs: int = 0) -> list[FileResult]:
    """Check every target, in parallel when worthwhile; results in the order of ``targets``."""
    workers = _worker_count(jobs, len(targets))
    if workers == 1:
        return [check_target(t, mode) for t in targets]
    # Big files first, in small batches, so the last worker does not finish alone on a large file.
    order = sorted(range(len(targets)), key=lambda i: -_size(targets[i].path))
    per_batch = max(1, min(16, len(targets) // (workers * 4)))
    batches = [order[i:i + per_batch] for i in range(0, len(order), per_batch)]
    results: list[FileResult | None] = [None] * len(targets)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = [(batch, pool.submit(_check_batch, [targets[i] for i in batch], mode)) for batch in batches]
            for batch, future in futures:
                try:
                    for index, result in zip(batch, future.result()):
                        results[index] = result
                except BrokenProcessPool:
                    pass
    except (BrokenProcessPool, OSError):
        pass
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        # A worker died (a crash in native code, memory): check the rest one by one, each in its own process.
        for i in missing:
            results[i] = _isolated(targets[i], mode)
    return results  # type: ignore[return-value]


def _isolated(target: Target, mode: str) -> FileResult:
    from ..analyzers import FileProblem, FileReport

    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=_pool_context()) as pool:
            return pool.submit(check_target, target, mode).result()
    except Exception as error:
        report = FileReport(path=target.path)
        report.problems.append(
            FileProblem(target.path, "internal-error", f"internal error: the checker crashed on this file ({type(error).__name__})")
        )
        return FileResult(report)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# ---- the command -----------------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"torchsanity: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ..analyzers import Config, ConfigError

    paths = list(args.paths or ["."])
    select, ignore = args.select or None, args.ignore or None

    configs: dict[str, Config] = {}

    def config_for(path: Path) -> Config:
        if args.no_config:
            base = Config(root=Path(os.path.abspath(path if path.is_dir() else path.parent)))
        else:
            key = os.path.abspath(path if path.is_dir() else path.parent)
            if key not in configs:
                configs[key] = Config.discover(path)
            base = configs[key]
        return base.overridden(select=select, ignore=ignore)

    try:
        discovery = discover(paths, config_for, force_exclude=args.force_exclude)
    except ConfigError as error:
        _error(str(error))
        return 2
    for path in discovery.missing:
        _error(f"{path}: no such file or directory")

    mode = "diff" if args.diff else "fix" if args.fix else "check"
    try:
        results = check_targets(discovery.targets, mode, args.jobs)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    results.sort(key=lambda r: r.report.path)
    reports = [r.report for r in results]

    out = open(args.output_file, "w", encoding="utf-8") if args.output_file else sys.stdout
    try:
        if mode == "diff":
            status = _report_diff(results, out, args)
        else:
            for result in results:
                if result.write_error:
                    _error(f"{result.report.path}: {result.write_error}")
            if args.statistics:
                out.write(format_statistics(reports, "json" if args.format == "json" else "text"))
            else:
                summary = Summary(fixed=sum(r.fixed for r in results), fixing=mode == "fix", quiet=args.quiet)
                text = render(reports, args.format, summary)
                out.write(text)
            status = 1 if any(r.report.findings or r.report.problems for r in results) else 0
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()

    if args.exit_zero:
        status = 0
    if any(p.kind == "internal-error" for r in reports for p in r.problems):
        status = 2
    if discovery.missing or any(r.write_error for r in results):
        status = 2
    return status


def _report_diff(results: Sequence[FileResult], out, args) -> int:
    diffs = [r for r in results if r.diff]
    for result in diffs:
        out.write(result.diff)
    for result in results:
        for problem in result.report.problems:
            print(problem_line(problem), file=sys.stderr)
    fixed = sum(r.fixed for r in diffs)
    if not args.quiet:
        if diffs:
            print(f"Would fix {fixed} problem{'s' if fixed != 1 else ''} in {len(diffs)} file{'s' if len(diffs) != 1 else ''}.",
                  file=sys.stderr)
        else:
            print("No fixes available.", file=sys.stderr)
    return 1 if diffs or any(r.report.problems for r in results) else 0
