"""What one module contributes to the project index: its summary, a small JSON-ready dict.

A summary lists the module's imports, its functions (line span, class, decorators), its classes and their
bases, every call with the gradient context it runs in, the names it uses other than by calling them, and
the functions it hands to a framework (ignite ``Engine(process_fn)``, ``@trainer.on(...)`` handlers).

It is read with CPython's ``ast``: a parse costs about a sixth of libcst's, less than walking a libcst tree
that is already there (libcst nodes carry no line numbers, and computing them costs more than the parse;
measured side by side in ``tests/bench/bench_check.py``), so the index adds no second libcst parse of any file.
The cache keeps a summary with the file's result.
"""

from __future__ import annotations

import ast
import io
import warnings

from .torch_api import ENABLE_GRAD_CONTEXTS as ENABLE_GRAD
from .torch_api import NO_GRAD_CONTEXTS
from .torch_api import SET_GRAD_CONTEXTS as SET_GRAD_ENABLED

FORMAT = 2  # 2: calls and handed functions sorted (the ast and libcst walks agree on one order)

# Gradient context of a call site.
OFF = "off"  # under torch.no_grad() / inference_mode() / set_grad_enabled(False), or a decorated function
ON = "on"  # gradients on (module level, or under enable_grad() / set_grad_enabled(True))
FLAG = "flag"  # set_grad_enabled(<expression>), a lambda, imperative toggles: cannot tell
INHERIT = "inherit"  # inside a function: whatever that function's callers run with

# Decorators that leave who calls a function, and how, unchanged.
_TRANSPARENT_DECORATORS = frozenset({
    "staticmethod", "classmethod", "property", "abstractmethod", "abc.abstractmethod", "functools.wraps",
    "wraps", "typing.overload", "overload", "typing.override", "override", "functools.cache",
    "functools.lru_cache", "lru_cache", "cache",
})


def summarize(text: str, parts: "dict | None" = None) -> dict | None:
    """The summary of the module ``text``; None when CPython cannot parse it. ``parts``: what the top-level
    statements of an earlier version contributed (filled here, to hand to the next version's call): a statement
    whose text and preceding imports are unchanged is not walked again, and only the lines an edit changed are
    parsed again (an editor buffer's summary per edit)."""
    if parts is None:
        tree = _parse(text)
        try:
            return None if tree is None else _Summarizer().run(tree)
        except RecursionError:
            return None
    lines = io.StringIO(text, newline="").readlines()  # the lines CPython counts (not form feeds, not U+2028)
    statements = _statements_after_edit(parts.get(_LAST), lines)
    if statements is None:
        tree = _parse(text)
        if tree is None:
            return None
        statements = _statements_of(tree)
    try:
        made = _Summarizer().run_by_statement(lines, statements, parts)
    except RecursionError:
        return None
    parts[_LAST] = (lines, statements)
    return made


_LAST = "last version"  # in ``parts``: the lines and top-level statements of the version summarised last

# A top-level statement of a version: (first line, last line, its ast node, the node's own first line); a node
# taken over from an earlier version keeps the line numbers of the text it was parsed from.
Statement = tuple[int, int, ast.stmt, int]


def _parse(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like: not the index's business
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _statements_of(tree: ast.Module, offset: int = 0) -> list[Statement]:
    """The top-level statements of ``tree``, parsed from text that starts ``offset`` lines into the version."""
    return [(_first_line(node) + offset, (node.end_lineno or node.lineno) + offset, node, _first_line(node))
            for node in tree.body]


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])


