"""The loss calls' shortcut (losses.py): a callee name that the module only ever calls is never looked up in the
dataflow. It must be a name the module binds in no way, and the dataflow must indeed know nothing of it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest
from torchsanity.analyzers.dataflow import dataflow
from torchsanity.analyzers.losses import _only_called
from torchsanity.analyzers.model import ProgramModel

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.py"))


def program_of(text: str) -> ProgramModel:
    return ProgramModel.build(cst.parse_module(textwrap.dedent(text)), "train.py")


# Each binds `crit` in its own way, and calls it.
BINDINGS = {
    "assignment": "crit = make()\ncrit(p, y)",
    "parameter": "def f(crit):\n    return 1\ncrit(p, y)",
    "lambda parameter": "g = lambda crit: 0\ncrit(p, y)",
    "def": "def crit(a, b):\n    return a\ncrit(p, y)",
    "class": "class crit:\n    pass\ncrit(p, y)",
    "import": "import crit\ncrit(p, y)",
    "import as": "from losses import ce as crit\ncrit(p, y)",
    "star import": "from losses import *\ncrit(p, y)",
    "for target": "for crit in losses:\n    crit(p, y)",
    "with target": "with make() as crit:\n    crit(p, y)",
    "except target": "try:\n    pass\nexcept E as crit:\n    crit(p, y)",
    "walrus": "if (crit := make()):\n    crit(p, y)",
    "comprehension": "[crit(p, y) for crit in losses]",
    "global": "def f():\n    global crit\ncrit(p, y)",
    "augmented": "crit += 1\ncrit(p, y)",
    "annotated": "crit: Loss\ncrit(p, y)",
    "unpacking": "a, *crit = make()\ncrit(p, y)",
    "passed on": "use(crit)\ncrit(p, y)",
}


@pytest.mark.parametrize("how", sorted(BINDINGS))
def test_a_name_the_module_binds_or_reads_is_looked_up(how):
    assert "crit" not in _only_called(program_of(BINDINGS[how]))


def test_a_name_the_module_only_calls_is_not():
    assert {"print", "crit"} <= _only_called(program_of("def f(x):\n    print(crit(x, 1))\n"))


def test_the_dataflow_knows_nothing_of_the_names_skipped_in_the_corpus():
    skipped = 0
    for path in CORPUS:
        program = program_of(path.read_text(encoding="utf-8"))
        flow, only = dataflow(program), _only_called(program)
        for call in program.calls:
            if type(call.func) is cst.Name and call.func.value in only:
                assert not flow.definitions(call.func), f"{path.name}: {call.func.value}"
                skipped += 1
    assert skipped > 100  # (the corpus calls print, range, len... often enough for this to prove something)
