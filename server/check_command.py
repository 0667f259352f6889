"""`torchsanity check PATH…`: the static checks on files, notebooks, directories and stdin.

Exit status: 0 clean, 1 findings (or files that do not parse / cannot be read), 2 usage error (an unknown
rule code, a missing path), configuration error or an internal error. Unchanged files come from the
cache; the others are checked in parallel on every core when there are enough of them to pay for the
worker start-up (server/check_workers.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from .check_formats import Summary, format_fixes, format_statistics, render
from .file_discovery import Target, discover
from .fix_output import report_diff

STDIN = "-"


def _error(message: str) -> None:
    print(f"torchsanity: error: {message}", file=sys.stderr)


def _default_format(args) -> str:
    """ruff's decision for colour, applied to the layout: the full format (source lines, carets) when
    the report goes to a terminal, the concise one-line-per-finding format when it is piped or written
    to a file (so scripts that read `path:line:col: CODE message` lines keep working)."""
    if args.format:
        return "concise" if args.format == "text" else args.format
    return "full" if not args.output_file and sys.stdout.isatty() else "concise"


def _color(args) -> bool:
    if args.color != "auto":
        return args.color == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or (not args.output_file and sys.stdout.isatty())


def run(args: argparse.Namespace) -> int:
    from ..analyzers import Config, ConfigError

    paths = list(args.paths or ["."])
    if STDIN in paths and (args.fix or args.diff or args.add_noqa or args.watch):
        _error("--fix, --diff, --add-noqa and --watch need files: they cannot be used with stdin (-)")
        return 2
    select, ignore = args.select or None, args.ignore or None
    configs: dict[str, Config] = {}
    try:
        explicit = Config.from_file(args.config) if args.config else None
    except ConfigError as error:
        _error(str(error))
        return 2

    def config_for(path: Path) -> Config:
        if explicit is not None:
            base = explicit
        elif args.no_config:
            base = Config(root=Path(os.path.abspath(path if path.is_dir() else path.parent)))
        else:
            key = os.path.abspath(path if path.is_dir() else path.parent)
            if key not in configs:
                configs[key] = Config.discover(path)
            base = configs[key]
        config = base.overridden(select=select, ignore=ignore, extend_select=args.extend_select,
                                 extend_exclude=args.extend_exclude)
        return replace(config, unsafe_fixes=args.unsafe_fixes, follow_symlinks=args.follow_symlinks)

    def check_once() -> int:
        workers = sys.modules.get(f"{__package__}.check_workers")  # imported once a file was analysed
        if workers is not None:
            workers.forget_projects()  # sibling modules may have changed since the last run (--watch)
        return _check(args, paths, config_for)

    try:
        if args.watch:
            from .check_session import watch

            return watch(paths, check_once)
        return check_once()
    except ConfigError as error:
        _error(str(error))
        return 2


def _stdin_target(args, config_for) -> Target:
    name = args.stdin_filename or STDIN
    text = sys.stdin.read()
    config = config_for(Path(name) if args.stdin_filename else Path.cwd())
    root = os.path.dirname(os.path.abspath(name)) if args.stdin_filename else os.getcwd()
    return Target(name, config, root, stdin_text=text)


def _check(args, paths: list[str], config_for) -> int:
    from .check_session import (add_noqa_directives, notebook_maps, open_cache, run_targets, sarif_rules_of,
                                settings_text, source_reader)
    from .check_result import Budget

    files = [p for p in paths if p != STDIN]
    discovery = discover(files, config_for, force_exclude=args.force_exclude,
                         respect_gitignore=args.respect_gitignore) if files else None
    targets = list(discovery.targets) if discovery else []
    missing = list(discovery.missing) if discovery else []
    if STDIN in paths:
        targets.append(_stdin_target(args, config_for))
    for path in missing:
        _error(f"{path}: no such file or directory")
    cache = open_cache(args)

    if args.show_files:
        for target in sorted(targets, key=lambda t: t.path):
            print(target.path)
        return 2 if missing else 0
    if args.show_settings:
        first = targets[0] if targets else None
        config = first.config if first else config_for(Path(files[0]) if files else Path.cwd())
        print(settings_text(config, first.path if first else (files[0] if files else "."), args.respect_gitignore,
                            cache), end="")
        return 2 if missing else 0

    mode = "diff" if args.diff else "fix" if args.fix else "check"
    try:
        results, cached = run_targets(targets, mode, args.jobs, cache, args.unsafe_fixes,
                                      Budget(args.file_timeout, int(args.file_memory)))
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    results.sort(key=lambda r: r.report.path)
    reports = [r.report for r in results]

    noqa_errors: list[str] = []
    if args.add_noqa:
        added, noqa_errors = add_noqa_directives(results)
        for message in noqa_errors:
            _error(message)
        if not args.quiet:
            print(f"Added {added} noqa directive{'s' if added != 1 else ''}.", file=sys.stderr)
        return 2 if missing or noqa_errors else 0

    output_format = _default_format(args)
    out = open(args.output_file, "w", encoding="utf-8") if args.output_file else sys.stdout
    try:
        if mode == "diff":
            status = report_diff(results, out, args)
        else:
            for result in results:
                if result.write_error:
                    _error(f"{result.report.path}: {result.write_error}")
            summary = Summary(fixed=sum(r.fixed for r in results), fixing=mode == "fix", quiet=args.quiet,
                              unsafe_fixes=args.unsafe_fixes, notebooks=notebook_maps(targets),
                              source_of=source_reader(targets), color=_color(args), unread=len(missing),
                              rules=sarif_rules_of(cache))
            if args.statistics:
                skipped = sum(1 for r in results if r.skipped)
                out.write(format_statistics(reports, "json" if output_format == "json" else "text"))
                if output_format != "json" and not args.quiet:
                    out.write(f"{len(results)} files checked: {skipped} could not hold a finding (not parsed), "
                              f"{cached} unchanged (from the cache).\n")
            else:
                out.write(render(reports, output_format, summary))
            if args.show_fixes and mode == "fix" and not args.quiet:
                out.write(format_fixes(results))
            status = 1 if any(r.report.findings or r.report.problems for r in results) else 0
            if args.exit_non_zero_on_fix and any(r.fixed for r in results):
                status = 1
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()

    if args.exit_zero:
        status = 0
    if any(p.kind == "internal-error" for r in reports for p in r.problems):
        status = 2
    if missing or any(r.write_error for r in results):
        status = 2
    return status

