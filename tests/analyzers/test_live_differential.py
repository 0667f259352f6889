"""The language server's incremental analysis against a fresh one, on replayed editing sessions.

`LiveDocument` keeps, from one version of a buffer to the next, what depends only on unchanged parts of
the file: per-statement results, each function's effects (keyed by its node, the helpers inlined into it
and a fingerprint of the module-level facts), the effect sites of each top-level statement. This test
replays seeded sequences of realistic edits on every corpus script and on the benchmark's training-dense
file — lines inserted, deleted and changed at random places, a module-level rebinding of a name that a
function uses, an import changed, a class or a function renamed — and after every edit asserts that the
findings of the live document equal those of a fresh analysis of the same text. It also checks that the
sessions do reuse function effects across versions (otherwise the comparison would prove nothing).
"""

from __future__ import annotations

import ast
import importlib.util
import random
import re
from pathlib import Path

import pytest
from torchsanity.analyzers import Project, analyze_source
from torchsanity.analyzers.flow import flow_of
from torchsanity.analyzers.live import LiveDocument

HERE = Path(__file__).parent
CORPUS = {p.name: p.read_text(encoding="utf-8") for p in sorted((HERE / "corpus").glob("*.py"))}
BENCH = HERE.parent / "bench" / "bench_lsp_latency.py"

# Values a module-level rebinding gives a name: each is of another kind (optimizer, scheduler, network,
# loss, loader, nothing), so the functions that read the name may change their effects.
REBOUND_VALUES = (
    "torch.optim.SGD(model.parameters(), lr=0.1)",
    "torch.optim.lr_scheduler.StepLR(optimizer, 1)",
    "nn.Linear(2, 2)",
    "nn.CrossEntropyLoss()",
    "DataLoader(dataset, batch_size=4)",
    "None",
)
# Imports added at the top of the file: each makes a name the file uses resolve elsewhere.
NEW_IMPORTS = (
    "from torch import optim as {name}",
    "import torch.nn.functional as {name}",
    "from torch.optim import SGD as {name}",
    "from torch.utils.data import DataLoader as {name}",
    "import random as {name}",
)
WORD = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*\b")
# In a function body: the receiver of a training effect (`opt.step()`, `model.eval()`) or a called name.
EFFECT_NAME = re.compile(r"\b([A-Za-z_]\w*)\.(?:step|zero_grad|backward|eval|train)\(|\b([A-Za-z_]\w*)\(")


def parses(lines: list[str]) -> bool:
    try:
        ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return False
    return True


def top_level_starts(lines: list[str]) -> list[int]:
    """The 0-based first line (decorators included) of every top-level statement."""
    tree = ast.parse("\n".join(lines))
    starts = []
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        starts.append(min([node.lineno] + [d.lineno for d in decorators]) - 1)
    return starts


def insert_line(lines, rng):
    i = rng.randrange(len(lines))
    return lines[:i] + [lines[rng.randrange(len(lines))].rstrip() or ""] + lines[i:]


def duplicate_line(lines, rng):
    i = rng.randrange(len(lines))
    return lines[:i + 1] + [lines[i]] + lines[i + 1:]


def delete_line(lines, rng):
    i = rng.randrange(len(lines))
    return lines[:i] + lines[i + 1:]


def change_line(lines, rng):
    """Replace one identifier or number of a line with another one of the file (`opt.step()` → `sched.step()`)."""
    i = rng.randrange(len(lines))
    words = list(WORD.finditer(lines[i]))
    if not words:
        return lines
    word = rng.choice(words)
    vocabulary = sorted(set(WORD.findall("\n".join(lines))))
    new = rng.choice(vocabulary) if rng.random() < 0.8 else str(rng.randrange(1, 9))
    return lines[:i] + [lines[i][:word.start()] + new + lines[i][word.end():]] + lines[i + 1:]


def names_in_functions(lines: list[str], rng: random.Random) -> list[str]:
    """Names that code in functions acts on or calls (most of the time), or any name it uses."""
    body = [line for line in lines if line.startswith((" ", "\t"))]
    acted_on = {a or b for line in body for a, b in EFFECT_NAME.findall(line)}
    return sorted(acted_on if acted_on and rng.random() < 0.8 else
                  {w for line in body for w in WORD.findall(line) if not w[0].isdigit()})


