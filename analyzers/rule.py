"""The shape of a rule: one small class with its docs and its own valid / invalid examples.

A rule subclasses :class:`Rule`, sets the class attributes and implements :meth:`Rule.check`, which
receives a :class:`~torchsanity.analyzers.context.RuleContext` and yields findings built with
:meth:`Rule.finding`. Fixes are expressed on nodes (:class:`Replace`, :class:`InsertBefore`,
:class:`InsertAfter`, :class:`DeleteStatement`) and turned into text edits by the engine, so rules never
deal with positions. Examples are written as :class:`Valid` / :class:`Invalid` over indented
triple-quoted code, dedented here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, ClassVar, Iterable

import libcst as cst

from .findings import Applicability, Severity

if TYPE_CHECKING:
    from .context import RuleContext


def example_code(text: str) -> str:
    """An example as written in a rule → the code it stands for. A triple-quoted string that opens with a
    line break is indented with the class: it is dedented and loses that first line break. Any other
    string is the code itself (``"x = 1  # noqa: SAN999\\n"``)."""
    return textwrap.dedent(text)[1:] if text.startswith("\n") else text


@dataclass(frozen=True)
class Valid:
    """Code the rule must stay quiet on."""

    code: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", example_code(self.code))


@dataclass(frozen=True)
class Invalid:
    """Code that must produce the rule's finding: on ``line`` (1-based) and ``column`` (0-based) when
    given, with ``message`` when given; when ``fixed`` is given, applying the rule's fixes (unsafe ones
    included) must produce exactly that text. ``code`` and ``fixed`` are dedented like :class:`Valid`."""

    code: str
    line: int | None = None
    column: int | None = None
    message: str | None = None
    fixed: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", example_code(self.code))
        if self.fixed is not None:
            object.__setattr__(self, "fixed", example_code(self.fixed))


class EditKind(str, Enum):
    """What a :class:`NodeEdit` does to its node."""

    REPLACE = "replace"  # replace the node by the text
    INSERT_BEFORE = "insert_before"  # insert the text as new line(s) before the statement, at its indentation
    INSERT_AFTER = "insert_after"  # insert the text as new line(s) after the statement, at its indentation
    DELETE_STATEMENT = "delete_statement"  # remove the statement and its line


@dataclass(frozen=True)
class NodeEdit:
    """A fix step expressed on the tree; build it with :class:`Replace`, :class:`InsertBefore`,
    :class:`InsertAfter` or :class:`DeleteStatement`. (A kind given by its value, ``"replace"``, is taken
    too; an unknown kind is refused here, not when the fix is applied.)"""

    kind: EditKind
    node: cst.CSTNode
    text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EditKind(self.kind))


class Replace(NodeEdit):
    """Replace ``node`` (an expression, or a whole statement) by ``text``."""

    def __init__(self, node: cst.CSTNode, text: str) -> None:
        super().__init__(EditKind.REPLACE, node, text)


class InsertBefore(NodeEdit):
    """Insert ``text`` (one or more lines) before ``statement``, at its indentation."""

    def __init__(self, statement: cst.CSTNode, text: str) -> None:
        super().__init__(EditKind.INSERT_BEFORE, statement, text)


class InsertAfter(NodeEdit):
    """Insert ``text`` (one or more lines) after ``statement``, at its indentation."""

    def __init__(self, statement: cst.CSTNode, text: str) -> None:
        super().__init__(EditKind.INSERT_AFTER, statement, text)


class DeleteStatement(NodeEdit):
    """Remove ``statement`` and its line."""

    def __init__(self, statement: cst.CSTNode) -> None:
        super().__init__(EditKind.DELETE_STATEMENT, statement)


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
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []

    def check(self, ctx: "RuleContext") -> Iterable[RawFinding]:
        """The rule's findings on one file: decide here, and build fixes in separate functions."""
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
