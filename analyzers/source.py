"""Parsing source text: one place that knows about the parser (reading it, as CPython decodes it, is
:mod:`.source_text`'s job).

Two things here keep libcst's native parser out of trouble:
- the text it gets is decoded as CPython decodes it (:func:`.source_text.read_source`);
- :func:`parse_source` refuses text that nests deeper than :data:`MAX_NESTING` before the native parser
  sees it: the parser recurses on every nesting level and overflows its stack (killing the process)
  somewhere past 3,400 nested lambdas, 6,800 ``and`` terms or 9,800 ``not``\\ s, and its time grows
  quadratically well before that.
"""

from __future__ import annotations

import os
import re

# The native (Rust) parser: fast, and it accepts every Python version libcst knows.
os.environ.setdefault("LIBCST_PARSER_TYPE", "native")

import libcst as cst  # noqa: E402


# ---- the nesting guard ------------------------------------------------------------------------------

# A bound on how deep libcst's syntax tree gets, counted from the tokens. libcst's native parser
# overflows its stack past ~3,400 nested lambdas (~6,800 `and` terms, ~9,800 `not`s) and takes seconds
# from ~3,000 levels; CPython itself refuses more than 200 nested brackets.
MAX_NESTING = 1000
MAX_BRACKETS = 200

_TOKEN = re.compile(
    r"""
    (?P<string>(?i:[rbuf]{0,2})(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^\\'\r\n])*'|"(?:\\.|[^\\"\r\n])*"))
    | (?P<comment>\#[^\r\n]*)
    | (?P<continuation>\\(?:\r\n|\r|\n))
    | (?P<number>\.?\d[\w.]*)
    | (?P<name>[^\W\d]\w*)
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    | (?P<comma>,)
    | (?P<end>[;\r\n])
    | (?P<operator>\*\*|//|<<|>>|[-+*/%@&|^~.])
    """,
    re.VERBOSE | re.DOTALL,
)
# Names that add a level to the tree when they chain: `not not x`, `a and b and c`, `lambda: lambda: x`,
# `a if b else c if d else e`, `await await x`.
_CHAINING = frozenset({"not", "and", "or", "lambda", "if", "await"})
_F_BRACKETS = re.compile(r"[{}()\[\]]")


class NestingTooDeep(cst.ParserSyntaxError):
    """Text that nests too deeply for the native parser; refused before it is parsed."""


def nesting_depth(text: str) -> tuple[int, int, int]:
    """An upper bound on the depth of the syntax tree of any statement of ``text``, from its tokens:
    ``(depth, line, deepest brackets)`` for the deepest point. Each bracket counts one level, and so does
    each operator, attribute dot, trailer, chaining keyword (``not``, ``and``, ``or``, ``lambda``,
    ``if``, ``await``) and adjacent string since the last comma of the same bracket (a left- or
    right-nested chain); the brackets inside an f-string's replacement fields count too."""
    levels = [0]  # per open bracket: chained tokens since its last comma
    total = 0  # sum(levels) + len(levels) - 1
    deepest = deepest_line = brackets = 0
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("comment", "number") or (kind == "name" and match.group() not in _CHAINING):
            continue
        if kind == "continuation":
            line += 1
            continue
        if kind == "end":
            if match.group() != ";":
                if match.group() == "\r" and text.startswith("\n", match.end()):
                    continue
                line += 1
            if len(levels) == 1:  # a logical line (or `;` statement) ends: start afresh
                levels[0] = total = 0
            continue
        if kind == "open":
            levels[-1] += 1
            levels.append(0)
            total += 2
            brackets = max(brackets, len(levels) - 1)
        elif kind == "close":
            if len(levels) > 1:
                total -= levels.pop() + 1
            continue
        elif kind == "comma":
            total -= levels[-1]
            levels[-1] = 0
            continue
        else:  # an operator, a dot, a chaining keyword, a string
            levels[-1] += 1
            total += 1
            if kind == "string":
                value = match.group()
                line += value.count("\n") or value.count("\r")
                if "f" in value[:3].lower() and "{" in value:
                    total_here = total + _bracket_depth(value)
                    if total_here > deepest:
                        deepest, deepest_line = total_here, line
                    continue
        if total > deepest:
            deepest, deepest_line = total, line
    return deepest, deepest_line, brackets


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for match in _F_BRACKETS.finditer(text):
        depth = depth + 1 if match.group() in "{([" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def check_nesting(text: str, limit: int = MAX_NESTING) -> None:
    """Raise :class:`NestingTooDeep` (a ``libcst.ParserSyntaxError``) when ``text`` nests deeper than
    ``limit`` levels, or deeper than the 200 brackets CPython allows."""
    depth, line, brackets = nesting_depth(text)
    if brackets > MAX_BRACKETS:
        message = f"brackets {brackets} deep (Python allows {MAX_BRACKETS})"
    elif depth > limit:
        message = f"an expression about {depth} levels deep (the limit is {limit})"
    else:
        return
    raise NestingTooDeep(f"nests too deeply to parse safely: {message}", lines=[""], raw_line=max(line, 1), raw_column=0)


# Indentation holding a form feed before code: CPython restarts the column count at each form feed;
# libcst does not (it rejects some such files, and writes others back without the form feed).
_FORM_FEED_INDENT = re.compile(r"^[ \t\f]*\f(?=[ \t]*[^ \t\f\r\n])", re.MULTILINE)


def without_form_feed_indents(text: str) -> tuple[str, dict[int, int]]:
    """``text`` as CPython reads its indentation: on each line whose indentation holds a form feed, the
    whitespace up to the last one removed. Returns that text and ``{line: characters removed}``."""
    if "\f" not in text:
        return text, {}
    shifts: dict[int, int] = {}
    line, counted = 1, 0
    for match in _FORM_FEED_INDENT.finditer(text):
        line += text.count("\n", counted, match.start())
        counted = match.start()
        shifts[line] = match.end() - match.start()
    return (_FORM_FEED_INDENT.sub("", text), shifts) if shifts else (text, {})


def parse_source(text: str) -> cst.Module:
    """Parse with libcst; raises ``libcst.ParserSyntaxError`` on invalid code, and :class:`NestingTooDeep`
    (a subclass) on nesting the native parser would crash on."""
    check_nesting(text)
    return cst.parse_module(text)