def rebind_at_module_level(lines, rng):
    """``name = <value of another kind>`` between two top-level statements, for a name used in a function."""
    used = names_in_functions(lines, rng)
    if not used:
        return lines
    starts = top_level_starts(lines) + [len(lines)]
    # At the end of the file, the rebinding is the latest binding of the name, which is the one that counts.
    at = len(lines) if rng.random() < 0.5 else rng.choice(starts[1:])
    return lines[:at] + [f"{rng.choice(used)} = {rng.choice(REBOUND_VALUES)}"] + lines[at:]


def change_import(lines, rng):
    """Drop an import, or import another module / class under a name the file uses."""
    imports = [i for i in top_level_starts(lines) if lines[i].startswith(("import ", "from "))]
    if imports and rng.random() < 0.4:
        i = rng.choice(imports)
        return lines[:i] + lines[i + 1:]
    names = names_in_functions(lines, rng)
    if not names:
        return lines
    at = imports[-1] + 1 if imports else 0
    return lines[:at] + [rng.choice(NEW_IMPORTS).format(name=rng.choice(names))] + lines[at:]


def rename_definition(lines, rng):
    """Rename a class or a function where it is defined (its uses keep the old name), or a class's base."""
    defs = [i for i, line in enumerate(lines) if re.match(r"\s*(class|def) \w", line)]
    if not defs:
        return lines
    i = rng.choice(defs)
    line = lines[i]
    if line.lstrip().startswith("class ") and "(" in line and rng.random() < 0.4:
        new = re.sub(r"\(.*\)", "(object)", line, count=1)  # no longer an nn.Module
    else:
        new = re.sub(r"(class|def) (\w+)", r"\1 \2_renamed", line, count=1)
    return lines[:i] + [new] + lines[i + 1:]


EDITS = (insert_line, duplicate_line, delete_line, change_line, change_line, rebind_at_module_level,
         rebind_at_module_level, change_import, rename_definition)


def next_version(lines: list[str], rng: random.Random) -> list[str]:
    """A random edit that leaves a text Python parses (most keystrokes in between do not; those are covered by
    test_incremental)."""
    for _ in range(30):
        edited = rng.choice(EDITS)(lines, rng)
        if edited != lines and parses(edited):
            return edited
    return lines


def finding_keys(report) -> list[tuple]:
    return [(f.code, f.start, f.end, f.message, f.fix) for f in report.findings]


def replay(text: str, seed: str, edits: int, path: str = "train.py") -> int:
    """Replay ``edits`` random edits of ``text`` through one LiveDocument, then a comment added at the end,
    checking each version against a fresh analysis; the number of function effects the versions took over from
    the one before."""
    rng = random.Random(seed)
    document = LiveDocument()
    document.analyze(text, path)
    lines = text.split("\n")
    reused = 0
    for step in range(edits + 1):
        previous = flow_of(document.model)._function_effects if document.model is not None else {}
        lines = next_version(lines, rng) if step < edits else lines + ["# the end"]
        version = "\n".join(lines)
        live = document.analyze(version, path)
        fresh = analyze_source(version, path, verify=False)  # the editor verifies a fix when it is asked for
        assert finding_keys(live) == finding_keys(fresh), f"{seed}: edit {step + 1} gives other findings:\n{version}"
        assert [(p.kind, p.message, p.start) for p in live.problems] == \
            [(p.kind, p.message, p.start) for p in fresh.problems]
        now = flow_of(document.model)._function_effects
        reused += sum(1 for key, effects in now.items() if previous.get(key) is effects)
    return reused


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_edit_sessions_on_the_corpus_report_what_a_fresh_analysis_reports(name):
    reused = sum(replay(CORPUS[name], f"{name}-{seed}", 4, name) for seed in range(2))
    if re.search(r"^\s*def ", CORPUS[name], re.MULTILINE):
        assert reused > 0, "no function effects were kept across versions: the comparison proves nothing"


