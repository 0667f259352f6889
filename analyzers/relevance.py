"""Which files cannot hold a finding, decided from their text alone (no libcst parse).

Every rule starts from something it can only see in the text of the file it reports on or of a project
module that file imports (helpers are followed across files): a torch / Lightning / torchvision-style
import, a call of a method such as ``backward`` / ``step`` / ``zero_grad`` / ``eval`` / ``view`` /
``forward`` / ``.to(``, a loss, seed or init name, a function or loader named like evaluation code, or a
``# noqa`` comment (SAN100). A file whose text, and that of every project module it imports (followed
transitively, found as :class:`Project` finds them), shows none of these words cannot produce a finding,
so it is not parsed. The words are matched anywhere in the text (comments and strings too), so the test
errs on the side of analysing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .name_guesses import looks_like_eval_function, mentions_eval_split
from .project import Project
from .source_text import read_source

# What each rule needs to see before it can report (see the module docstring); case-insensitive.
_TRIGGERS = re.compile(
    r"torch|lightning|accelerat|backward|step|grad|eval|train|\bfit\b|forward|\bview\b|reshape|seed|softmax"
    r"|sigmoid|entropy|nll|bce|loss|batchnorm|dataloader|fill_|zero_|\binit\b|albumentations|kornia|monai"
    r"|\.\s*(?:to|cuda|cpu)\s*\(|noqa",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def text_may_hold_finding(text: str) -> bool:
    """Whether ``text`` itself shows a word some rule starts from (evaluation-like names included)."""
    if _TRIGGERS.search(text):
        return True
    return any(looks_like_eval_function(name) or mentions_eval_split(name) for name in set(_IDENTIFIER.findall(text)))


def _imported_modules(text: str) -> list[str]:
    """The modules an import in ``text`` may name (``from a import b`` may import module ``a.b``)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            if base:
                modules.append(base)
            joiner = "" if base.endswith(".") or not base else "."
            modules.extend(f"{base}{joiner}{alias.name}" for alias in node.names if alias.name != "*")
    return modules


def may_hold_finding(text: str, path: str, project: Project | None) -> tuple[bool, dict[Path, bool]]:
    """Whether the file at ``path`` (with ``text``) may hold a finding, and the project files that answer
    depended on (``{path: exists}``: the modules its imports were looked for in, followed transitively)."""
    if text_may_hold_finding(text):
        return True, {}
    if project is None:
        return False, {}
    pending: list[tuple[str, str]] = [(text, path)]
    visited: set[Path] = set()
    while pending:
        source, importer = pending.pop()
        for module in _imported_modules(source):
            found = project.module_file(module, importer)
            if found is None:
                continue
            found = found.resolve()
            if found in visited:
                continue
            visited.add(found)
            try:
                imported = read_source(found)
            except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
                continue
            if text_may_hold_finding(imported):
                return True, {}
            pending.append((imported, str(found)))
    return False, project.dependencies(path)
