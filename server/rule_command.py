"""`torchsanity rule [CODE]`: a rule's documentation, or the list of rules.

- ``torchsanity rule SAN101`` (or the rule's name, ``missing-zero-grad``) prints its docs (Markdown);
- ``torchsanity rule`` lists every rule: code, name, fix available, message;
- ``torchsanity rule --all`` prints every rule's docs; ``--format json`` gives the same as JSON;
- ``torchsanity rule --all --output-dir docs/rules`` writes one ``CODE.md`` page per rule and an index.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", metavar="CODE", help="a rule code (SAN101) or name (missing-zero-grad)")
    parser.add_argument("--all", action="store_true", help="every rule's documentation")
    parser.add_argument("--format", "--output-format", dest="format", choices=("text", "markdown", "json"),
                        default="text", help="output format (text and markdown are the same Markdown page)")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="with --all: write one Markdown page per rule (CODE.md) and README.md into DIR")


def has_fix(rule) -> bool:
    return any(getattr(example, "fixed", None) is not None for example in getattr(rule, "INVALID", ()))


def rule_json(rule) -> dict:
    from ..analyzers import docs_url

    return {
        "code": rule.code,
        "name": rule.name,
        "severity": rule.severity.value,
        "message": rule.message,
        "fix": has_fix(rule),
        "url": docs_url(rule.code),
        "docs": rule.docs_markdown(),
    }


def rule_table(rules) -> str:
    if not rules:
        return "No rules are registered.\n"
    name_width = max(len(r.name) for r in rules)
    lines = [f"{r.code}  {r.name:<{name_width}}  {'[*]' if has_fix(r) else '   '}  {r.message}" for r in rules]
    lines.append("")
    lines.append(f"{len(rules)} rules; [*] = has a fix (safe ones: `check --fix`; unsafe ones: `--unsafe-fixes`; "
                 "each page's Fix safety says which). "
                 "`torchsanity rule CODE` prints a rule's documentation.")
    return "\n".join(lines) + "\n"


def index_page(rules) -> str:
    lines = ["# torchsanity rules", "", "| code | name | fix | finds |", "|---|---|---|---|"]
    for r in rules:
        lines.append(f"| [{r.code}]({r.code}.md) | {r.name} | {'yes' if has_fix(r) else '—'} | {r.message} |")
    return "\n".join(lines) + "\n"


def write_pages(rules, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for rule in rules:
        page = directory / f"{rule.code}.md"
        page.write_text(rule.docs_markdown(), encoding="utf-8")
        written.append(page)
    index = directory / "README.md"
    index.write_text(index_page(rules), encoding="utf-8")
    written.append(index)
    return written


def _unknown(code: str, rules) -> str:
    candidates = [r.code for r in rules] + [r.name for r in rules]
    close = difflib.get_close_matches(code.upper(), [r.code for r in rules], n=3) or difflib.get_close_matches(
        code.lower(), [r.name for r in rules], n=3
    )
    message = f"torchsanity: error: unknown rule {code!r}."
    if close:
        message += f" Did you mean {', '.join(close)}?"
    message += " Run `torchsanity rule` for the list."
    del candidates
    return message


def run(args: argparse.Namespace) -> int:
    from ..analyzers import all_rules, get_rule

    rules = list(all_rules())
    if args.output_dir and not args.all:
        print("torchsanity: error: --output-dir needs --all", file=sys.stderr)
        return 2
    if args.code and args.all:
        print("torchsanity: error: give a rule code or --all, not both", file=sys.stderr)
        return 2

    if args.code:
        rule = get_rule(args.code.strip())
        if rule is None:
            print(_unknown(args.code.strip(), rules), file=sys.stderr)
            return 2
        if args.format == "json":
            print(json.dumps(rule_json(rule), indent=2, ensure_ascii=False))
        else:
            sys.stdout.write(rule.docs_markdown())
        return 0

    if args.all:
        if args.output_dir:
            written = write_pages(rules, Path(args.output_dir))
            print(f"wrote {len(written)} pages to {args.output_dir}")
            return 0
        if args.format == "json":
            print(json.dumps([rule_json(r) for r in rules], indent=2, ensure_ascii=False))
        else:
            sys.stdout.write("\n---\n\n".join(r.docs_markdown() for r in rules))
        return 0

    if args.format == "json":
        print(json.dumps([{k: v for k, v in rule_json(r).items() if k != "docs"} for r in rules], indent=2))
    else:
        sys.stdout.write(rule_table(rules))
    return 0