def dense_file() -> str:
    spec = importlib.util.spec_from_file_location("bench_lsp_latency", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.dense_training_file(2000)


def test_edit_sessions_on_the_training_dense_file_report_what_a_fresh_analysis_reports():
    assert replay(dense_file(), "dense", 6, "dense.py") > 100


# A scripted session whose edits change what an untouched function does through module-level facts only (the
# function `train` is never edited and is not next to an edit, so its old effects are at hand each time).
SCRIPTED = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def forward(self, x):
        return x


def spacer():
    pass


def helper_(opt):
    opt.zero_grad()


def spacer2():
    pass


def train(loader, opt):
    for x, y in loader:
        helper(opt)
        loss = f(x).sum()
        loss.backward()
        opt.step()


f = Net()
'''
SCRIPTED_EDITS = (
    ("def helper_(opt):", "def helper(opt):"),  # `helper(opt)` now calls it: its zero_grad is inlined
    ("def helper(opt):", "def helper_(opt):"),  # and no longer is
    ("def helper_(opt):", "def helper(opt):"),
    ("    opt.zero_grad()\n", "    pass\n"),  # the helper's body changes, the caller's does not
    ("    pass\n\n\ndef spacer2", "    opt.zero_grad()\n\n\ndef spacer2"),
    ("import torch\n", "import torch\nopt = torch.optim.lr_scheduler.StepLR(o, 1)\n"),  # `opt.step()` steps a scheduler
    ("opt = torch.optim.lr_scheduler.StepLR(o, 1)\n", ""),
    ("class Net(nn.Module)", "class Net2(nn.Module)"),
    ("import torch.nn as nn\n", "import torch as nn\n"),
)


def test_edits_of_module_level_facts_change_the_findings_of_an_untouched_function():
    document = LiveDocument()
    text = SCRIPTED
    seen = {tuple(finding_keys(document.analyze(text)))}
    for old, new in SCRIPTED_EDITS:
        assert old in text
        text = text.replace(old, new, 1)
        live, fresh = finding_keys(document.analyze(text)), finding_keys(analyze_source(text, verify=False))
        assert live == fresh, f"after {new!r}"
        seen.add(tuple(fresh))
    assert len(seen) > 1  # the edits do change the findings


# The same in a project, where a helper lives in a sibling module whose buffer changes while the main file's
# `train` stays untouched: its effects asked the sibling, so they must not be taken over.
MAIN = '''\
import torch

from engine import prepare


def spacer():
    pass


def train(loader, opt, model):
    for x, y in loader:
        prepare(opt)
        loss = model(x).sum()
        loss.backward()
        opt.step()
'''
ENGINE_VERSIONS = ("def other(opt):\n    opt.zero_grad()\n", "def prepare(opt):\n    opt.zero_grad()\n",
                   "def prepare(opt):\n    pass\n", "def prepare(opt):\n    opt.zero_grad()\n")


def test_a_change_in_a_sibling_module_changes_the_findings_of_an_untouched_function(tmp_path):
    (tmp_path / "engine.py").write_text(ENGINE_VERSIONS[0])
    main = str(tmp_path / "main.py")
    project = Project(tmp_path)
    document = LiveDocument()
    seen = set()
    for step, engine in enumerate(ENGINE_VERSIONS * 2):
        project.set_overlay({str(tmp_path / "engine.py"): engine})
        project.invalidate([main])
        text = MAIN.replace("    pass\n", f"    pass  # {step}\n", 1)  # an edit elsewhere: `train` is kept
        live = finding_keys(document.analyze(text, main, project=project))
        fresh_project = Project(tmp_path)
        fresh_project.set_overlay({str(tmp_path / "engine.py"): engine})
        assert live == finding_keys(analyze_source(text, main, project=fresh_project, verify=False)), f"with engine.py:\n{engine}"
        seen.add(tuple(live))
    assert len(seen) > 1  # the sibling's versions do change the findings


def test_a_document_that_joins_a_project_finds_the_helpers_of_its_siblings(tmp_path):
    (tmp_path / "engine.py").write_text(ENGINE_VERSIONS[1])
    main = str(tmp_path / "main.py")
    document = LiveDocument()
    alone = finding_keys(document.analyze(MAIN, main))
    in_project = finding_keys(document.analyze(MAIN.replace("    pass\n", "    pass  # edited\n", 1), main,
                                               project=Project(tmp_path)))
    fresh = finding_keys(analyze_source(MAIN.replace("    pass\n", "    pass  # edited\n", 1), main,
                                        project=Project(tmp_path), verify=False))
    assert in_project == fresh
    assert {f[0] for f in alone} != {f[0] for f in in_project}  # the sibling's zero_grad counts only in the project


# SAN106 keeps each loop's accumulations and each function's assignments with their top-level statement; what
# it reads elsewhere must not be kept with them: a helper that backpropagates the total (`train` is untouched),
# the meter class's `update`, and, for a loop at module level, the module's other statements.
SAN106_SCRIPTED = '''\
import torch


class Meter:
    def __init__(self):
        self.sum = 0

    def update(self, val):
        self.sum += val * 1


def spacer():
    pass


def finish_(total):
    total.backward()


def train(loader, model):
    meter = Meter()
    total = 0
    for x, y in loader:
        loss = model(x).sum()
        loss.backward()
        meter.update(loss)
        total += loss
    finish(total)


running = 0
for x, y in loader:
    loss = model(x).sum()
    loss.backward()
    running += loss
'''
SAN106_EDITS = (
    ("def finish_(total):", "def finish(total):"),  # the total is backpropagated later: quiet
    ("def finish(total):", "def finish_(total):"),
    ("self.sum += val * 1", "self.sum += float(val)"),  # the meter converts what it is given: quiet
    ("self.sum += float(val)", "self.sum += val * 1"),
    ("class Meter:", "class Meter_:"),
    ("running = 0\n", ""),  # the module-level accumulator is no longer bound before its loop
    ("for x, y in loader:\n    loss", "running = 0\nfor x, y in loader:\n    loss"),
    ("    pass\n", "    pass\n    running = 1\n"),  # an edit in another statement, the loop's are kept
)


def test_san106_edits_outside_a_loop_change_its_findings_as_in_a_fresh_analysis():
    document = LiveDocument()
    text = SAN106_SCRIPTED
    seen = {tuple(f for f in finding_keys(document.analyze(text)) if f[0] == "SAN106")}
    for old, new in SAN106_EDITS:
        assert old in text
        text = text.replace(old, new, 1)
        live, fresh = finding_keys(document.analyze(text)), finding_keys(analyze_source(text, verify=False))
        assert live == fresh, f"after {new!r}"
        seen.add(tuple(f for f in fresh if f[0] == "SAN106"))
    assert len(seen) > 3  # the edits do change SAN106's findings


# SAN601's loss calls skip the dataflow for a name that the whole module only calls (it binds no value to it);
# binding the name in another statement (at module level, as a parameter, by an import) must undo that for the
# untouched function `step`.
SAN601_SCRIPTED = '''\
import torch.nn as nn
import torch.nn.functional as F


def spacer(model):
    pass


def step(model, x, y):
    probs = F.softmax(model(x), dim=1)
    return criterion(probs, y)
'''
SAN601_EDITS = (
    ("    pass\n", "    pass\n\n\ncriterion = nn.CrossEntropyLoss()\n"),  # `step` now computes a cross-entropy
    ("criterion = nn.CrossEntropyLoss()\n", ""),
    ("def spacer(model):", "def spacer(criterion):"),  # a parameter elsewhere: still no value for `step`
    ("import torch.nn as nn\n", "import torch.nn as nn\nfrom torch.nn.functional import cross_entropy as criterion\n"),
    ("from torch.nn.functional import cross_entropy as criterion\n", ""),
    ("def spacer(criterion):", "def spacer(model):"),
    ("    pass\n", "    pass\n\n\nfor criterion in [nn.CrossEntropyLoss()]:\n    pass\n"),
    ("for criterion in", "for other in"),
    ("    pass\n", "    pass\n\n\ncriterion = nn.CrossEntropyLoss()\n"),
)


def test_san601_binding_a_called_name_elsewhere_changes_its_findings_as_in_a_fresh_analysis():
    document = LiveDocument()
    text = SAN601_SCRIPTED
    seen = {tuple(f for f in finding_keys(document.analyze(text)) if f[0] == "SAN601")}
    for old, new in SAN601_EDITS:
        assert old in text
        text = text.replace(old, new, 1)
        live, fresh = finding_keys(document.analyze(text)), finding_keys(analyze_source(text, verify=False))
        assert live == fresh, f"after {new!r}"
        seen.add(tuple(f for f in fresh if f[0] == "SAN601"))
    assert len(seen) > 1  # the edits do change SAN601's findings
