"""The "Run Sanity Probe" and "Watch Training Run" CodeLenses: where a training script starts, read from the program model.

An entry point is a top-level statement that trains when the script runs — a loop whose body (helpers
included, also across sibling modules) calls ``backward()`` and an optimizer's ``step()``, a call of a
function that runs such a loop, or Lightning's ``trainer.fit()`` — or the ``if __name__ ==
"__main__":`` block that does so. A guard whose training the model cannot follow (a CLI dispatcher,
say) still gets the lens when the file holds a training loop. A module that only defines training
functions (a library: nothing runs them when it is executed) gets none, since probing it would run
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from lsprotocol import types

from ..analyzers import Position
from ..analyzers.flow import BACKWARD, FIT, LOOP_TYPES, OPT_STEP, Effect, flow_of
from ..analyzers.model import ProgramModel, dotted_name
from ..analyzers.positions import locate
from .lsp_positions import LineIndex

RUN_SANITY_PROBE = "torchsanity.runSanityProbe"  # the client's command: probe the file given as argument
LENS_TITLE = "Run Sanity Probe"
UNTRUSTED_TITLE = "Sanity Probe disabled: the workspace is not trusted"
WATCH_TRAINING_RUN = "torchsanity.watchTrainingRun"  # the client's command: watch a run of the file given
WATCH_TITLE = "Watch Training Run"


@dataclass(frozen=True)
class EntryPoint:
    line: int  # 1-based line of the statement in the analysed text
    kind: str  # "main-guard" | "training-loop" | "training-call"


def _trains(effects: list[Effect]) -> list[Effect]:
    """The effects that make these effects train: a FIT, or a backward and a step in one loop."""
    out = [e for e in effects if e.kind == FIT]
    loops: dict[int, set[str]] = {}
    for e in effects:
        if e.kind in (BACKWARD, OPT_STEP):
            for c in e.ctx:
                if isinstance(c, LOOP_TYPES):
                    loops.setdefault(id(c), set()).add(e.kind)
    training_loops = {key for key, kinds in loops.items() if len(kinds) == 2}
    out += [e for e in effects if e.kind in (BACKWARD, OPT_STEP) and any(id(c) in training_loops for c in e.ctx)]
    return out


def is_main_guard(statement: cst.CSTNode) -> bool:
    """``if __name__ == "__main__":`` (either side, any quotes)."""
    if not isinstance(statement, cst.If) or not isinstance(statement.test, cst.Comparison):
        return False
    test = statement.test
    if len(test.comparisons) != 1 or not isinstance(test.comparisons[0].operator, cst.Equal):
        return False
    sides = (test.left, test.comparisons[0].comparator)
    names = [dotted_name(side) for side in sides]
    strings = [side.evaluated_value for side in sides if isinstance(side, cst.SimpleString)]
    return "__name__" in names and strings == ["__main__"]


def entry_points(model: ProgramModel) -> list[tuple[cst.CSTNode, str]]:
    """The top-level statements to put the lens on, in order, with their kind."""
    flow = flow_of(model)
    body = list(model.module.body)
    position = {id(statement): i for i, statement in enumerate(body)}

    def top(node: cst.CSTNode) -> cst.CSTNode | None:
        while node is not None and id(node) not in position:
            node = model.parent(node)
        return node

    chosen: dict[int, tuple[cst.CSTNode, str]] = {}
    for effect in _trains(flow.scope(model.module).effects):
        statement = top(effect.site)
        if statement is None or id(statement) in chosen:
            continue
        if is_main_guard(statement):
            kind = "main-guard"
        elif isinstance(statement, LOOP_TYPES):
            kind = "training-loop"
        else:
            kind = "training-call"
        chosen[id(statement)] = (statement, kind)
    if not any(kind == "main-guard" for _, kind in chosen.values()):
        guard = next((s for s in body if is_main_guard(s)), None)
        if guard is not None and any(_trains(scope.effects) for scope in flow.all_scopes()):
            chosen[id(guard)] = (guard, "main-guard")
    return sorted(chosen.values(), key=lambda item: position[id(item[0])])


def locate_entry_points(model: ProgramModel, source: str, statement_lines: dict[int, int] | None) -> tuple[EntryPoint, ...]:
    """:func:`entry_points` with their lines in ``source`` (the text that was parsed)."""
    found = entry_points(model)
    if not found:
        return ()
    ranges = locate(model, [statement for statement, _ in found], statement_lines, source)
    out = []
    for statement, kind in found:
        code_range = ranges.get(statement)
        if code_range is not None:
            out.append(EntryPoint(code_range.start.line, kind))
    return tuple(out)


def lens_range(index: LineIndex, line: int) -> types.Range:
    """The lens' range: the statement's first line (1-based), as the client counts."""
    text = index.line_text(line - 1)
    return types.Range(
        start=types.Position(line=line - 1, character=0),
        end=index.to_client(Position(line, len(text))),
    )


def code_lenses(uri: str, ranges: list[types.Range], trusted: bool) -> list[types.CodeLens]:
    """Per entry point a "Run Sanity Probe" lens (the command runs the probe on ``uri``) and, in a trusted
    workspace, a "Watch Training Run" lens next to it."""
    title = LENS_TITLE if trusted else UNTRUSTED_TITLE
    lenses = []
    for rng in ranges:
        lenses.append(types.CodeLens(range=rng, command=types.Command(title=title, command=RUN_SANITY_PROBE,
                                                                      arguments=[uri])))
        if trusted:
            lenses.append(types.CodeLens(range=rng, command=types.Command(title=WATCH_TITLE,
                                                                          command=WATCH_TRAINING_RUN, arguments=[uri])))
    return lenses
