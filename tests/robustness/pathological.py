"""Pathological but valid (or almost valid) Python, shared by the robustness tests and
tests/bench/bench_pathological.py: nesting of every expression kind, huge literals, huge files.

Each text starts like a training script (so no file is passed over as unable to hold a finding)."""

from __future__ import annotations

import json

HEADER = "import torch\nloss = torch.zeros(1)\n"


def _fstrings(depth: int) -> str:
    text = "1"
    for _ in range(depth):
        text = 'f"{' + text + '}"'
    return text


# kind -> expression nested ``depth`` deep
NESTING = {
    "not": lambda n: "not " * n + "a",
    "and": lambda n: " and ".join(f"a{i % 7}" for i in range(n)),
    "or": lambda n: " or ".join(f"a{i % 7}" for i in range(n)),
    "lambda": lambda n: "lambda: " * n + "1",
    "attribute": lambda n: "a" + ".b" * n,
    "power": lambda n: "a" + " ** a" * n,
    "unary-minus": lambda n: "-" * n + "a",
    "ternary": lambda n: "a" + " if b else a" * n,
    "calls": lambda n: "f(" * n + ")" * n,
    "call-chain": lambda n: "f" + "()" * n,
    "subscripts": lambda n: "a[" * n + "0" + "]" * n,
    "subscript-chain": lambda n: "a" + "[0]" * n,
    "parentheses": lambda n: "(" * n + "1" + ")" * n,
    "brackets": lambda n: "[" * n + "]" * n,
    "dicts": lambda n: "{1: " * n + "1" + "}" * n,
    "binary-plus": lambda n: "a" + " + a" * n,
    "strings": lambda n: " ".join(["'a'"] * n),
    "f-strings": _fstrings,
}


def nested(kind: str, depth: int) -> str:
    """A training-script header and one statement whose expression nests ``depth`` deep."""
    return HEADER + "x = " + NESTING[kind](depth) + "\n"


def big_literal(megabytes: float) -> str:
    """A data literal (a list of dicts) of about ``megabytes`` MB on one statement."""
    items, size, i = [], 0, 0
    while size < megabytes * 1_000_000:
        item = json.dumps({"id": i, "name": f"item{i}", "values": [i, i * 2, i * 3]})
        items.append(item)
        size += len(item) + 2
        i += 1
    return HEADER + "DATA = [\n" + ",\n".join(items) + "\n]\n"


def many_lines(lines: int) -> str:
    """A valid file of ``lines`` short statements and a correct training loop at the end (no finding)."""
    body = "".join(f"value_{i} = {i}\n" for i in range(lines - 8))
    return HEADER + "torch.manual_seed(0)\n" + body + (
        "for x, y in loader:\n"
        "    optimizer.zero_grad()\n"
        "    loss = criterion(model(x), y)\n"
        "    loss.backward()\n"
        "    optimizer.step()\n"
    )


# A file with a real bug, checked next to the pathological ones: its finding must still be reported.
BUGGY = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
BUGGY_FINDING = "buggy.py:2:7: SAN504"
