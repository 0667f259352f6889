"""The shape of a rule: one small class with its docs and its own valid / invalid examples.

A rule subclasses :class:`Rule`, sets the class attributes and implements :meth:`Rule.check`, which
yields findings built with :meth:`Rule.finding`. Fixes are expressed on nodes (:class:`NodeEdit`) and
turned into text edits by the engine, so rules never deal with positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterable

import libcst as cst

from .findings import Applicability, Severity

if TYPE_CHECKING:
    from .model import ProgramModel


@dataclass(frozen=True)
class Invalid:
    """An invalid example: ``code`` must produce the rule's finding (on ``line`` when given), and
    when ``fixed`` is given, applying the rule's fixes must produce exactly that text."""

    code: str
    line: int | None = None
    fixed: str | None = None


@dataclass(frozen=True)
class NodeEdit:
    """A fix step expressed on the tree. ``kind``:

    - ``"replace"``: replace ``node`` by ``text``;
    - ``"insert_before"``: insert ``text`` as new line(s) before statement ``node``, at its indentation;
    - ``"insert_after"``: insert ``text`` as new line(s) after statement ``node``, at its indentation;
    - ``"delete_statement"``: remove statement ``node`` and its line.
    """

    kind: str
    node: cst.CSTNode
    text: str = ""


SAFE = Applicability.SAFE
UNSAFE = Applicability.UNSAFE


@dataclass(frozen=True)
class NodeFix:
    """A rule's fix: its title, its edits and whether it is safe (:class:`Applicability`). Every fix
    builder says which; the engine verifies the fix before anyone sees it."""

    description: str
    edits: tuple[NodeEdit, ...]
    applicability: Applicability


@dataclass(frozen=True)
class RawFinding:
    """What a rule reports: a node, a message and maybe a fix. The engine adds positions."""

    node: cst.CSTNode
    message: str
    fix: NodeFix | None = None
    end_node: cst.CSTNode | None = None


class Rule:
    """Base class of every rule. The subclass docstring says *what it finds*."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    message: ClassVar[str]
    why: ClassVar[str]
    example: ClassVar[str]
    fix_doc: ClassVar[str]
    known_problems: ClassVar[str] = ""  # what the rule cannot see (every rule has one: see the tests)
    fix_safety: ClassVar[str] = ""  # when its fix is safe or unsafe, and why
    VALID: ClassVar[list[str]] = []
    INVALID: ClassVar[list[Invalid]] = []

    def check(self, model: "ProgramModel") -> Iterable[RawFinding]:
        raise NotImplementedError

    def finding(
        self,
        node: cst.CSTNode,
        message: str | None = None,
        fix: NodeFix | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> RawFinding:
        return RawFinding(node=node, message=message or self.message, fix=fix, end_node=end_node)

    @classmethod
    def what(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def docs_markdown(cls) -> str:
        """The rule's page: what it finds, why it matters, its known problems, an example, the fix and
        the fix's safety."""
        import inspect

        sections = [
            ("What it finds", cls.what()),
            ("Why it matters", inspect.cleandoc(cls.why)),
            ("Known problems", inspect.cleandoc(cls.known_problems)),
            ("Example", "```python\n" + inspect.cleandoc(cls.example) + "\n```"),
            ("Fix", inspect.cleandoc(cls.fix_doc)),
            ("Fix safety", inspect.cleandoc(cls.fix_safety)),
        ]
        parts = [f"# {cls.code} {cls.name}", f"Default severity: {cls.severity.value}"]
        for title, text in sections:
            if text:
                parts += [f"## {title}", text]
        return "\n\n".join(parts) + "\n"
