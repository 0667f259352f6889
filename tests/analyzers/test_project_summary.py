"""The project index's summary (CPython's ``ast``): awkward constructs read right; an analysed file is summarised
once, a file that cannot hold a finding is never parsed with libcst."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from torchsanity.analyzers import Config, Project
from torchsanity.analyzers.project_summary import FLAG, INHERIT, OFF, ON, summarize
from torchsanity.server.check_workers import _analyze_summarized


TRICKY = '''\
import torch, torch.nn as nn
from . import engine
from ..pkg.mod import evaluate as ev, train
from ignite.engine import Engine, Events
x = {a(): b(), c(): d()}; y = p() if q() else r()
z = (
    torch.foo(1)
)
v = f()(2) + g[0](3) + h().i.j(4)
@torch.no_grad()
def evaluate(model, loader: torch.utils.data.DataLoader = make(), *a: int, k=dflt(), **kw) -> torch.Tensor:
    with torch.set_grad_enabled(False), open(p) as (fh, self.z):
        return model(loader)
def step(engine, batch):
    torch.set_grad_enabled(False)
    return ev(batch)
trainer = Engine(step)
trainer.add_event_handler(Events.EPOCH_COMPLETED, evaluate)
@trainer.on(Events.ITERATION_COMPLETED(every=10))
def log(engine): print(engine.state)
class A(nn.Module, *bases, metaclass=M):
    @staticmethod
    @functools.lru_cache()
    def f(self): return lambda q=zz(): q.r() + True
    @property
    def g(self): del self.a, b[0]; global G; self.x += 1; n: int = 3; k.m: T = w()
    @torch.inference_mode(False)
    async def h(self):
        async with torch.enable_grad(): await x.y()
        try: pass
        except (ValueError, E.F) as err: raise err from None
        [i.j() for i in range(3) if i.ok()]
        {k: v.w() for k, v in d.items()}
        if (n := nx()): f"{fmt(x)!r:>{width()}}"
x = a \\
    .b(1)
s = """
multi
""" + t.u()
match cmd:
    case Point(x=0, y=yy) as pt: go(pt)
    case {"k": kk, **rest}: stop(Color.RED)
    case [first, *others]: pass
def outer():
    def inner(): return torch.zeros(1)
    with torch.no_grad: inner()
    return inner
'''


def test_tricky_constructs_read_right() -> None:
    summary_ = summarize(TRICKY)
    calls = {(c[0], c[1]): (c[2], c[3]) for c in summary_["calls"]}
    assert calls[("torch.foo", 7)] == (ON, None)  # the line of the callee, not of the parenthesis
    assert calls[("model", 13)] == (OFF, "evaluate")
    assert calls[("ev", 16)] == (FLAG, "step")  # an imperative set_grad_enabled
    assert calls[("q.r", 24)] == (FLAG, "A.f")  # inside a lambda
    assert calls[("x.y", 29)] == (ON, "A.h")  # enable_grad inside inference_mode(False)
    assert calls[("a.b", 35)] == (ON, None)  # the line where the continued expression starts
    assert calls[("t.u", 39)] == (ON, None)  # after a multi-line string
    assert calls[("torch.zeros", 45)] == (INHERIT, "inner")
    assert summary_["functions"]["evaluate"] == [11, 13, None, "nograd"]
    assert summary_["functions"]["A.g"][3] == ""
    assert summary_["classes"]["A"] == [21, ["torch.nn.Module"]]
    assert ["step", "ignite-process-function", None] in summary_["handed"]
    assert ["log", "ignite-handler-decorated", None] in summary_["handed"]
    refs = set(summary_["refs"])
    assert {"self", "Color.RED", "E.F", "bases", "M"} <= refs
    assert not refs & {"metaclass", "fh", "self.z", "True", "q", "i", "G", "pt_", "kk", "rest", "err_"}


ANALYSED = """\
import torch

def evaluate(model, loader):
    model.eval()
    for x, y in loader:
        out = model(x)

