"""Each function's effects, kept from one version of an edited text to the next with what they depend on.

:class:`~torchsanity.analyzers.flow.Flow` finds a function's effects from its own code, the effects of the
helpers inlined into it and module-level facts (imports, classes, function names, the kinds of bindings:
:meth:`ProgramModel.facts`). :class:`FunctionReuse` records, while a function is walked, which helper
functions it used (transitively), and hands the result on to the next version of the text
(:meth:`ProgramModel.handed_on`), which takes it over only while the function is the very same node, the
facts are the very same object and every helper is still a function of the program. Effects that depend on
anything else — a recursion guard's cut (which depends on the order of the questions) or a sibling module of
the project (which may change unseen) — are never handed on.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

import libcst as cst

E = TypeVar("E")
_Deps = dict[int, cst.FunctionDef]  # the helper functions used, by id


class FunctionReuse(Generic[E]):
    """The dependency bookkeeping of one program's per-function effects."""

    def __init__(self, facts: tuple, handed: tuple[tuple, dict[int, tuple]] | None) -> None:
        self.facts = facts
        self._carried = handed[1] if handed is not None and handed[0] is facts else {}
        self._found: dict[int, tuple[cst.FunctionDef, str | None, _Deps | None, E]] = {}
        self._collecting: list[_Deps | None] = []  # one per function being walked

    def carried(self, func: cst.FunctionDef, self_class: str | None,
                defined: Callable[[cst.FunctionDef], bool]) -> E | None:
        """The effects the previous version found for ``func``, if they still hold: same node, same class of
        ``self``, and every helper they came through still ``defined``. Recorded as found here."""
        carried = self._carried.get(id(func))
        if carried is None or carried[0] is not func or carried[1] != self_class \
                or not all(defined(helper) for helper in carried[2].values()):
            return None
        self._found[id(func)] = carried
        self.used(func)
        return carried[3]

    def begin(self) -> None:
        """A function's walk begins: the functions it uses are collected from now on."""
        self._collecting.append({})

    def end(self, func: cst.FunctionDef, self_class: str | None, effects: E) -> None:
        """The walk of ``func`` that :meth:`begin` began is over: record what it found and used."""
        deps = self._collecting.pop()
        self._found[id(func)] = (func, self_class, deps, effects)
        self.used(func)

    def used(self, func: cst.FunctionDef) -> None:
        """The function being walked uses the (recorded) effects of ``func``, and what they depend on."""
        if not self._collecting or self._collecting[-1] is None:
            return
        found = self._found.get(id(func))
        if found is None or found[2] is None:
            self.cut_short()
            return
        self._collecting[-1][id(func)] = func
        self._collecting[-1].update(found[2])

    def cut_short(self) -> None:
        """The function being walked depends on more than the text: its effects are not handed on."""
        if self._collecting:
            self._collecting[-1] = None

    def hand_on(self) -> tuple[tuple, dict[int, tuple]]:
        """What the next version of the text may take over (see :meth:`carried`)."""
        return self.facts, {key: found for key, found in self._found.items() if found[2] is not None}