def _statements_after_edit(last: "tuple | None", lines: list[str]) -> list[Statement] | None:
    """The top-level statements of ``lines`` from those of the last version, parsing again only the statements
    that the changed lines, widened by one on each side, touch; None when that cannot tell (no last version, or
    the changed part does not parse on its own: the whole text is parsed then, and judged)."""
    if last is None:
        return None
    old, statements = last
    same = 0
    while same < min(len(old), len(lines)) and old[same] == lines[same]:
        same += 1
    if same == len(old) == len(lines):
        return statements
    tail = 0
    while tail < min(len(old), len(lines)) - same and old[-1 - tail] == lines[-1 - tail]:
        tail += 1
    start, end = same + 1, len(old) - tail  # the changed lines of the last version (empty for an insertion)
    low, high = start - 1, end + 1  # widened by a line: an edit right after a statement may extend it
    while True:
        touched = [s for s in statements if s[0] <= high and s[1] >= low]
        new_low = min([start] + [s[0] for s in touched])
        new_high = max([end] + [s[1] for s in touched])
        if (new_low, new_high) == (low, high):
            break
        low, high = new_low, new_high
    shift = len(lines) - len(old)
    tree = _parse("".join(lines[low - 1:high + shift]))
    if tree is None:
        return None
    before = [s for s in statements if s[1] < low]
    after = [(s[0] + shift, s[1] + shift, s[2], s[3]) for s in statements if s[0] > high]
    return before + _statements_of(tree, low - 1) + after


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _import_into(imports: dict[str, str], node: ast.Import | ast.ImportFrom) -> None:
    """Record what an import binds: ``import a.b`` binds ``a`` to ``a``; ``from .m import f as g`` binds ``g``
    to ``.m.f`` (relative levels kept as leading dots)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                imports[alias.asname] = alias.name
            else:
                head = alias.name.split(".")[0]
                imports.setdefault(head, head)
        return
    base = "." * node.level + (node.module or "")
    for alias in node.names:
        if alias.name != "*":
            joiner = "" if base.endswith(".") else "."
            imports[alias.asname or alias.name] = f"{base}{joiner}{alias.name}"


class Summary:
    """The summary as it is collected by the ``ast`` walk; :meth:`result` is the JSON-ready dict."""

    no_grad = NO_GRAD_CONTEXTS
    set_grad = SET_GRAD_ENABLED
    enable_grad = ENABLE_GRAD

    def __init__(self) -> None:
        self.imports: dict[str, str] = {}  # filled as the walk meets imports (in source order)
        self.functions: dict[str, list] = {}  # qualname -> [line, end line, class, decorator kind]
        self.classes: dict[str, list] = {}  # name -> [line, [qualified bases]]
        self.calls: list[list] = []  # [callee as written, line, context, scope qualname or None]
        self.refs: set[str] = set()  # dotted names used other than as a callee
        self.handed: list[list] = []  # [dotted function name, how a framework calls it, scope]
        self.toggled: set[str | None] = set()  # scopes that switch autograd imperatively
        self.switches: set[int] = set()  # calls that are `with` items or decorators, not imperative switches

    def qualify(self, dotted: str | None) -> str | None:
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = self.imports.get(head)
        if base is None:
            return dotted
        return f"{base}.{rest}" if rest else base

    def result(self) -> dict:
        """The summary; calls and handed functions in one canonical order (by line), whatever the walk's."""
        calls = [[c[0], c[1], FLAG if c[3] in self.toggled and c[2] in (ON, INHERIT) else c[2], c[3]]
                 for c in self.calls]
        calls.sort(key=lambda c: (c[1], c[0], c[2], c[3] or ""))
        handed = sorted(self.handed, key=lambda h: (h[0], h[1], h[2] or ""))
        return {"format": FORMAT, "imports": self.imports, "functions": self.functions, "classes": self.classes,
                "calls": calls, "refs": sorted(self.refs), "handed": handed}


def decorator_is_transparent(name: str) -> bool:
    """Whether a decorator (qualified ``name``) leaves who calls the function, and how, unchanged."""
    return name in _TRANSPARENT_DECORATORS or name.startswith("torch.jit.") or name.endswith(".setter")


def is_ignite_engine(name: str) -> bool:
    """Whether the qualified ``name`` is ignite's ``Engine`` (its first argument is the process function)."""
    return name.rsplit(".", 1)[-1] == "Engine" and name.startswith("ignite")