def train(model, loader, optimizer):
    for x, y in loader:
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
"""


class _CountingParse:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._parse = ast.parse
        monkeypatch.setattr(ast, "parse", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._parse(*args, **kwargs)


def test_an_analysed_file_is_summarised_with_one_ast_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "engine.py"
    path.write_text(ANALYSED, encoding="utf-8")
    expected = summarize(ANALYSED)
    project = Project(tmp_path)
    project.defer = True  # as in the checker's workers: questions about callers wait for every summary
    counter = _CountingParse(monkeypatch)
    report, summary, _ = _analyze_summarized(ANALYSED, str(path), Config(), project)
    assert report is not None and project.questions  # analysed (not skipped), and it asked about callers
    assert summary == expected
    assert counter.calls == 1  # the summary's own (the relevance test reads no imports here: torch is named)


def test_a_skipped_file_is_summarised_with_ast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "def helper(a, b):\n    return a + b\n"
    path = tmp_path / "util.py"
    path.write_text(text, encoding="utf-8")
    counter = _CountingParse(monkeypatch)
    report, summary, _ = _analyze_summarized(text, str(path), Config(), Project(tmp_path))
    assert report is None  # it cannot hold a finding: never parsed with libcst
    assert summary is not None and summary["functions"]["helper"] == [1, 2, None, ""]
    # the relevance test reads its imports with ast, then the summary's parse (which also tells that the file
    # compiles: no third parse for that)
    assert counter.calls <= 2


def _edited_versions(text: str, seed: int, count: int) -> list[str]:
    """``count`` successive versions of ``text``, each with one line edited, inserted or deleted."""
    import random

    rng, lines, versions = random.Random(seed), text.split("\n"), []
    for _ in range(count):
        at = rng.randrange(len(lines))
        choice = rng.randrange(5)
        if choice == 0:
            lines.insert(at, "")
        elif choice == 1 and len(lines) > 1:
            del lines[at]
        elif choice == 2:
            lines.insert(at, "import numpy as np")
        elif choice == 3:
            lines[at] = lines[at] + "  # edited"
        else:
            lines.insert(at, "x = torch.no_grad()(lambda: model(batch))()")
        versions.append("\n".join(lines))
    return versions


@pytest.mark.parametrize("name", ["loop_engine_missing/engine.py", "eval_called_under_no_grad"])
def test_a_buffer_summarised_statement_by_statement_equals_a_full_summary(name: str) -> None:
    """An editor buffer's summary reuses what unchanged top-level statements gave the last version; after every
    edit it is the summary of the whole text (lines moved, imports before each statement taken into account)."""
    root = Path(__file__).parent / "projects"
    files = [root / name] if name.endswith(".py") else sorted((root / name).glob("*.py"))
    corpus = sorted((Path(__file__).parent / "corpus").glob("*.py"))[:12]
    for seed, path in enumerate(files + corpus):
        parts: dict = {}
        reused = 0
        for version in [path.read_text()] + _edited_versions(path.read_text(), seed, 8):
            before = dict(parts)
            assert summarize(version, parts) == summarize(version)
            reused += sum(1 for key in parts if key in before)
        assert reused > 0, path  # the comparison proves something only if statements were taken over


_HOSTILE_LINES = [
    "    y = 2",  # indented: joins the statement before it, or does not parse
    "else:",
    "@torch.no_grad()",  # a decorator: the next statement is decorated
    "x = (1,",  # an open bracket swallows what follows
    '"""',  # an open string
    "a = 1; b = torch.no_grad()(f)()",
    "total = 1 + \\",  # a backslash joins the next line
    "\\",  # a line of its own joined to the next
    "# a comment",
    "from __future__ import annotations",
    "with torch.no_grad():",
    "    evaluate(model)",
    "def helper():",
    "",
]


def _hostile_versions(text: str, seed: int, count: int) -> list[str]:
    """Successive versions of ``text``, each with a line replaced, inserted or deleted; one edit in four puts in
    a line that breaks the statements around it as a typist does (an indent, an open bracket or string, a
    decorator, a backslash), and one in four deletes a line."""
    import random

    rng, lines, versions = random.Random(seed), text.split("\n"), []
    for _ in range(count):
        at = rng.randrange(len(lines))
        choice = rng.randrange(4)
        if choice == 0:
            lines.insert(at, rng.choice(_HOSTILE_LINES))
        elif choice == 1 and len(lines) > 1:
            del lines[at]
        elif choice == 2:
            lines.insert(at, rng.choice(["", "x = torch.no_grad()(lambda: model(batch))()", "import numpy as np"]))
        else:
            lines[at] = lines[at] + "  # edited"
        versions.append("\n".join(lines))
    return versions


def test_a_buffer_parsed_again_only_where_it_changed_equals_a_full_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor buffer's next version is parsed only around the lines that changed; whatever the edit did to the
    statements around it (an indent joining a function, an open bracket or string swallowing the rest, a
    decorator, a backslash), the summary is the whole text's, or None exactly when the whole text does not parse;
    and most versions are summarised without parsing the whole text."""
    counter = _CountingParse(monkeypatch)
    corpus = sorted((Path(__file__).parent / "corpus").glob("*.py"))[:20]
    whole = partial = 0
    for seed, path in enumerate(corpus):
        parts: dict = {}
        for version in [path.read_text()] + _hostile_versions(path.read_text(), seed, 40):
            counter.calls = 0
            made = summarize(version, parts)
            calls = counter.calls
            assert made == summarize(version), (path, seed)
            if made is not None:
                whole += calls > 1
                partial += calls == 1
    assert partial > whole  # the comparison is worth something only if most versions took the short way


def test_statements_that_share_a_line_keep_their_own_summaries() -> None:
    """Two statements on one line have the same text: what each contributes is kept apart (by its column), so an
    edit elsewhere does not hand one statement's calls to the other."""
    text = "import torch\n\na = f(); b = torch.no_grad()(g)()\n\ndef h():\n    return 1\n"
    parts: dict = {}
    summarize(text, parts)
    edited = text.replace("return 1", "return 2")
    assert summarize(edited, parts) == summarize(edited)
