"""The parts of one `torchsanity check` run around the engine: the cache, stdin, notebooks' cell maps,
`--add-noqa`, `--show-settings`, progress on a terminal and `--watch`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from .check_cache import CACHE_DIR_NAME, Cache, file_hash, project_root, text_hash
from .check_file import is_notebook, read_target_text
from .check_formats import sarif_rules
from .check_result import Budget, FileResult
from .file_discovery import Target

_ANALYZERS = __name__.rsplit(".", 2)[0] + ".analyzers"
_SARIF_RULES = "sarif-rules"


def open_cache(args) -> Cache | None:
    if args.no_cache:
        return None
    directory = Path(args.cache_dir) if args.cache_dir else project_root(Path.cwd()) / CACHE_DIR_NAME
    return Cache(directory)


def _content_hash(target: Target) -> str | None:
    return text_hash(target.stdin_text) if target.stdin_text is not None else file_hash(target.path)


def run_targets(targets: Sequence[Target], mode: str, jobs: int, cache: Cache | None,
                unsafe: bool = False, budget: Budget | None = None) -> tuple[list[FileResult], int]:
    """Check ``targets`` (through the cache when there is one); the results, in order, and how many
    came from the cache."""
    results: list[FileResult | None] = [None] * len(targets)
    hashes = [_content_hash(t) if cache is not None else None for t in targets]
    if cache is not None:
        for i, target in enumerate(targets):
            hit = cache.get(target.path, target.config, hashes[i])
            if hit is None:
                continue
            report, skipped, summary, questions = hit
            if mode != "check" and any(f.fix is not None and (unsafe or f.fix.is_safe) for f in report.findings):
                continue  # there is something to fix: run the fixer
            results[i] = FileResult(report, skipped=skipped, summary=summary, questions=questions)
    misses = [i for i, r in enumerate(results) if r is None]
    cached = len(targets) - len(misses)
    fresh: list[FileResult] = []
    if misses:  # the engine (libcst, the rules) is imported only when some file must be analysed
        from .check_workers import check_targets

        with _progress(len(misses), cached) as progress:
            fresh = check_targets([targets[i] for i in misses], mode, jobs, progress.advance, budget)
    for i, result in zip(misses, fresh):
        results[i] = result
        if any(p.kind == "skipped" for p in result.report.problems):
            continue  # over its budget or crashed: tried again next time (the budget may differ)
        if cache is not None and mode == "check":  # (--fix analyses do not record their dependencies)
            cache.put(targets[i].path, targets[i].config, hashes[i], result.report, result.skipped,
                      result.dependencies, result.summary, result.questions)
    if cache is not None:
        cache.save()
        if mode == "check" and misses and f"{_ANALYZERS}.registry" in sys.modules:
            cache.keep_derived(_SARIF_RULES, sarif_rules)  # the rules are loaded: keep their SARIF entries
    settle(targets, results)  # type: ignore[arg-type]
    return results, cached  # type: ignore[return-value]


def sarif_rules_of(cache: Cache | None) -> Callable[[], list[dict]]:
    """What gives the SARIF format its rule entries: the cache, when there is one (a run answered from it
    then loads no rule class), else the rule classes."""
    if cache is None:
        return sarif_rules

    def from_cache() -> list[dict]:
        return cache.derived(_SARIF_RULES, sarif_rules, _are_sarif_rules)  # type: ignore[return-value]

    return from_cache


def _are_sarif_rules(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in value)


def settle(targets: Sequence[Target], results: Sequence[FileResult]) -> None:
    """Answer the questions the analyses deferred (who calls a function, under which gradient mode) with
    one project index per root, made of every checked file's summary (files of the project that were not
    checked are read as needed), and drop the findings the answers rule out."""
    if not any(result.questions for result in results):
        return
    from ..analyzers.project_index import ProjectIndex, settle_report  # summaries only: no libcst

    indexes: dict[str, ProjectIndex] = {}
    for target, result in zip(targets, results):
        if target.project_root is not None and (result.summary or result.questions):
            index = indexes.get(target.project_root)
            if index is None:
                index = indexes[target.project_root] = ProjectIndex.on_disk(target.project_root)
            index.give(target.path, result.summary)
    for target, result in zip(targets, results):
        if result.questions and target.project_root in indexes:
            settle_report(indexes[target.project_root], target.path, result.report,
                          [tuple(q) for q in result.questions])


class _progress:
    """A rich progress bar with the file count on stderr, on a terminal only, for runs worth waiting on."""

    def __init__(self, files: int, cached: int) -> None:
        self._bar = self._task = None
        if files >= 20 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            note = f" ({cached} unchanged: from the cache)" if cached else ""
            self._bar = Progress(TextColumn("Checking"), BarColumn(), MofNCompleteColumn(), TextColumn(f"files{note}"),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task("check", total=files)

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False


# ---- notebooks and sources for the formats -----------------------------------------------------------


def notebook_maps(targets: Sequence[Target]) -> dict:
    """``{path: Notebook}`` for the notebooks among ``targets``, to report positions per cell."""
    from ..analyzers.notebook import NotebookError, parse_notebook

    maps = {}
    for target in targets:
        if not is_notebook(target.path):
            continue
        try:
            raw = target.stdin_text if target.stdin_text is not None else Path(target.path).read_text(encoding="utf-8")
            maps[target.path] = parse_notebook(raw)
        except (OSError, UnicodeDecodeError, NotebookError):
            continue
    return maps


def source_reader(targets: Sequence[Target]) -> Callable[[str], str | None]:
    """The analysed text of a target by its path (for the full format's source lines)."""
    by_path = {t.path: t for t in targets}

    def source_of(path: str) -> str | None:
        target = by_path.get(path)
        try:
            return read_target_text(path, target.stdin_text if target is not None else None)
        except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
            return None

    return source_of


# ---- --add-noqa ----------------------------------------------------------------------------------------


def add_noqa_directives(results: Sequence[FileResult]) -> tuple[int, list[str]]:
    """Add ``# noqa: CODE`` to every line with a finding (not notebooks or stdin); (directives added,
    errors)."""
    from ..analyzers import add_noqa
    from ..analyzers.source_text import read_source
    from .fix_output import write_fixed

    added, errors = 0, []
    for result in results:
        report = result.report
        codes_by_line: dict[int, set[str]] = {}
        for finding in report.findings:
            if finding.code != "SAN100":
                codes_by_line.setdefault(finding.start.line, set()).add(finding.code)
        if not codes_by_line or is_notebook(report.path) or report.path == "-":
            continue
        try:
            source = read_source(report.path)
        except (OSError, UnicodeDecodeError, ValueError, SyntaxError) as error:
            errors.append(f"{report.path}: cannot read: {error}")
            continue
        lines = source.splitlines(keepends=True)
        changed = 0
        for line, codes in codes_by_line.items():
            if not 0 < line <= len(lines):
                continue
            text = lines[line - 1]
            body = text.rstrip("\r\n")
            ending = text[len(body):]
            new = body
            for code in sorted(codes):
                new = add_noqa(new, code)
            if new != body:
                lines[line - 1] = new + ending
                changed += len(codes)
        if changed:
            try:
                write_fixed(report.path, "".join(lines))
            except (OSError, UnicodeEncodeError) as error:
                errors.append(f"{report.path}: cannot write: {error}")
                continue
            added += changed
    return added, errors


# ---- --show-settings -----------------------------------------------------------------------------------


def settings_text(config, path: str, respect_gitignore: bool, cache: Cache | None) -> str:
    rows = [
        ("path", path),
        ("configuration root", str(config.root) if config.root else "(none)"),
        ("select", ", ".join(config.select)),
        ("ignore", ", ".join(config.ignore) or "(none)"),
        ("per-file-ignores", ", ".join(f"{g} = [{', '.join(c)}]" for g, c in config.per_file_ignores) or "(none)"),
        ("exclude", ", ".join(config.exclude) or "(none)"),
        ("severity", ", ".join(f"{c} = {s.value}" for c, s in config.severity) or "(defaults)"),
        ("respect-gitignore", str(respect_gitignore).lower()),
        ("unsafe-fixes", str(bool(getattr(config, "unsafe_fixes", False))).lower()),
        ("cache", str(cache.directory) if cache is not None else "(off)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "".join(f"{k:<{width}} = {v}\n" for k, v in rows)


# ---- --watch -------------------------------------------------------------------------------------------


def _snapshot(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """mtime and size of every checked-kind file under ``paths`` (directories walked without filters:
    a new file anywhere is a reason to look again)."""
    state: dict[str, tuple[int, int]] = {}
    for raw in paths:
        if os.path.isdir(raw):
            for root, dirs, files in os.walk(raw):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")]
                for name in files:
                    if name.endswith((".py", ".ipynb", ".toml", ".gitignore")):
                        _stat_into(state, os.path.join(root, name))
        else:
            _stat_into(state, raw)
    return state


def _stat_into(state: dict, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    state[path] = (st.st_mtime_ns, st.st_size)


def watch(paths: Sequence[str], check_once: Callable[[], int], interval: float = 0.3) -> int:
    """Run ``check_once`` now and again whenever a file under ``paths`` changes; Ctrl-C ends it."""
    try:
        check_once()
        before = _snapshot(paths)
        while True:
            time.sleep(interval)
            now = _snapshot(paths)
            if now != before:
                before = now
                print(f"[{time.strftime('%H:%M:%S')}] File change detected...", flush=True)
                check_once()
                sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
