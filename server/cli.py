"""`torchsanity` — the command line. Each subcommand lives in its own module, imported on use."""

from __future__ import annotations

import argparse
import sys


_COMMANDS = {  # name: (module with add_arguments, help)
    "check": ("check_options", "statically check Python files or directories"),
    "probe": ("probe_command", "run Karpathy's sanity checks on a training script"),
    "watch": ("watch_command", "watch a training run: curves and verdicts while it runs"),
    "rule": ("rule_command", "print a rule's documentation"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or, given ``command``, one that knows only that subcommand's
    options (the others' modules are not imported: `check` starts faster)."""
    from importlib import import_module

    parser = argparse.ArgumentParser(
        prog="torchsanity",
        description="Static checks and runtime sanity probes for PyTorch training code.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _COMMANDS.items():
        subparser = commands.add_parser(name, help=help_text)
        if command is None or command == name:
            import_module(f".{module}", __package__).add_arguments(subparser)
    commands.add_parser("server", help="run the language server on stdio")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(first if first in _COMMANDS else None)
    # `probe train.py --output r.html -- --epochs 3`: everything after `--` belongs to the script, so it
    # is split off before argparse sees it (argparse would otherwise reject options after the script).
    script_args = None
    runner = min((argv.index(name) for name in ("probe", "watch") if name in argv), default=None)
    if runner is not None and "--" in argv and argv.index("--") > runner:
        cut = argv.index("--")
        argv, script_args = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if script_args is not None:
        args.script_args = script_args
    if args.version:
        from importlib.metadata import version

        print(f"torchsanity {version('torchsanity')}")
        return 0
    if args.command == "check":
        from .check_command import run

        return run(args)
    if args.command == "probe":
        from .probe_command import run

        return run(args)
    if args.command == "watch":
        from .watch_command import run

        return run(args)
    if args.command == "rule":
        from .rule_command import run

        return run(args)
    if args.command == "server":
        from .language_server import start_stdio

        start_stdio()
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