class _Summarizer(Summary):
    def run(self, tree: ast.Module) -> dict:
        self._walk(tree)
        return self.result()

    def _walk(self, root: ast.AST) -> None:
        stack: list[tuple[ast.AST, str, str | None, str | None]] = [(root, ON, None, None)]
        while stack:
            node, context, scope, cls = stack.pop()
            stack.extend(reversed(self._children(node, context, scope, cls)))

    def run_by_statement(self, lines: list[str], statements: list[Statement], parts: dict) -> dict:
        """:meth:`run`, one top-level statement at a time, taking over what an unchanged statement (same text,
        same imports before it) contributed to an earlier version, its lines moved; ``parts`` is refilled with
        this version's statements."""
        previous, parts_now = dict(parts), {}
        for first, last, node, own_first in statements:
            # the column tells apart statements that share their lines (``a = f(); b = g()``)
            key = ("".join(lines[first - 1:last]), node.col_offset, tuple(self.imports.items()))
            part = previous.get(key) or self._part(node, own_first)
            parts_now[key] = part
            self._take(part, first)
        parts.clear()
        parts.update(parts_now)
        return self.result()

    def _part(self, statement: ast.stmt, first: int) -> dict:
        """What one top-level statement contributes, its lines counted from its first line ``first``."""
        walker = _Summarizer()
        walker.imports = dict(self.imports)
        walker._walk(statement)
        shift = first - 1
        return {"imports": dict(walker.imports), "at": first, "absolute": walker.calls,
                "functions": [(q, [v[0] - shift, v[1] - shift, *v[2:]]) for q, v in walker.functions.items()],
                "classes": [(n, [v[0] - shift, *v[1:]]) for n, v in walker.classes.items()],
                "calls": [[c[0], c[1] - shift, *c[2:]] for c in walker.calls], "refs": set(walker.refs),
                "handed": [list(h) for h in walker.handed], "toggled": set(walker.toggled)}

    def _take(self, part: dict, first: int) -> None:
        shift = first - 1
        self.imports = dict(part["imports"])
        for qual, value in part["functions"]:
            self.functions.setdefault(qual, [value[0] + shift, value[1] + shift, *value[2:]])
        for name, value in part["classes"]:
            self.classes.setdefault(name, [value[0] + shift, *value[1:]])
        if first == part["at"]:
            self.calls.extend(part["absolute"])  # not moved (result() copies the calls it returns)
        else:
            self.calls.extend([c[0], c[1] + shift, *c[2:]] for c in part["calls"])
        self.refs |= part["refs"]
        self.handed.extend(list(h) for h in part["handed"])
        self.toggled |= part["toggled"]

    def _grad_effect(self, expr: ast.AST) -> str | None:
        """What a ``with`` item does to autograd: OFF, ON, FLAG, or None (nothing)."""
        if not isinstance(expr, ast.Call):
            return OFF if self.qualify(_dotted(expr)) in NO_GRAD_CONTEXTS else None
        name = self.qualify(_dotted(expr.func))
        if name in NO_GRAD_CONTEXTS:
            if name.endswith("inference_mode") and expr.args:
                return _constant_flag(expr.args[0], inverted=True)
            return OFF
        if name in SET_GRAD_ENABLED:
            return _constant_flag(expr.args[0]) if expr.args else FLAG
        if name in ENABLE_GRAD:
            return ON
        return None

    def _decorator_kind(self, decorators: list[ast.expr]) -> str:
        """"nograd" when a decorator disables autograd, "other" when one may change who calls the
        function, "" otherwise."""
        kind = ""
        for decorator in decorators:
            effect = self._grad_effect(decorator)
            if effect == OFF:
                return "nograd"
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if decorator_is_transparent(self.qualify(_dotted(target)) or ""):
                continue
            kind = "other"
        return kind

    def _children(self, node: ast.AST, context: str, scope: str | None, cls: str | None) -> list:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qual = f"{cls}.{node.name}" if cls else node.name
            kind = self._decorator_kind(node.decorator_list)
            self.functions.setdefault(qual, [node.lineno, node.end_lineno or node.lineno, cls, kind])
            for decorator in node.decorator_list:
                self._handler_decorator(decorator, qual, scope)
            self.switches.update(id(d) for d in node.decorator_list)
            outer = [(d, context, scope, cls) for d in node.decorator_list]
            outer += [(d, context, scope, cls) for d in node.args.defaults + node.args.kw_defaults if d is not None]
            inner = OFF if kind == "nograd" else INHERIT
            return outer + [(s, inner, qual, cls) for s in node.body]
        if isinstance(node, ast.ClassDef):
            bases = [b for b in (self.qualify(_dotted(base)) for base in node.bases) if b]
            self.classes.setdefault(node.name, [node.lineno, bases])
            outer = [(d, context, scope, cls) for d in node.decorator_list + node.bases + [k.value for k in node.keywords]]
            return outer + [(s, context, scope, node.name) for s in node.body]
        if isinstance(node, ast.Lambda):
            return [(node.body, FLAG, scope, cls)]
        if isinstance(node, (ast.With, ast.AsyncWith)):
            inner = context
            for item in node.items:
                effect = self._grad_effect(item.context_expr)
                if effect is not None:
                    inner = effect
            self.switches.update(id(i.context_expr) for i in node.items)
            items = [(i.context_expr, context, scope, cls) for i in node.items]
            items += [(i.optional_vars, context, scope, cls) for i in node.items if i.optional_vars is not None]
            return items + [(s, inner, scope, cls) for s in node.body]
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            _import_into(self.imports, node)
            return []
        if isinstance(node, ast.Call):
            if self._call(node, context, scope):
                rest = node.args + [k.value for k in node.keywords]
                return [(child, context, scope, cls) for child in rest]
        elif isinstance(node, (ast.Name, ast.Attribute)):
            if isinstance(node.ctx, ast.Load):
                dotted = _dotted(node)
                if dotted is not None:
                    self.refs.add(dotted)
                    return []  # the parts of a dotted name are not references of their own
        return [(child, context, scope, cls) for child in ast.iter_child_nodes(node)]

    def _call(self, node: ast.Call, context: str, scope: str | None) -> bool:
        """Record a call; whether its callee is a dotted name (then not walked as references)."""
        callee = _dotted(node.func)
        if callee is None:
            return False
        self.calls.append([callee, node.lineno, context, scope])
        name = self.qualify(callee)
        if name in SET_GRAD_ENABLED and id(node) not in self.switches:
            self.toggled.add(scope)  # an imperative switch: what follows in this scope cannot be told
        elif name and is_ignite_engine(name) and node.args:
            handed = _dotted(node.args[0])
            if handed is not None:
                self.handed.append([handed, "ignite-process-function", scope])
        elif callee.endswith(".add_event_handler") and len(node.args) >= 2:
            handed = _dotted(node.args[1])
            if handed is not None and "Events" in (_dotted(node.args[0]) or ""):
                self.handed.append([handed, "ignite-handler", scope])
        return True

    def _handler_decorator(self, decorator: ast.expr, qual: str, scope: str | None) -> None:
        """``@trainer.on(Events.EPOCH_COMPLETED)``: ignite calls the function."""
        if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) and decorator.func.attr == "on":
            if any("Events" in (_dotted(a.func if isinstance(a, ast.Call) else a) or "") for a in decorator.args):
                self.handed.append([qual, "ignite-handler-decorated", scope])


def _constant_flag(expr: ast.AST, inverted: bool = False) -> str:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, bool):
        return (OFF if expr.value else ON) if inverted else (ON if expr.value else OFF)
    return FLAG


def names_in(summary: dict) -> set[str]:
    """Every identifier the summary's calls, references and imports mention (to find candidate callers)."""
    names: set[str] = set()
    for call in summary["calls"]:
        names.update(call[0].split("."))
    for ref in summary["refs"]:
        names.update(ref.split("."))
    for local, bound in summary["imports"].items():
        names.add(local)
        names.update(bound.lstrip(".").split("."))
    for handed in summary["handed"]:
        names.update(handed[0].split("."))
    return names
