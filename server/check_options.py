"""The options of `torchsanity check` (ruff's `check` is the model) and how they are parsed."""

from __future__ import annotations

import argparse

from .check_formats import FORMATS
from .check_result import DEFAULT_FILE_MEMORY, DEFAULT_FILE_TIMEOUT


def selectors(value: str) -> list[str]:
    """A comma-separated list of rule codes / prefixes; an unknown one is a usage error naming the closest."""
    from ..analyzers.config import unknown_selector_message

    codes = [part.strip().upper() for part in value.split(",") if part.strip()]
    for code in codes:
        message = unknown_selector_message(code)
        if message is not None:
            raise argparse.ArgumentTypeError(message)
    return codes


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid job count {value!r}") from None
    if jobs < 0:
        raise argparse.ArgumentTypeError("the job count must be 0 (all cores) or more")
    return jobs


def _budget(value: str) -> float:
    try:
        budget = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid budget {value!r}") from None
    if budget < 0 or budget != budget or budget == float("inf"):
        raise argparse.ArgumentTypeError("a budget must be 0 (no limit) or more")
    return budget


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", default=None,
                        help="files or directories to check, or - for stdin (default: the current directory)")
    parser.add_argument("--format", "--output-format", dest="format", choices=FORMATS, default=None,
                        help="output format (default: full on a terminal, concise otherwise; text = concise)")
    parser.add_argument("--fix", action="store_true", help="apply every safe fix and write the files")
    parser.add_argument("--unsafe-fixes", action="store_true",
                        help="with --fix / --diff: apply the unsafe fixes too (they may change behaviour you rely on)")
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="with --fix: write a symlinked file's target (inside the project) instead of refusing")
    parser.add_argument("--diff", action="store_true",
                        help="print the safe fixes as a unified diff and write nothing (exit 1 when there is a fix)")
    parser.add_argument("--show-fixes", action="store_true", help="with --fix: list what was fixed, per file and code")
    parser.add_argument("--add-noqa", action="store_true",
                        help="add a `# noqa: CODE` directive to every line with a finding (writes the files)")
    parser.add_argument("--statistics", action="store_true",
                        help="print the number of findings per rule (and how many files could not hold one)")
    parser.add_argument("--select", type=selectors, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to enable (replaces the configuration's select)")
    parser.add_argument("--extend-select", type=selectors, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to enable on top of the configuration's select")
    parser.add_argument("--ignore", type=selectors, action="extend", metavar="CODES",
                        help="comma-separated codes or prefixes to disable (added to the configuration's ignore)")
    parser.add_argument("--config", metavar="FILE",
                        help="use this configuration file (a pyproject.toml or a torchsanity.toml) for every path")
    parser.add_argument("--no-config", "--isolated", dest="no_config", action="store_true",
                        help="ignore every configuration file")
    parser.add_argument("--extend-exclude", action="extend", type=lambda v: [p for p in v.split(",") if p],
                        metavar="GLOBS", help="comma-separated globs to exclude on top of the configuration's")
    parser.add_argument("--force-exclude", action="store_true",
                        help="apply the exclusions (exclude, .gitignore) to files named on the command line too")
    parser.add_argument("--respect-gitignore", dest="respect_gitignore", action="store_true", default=True,
                        help="skip what .gitignore / .ignore files ignore (the default)")
    parser.add_argument("--no-respect-gitignore", dest="respect_gitignore", action="store_false",
                        help="check files that .gitignore / .ignore files ignore")
    parser.add_argument("--stdin-filename", metavar="PATH",
                        help="the name of the file read from stdin (`check -`), for configuration and output")
    parser.add_argument("--show-files", action="store_true", help="print the files that would be checked, and exit")
    parser.add_argument("--show-settings", action="store_true",
                        help="print the configuration that applies to the first path, and exit")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--exit-non-zero-on-fix", action="store_true",
                        help="with --fix: exit 1 when a file was changed, even if no finding remains")
    parser.add_argument("-o", "--output-file", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("-j", "--jobs", type=_jobs, default=0, metavar="N",
                        help="worker processes (default 0: one per core; files are always parsed in workers)")
    parser.add_argument("--file-timeout", type=_budget, default=DEFAULT_FILE_TIMEOUT, metavar="SECONDS",
                        help=f"time one file may take before it is skipped with SAN000 (default {DEFAULT_FILE_TIMEOUT:g}; 0: no limit)")
    parser.add_argument("--file-memory", type=_budget, default=DEFAULT_FILE_MEMORY, metavar="MB",
                        help=f"memory one file may take, on Linux, before it is skipped with SAN000 (default {DEFAULT_FILE_MEMORY}; 0: no limit)")
    parser.add_argument("-n", "--no-cache", action="store_true",
                        help="neither read nor write the cache (.torchsanity_cache/ at the project root)")
    parser.add_argument("--cache-dir", metavar="DIR", help="where the cache lives (default: .torchsanity_cache/)")
    parser.add_argument("-w", "--watch", action="store_true", help="re-check whenever a checked file changes")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour in the full format (auto: on a terminal, unless NO_COLOR is set)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print findings only, no summary")
