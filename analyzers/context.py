"""What a rule's :meth:`~torchsanity.analyzers.rule.Rule.check` receives: one file's program and the
analyses built on it.

Every analysis is built lazily, once per file, and shared by all the rules that run on it: a rule that
asks for :attr:`RuleContext.flow` pays for the effects only if no rule asked before it.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import libcst as cst

from .dataflow import Dataflow, dataflow
from .flow import Flow, flow_of
from .model import ProgramModel
from .values import Values, values

T = TypeVar("T")


class RuleContext:
    """One file as the rules see it: :attr:`program` (the program model: imports, bindings, functions,
    calls, loops of the module; not to be confused with the network, which this codebase calls the
    model), :attr:`flow` (training effects in execution order), :attr:`dataflow` (what a name holds at a
    use), :attr:`values` (the abstract value an expression holds) and :meth:`cached` for any other per-file
    computation several rules share."""

    def __init__(self, program: ProgramModel) -> None:
        self.program = program

    @property
    def module(self) -> cst.Module:
        """The parsed module."""
        return self.program.module

    @property
    def path(self) -> str:
        """The file's path as the front end named it (``<string>`` for text without a file)."""
        return self.program.path

    @property
    def flow(self) -> Flow:
        """The training effects of every scope, in execution order (:mod:`~torchsanity.analyzers.flow`)."""
        return flow_of(self.program)

    @property
    def dataflow(self) -> Dataflow:
        """What names hold at their uses (:mod:`~torchsanity.analyzers.dataflow`)."""
        return dataflow(self.program)

    @property
    def values(self) -> Values:
        """The abstract values expressions hold (:mod:`~torchsanity.analyzers.values`)."""
        return values(self.program)

    def cached(self, compute: Callable[[ProgramModel], T]) -> T:
        """``compute(program)``, computed once per file and shared with every rule that asks for the same
        function (so ``compute`` is a module-level function, never a lambda)."""
        return self.program.cached(compute)
