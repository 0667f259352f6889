"""Targeted tests of the expression / model / data rules (SAN3xx, SAN6xx-SAN9xx) and their dataflow."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from torchsanity.analyzers import Project, all_rules, analyze_file, analyze_source, fix_source
from torchsanity.analyzers.dataflow import LOG_SOFTMAX, LOGITS, SIGMOID, SOFTMAX, dataflow, name_role, name_tokens
from torchsanity.analyzers.model import ProgramModel

HERE = Path(__file__).parent
MY_RULES = [r for r in all_rules() if r.code[3] in "36789"]
MY_CORPUS = sorted((HERE / "corpus").glob("expr_*.py"))


def codes(source: str) -> list[tuple[int, str]]:
    report = analyze_source(textwrap.dedent(source), rules=MY_RULES)
    assert not report.problems, report.problems
    return [(f.start.line, f.code) for f in report.findings]


def _model(source: str) -> ProgramModel:
    return ProgramModel.build(cst.parse_module(textwrap.dedent(source)))


def _last_call(model: ProgramModel, name: str) -> cst.Call:
    return [c for c in model.calls if model.code_for(c.func) == name][-1]


# ---- dataflow ---------------------------------------------------------------------------------------


def test_activation_of_names_calls_and_models():
    model = _model(
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

            def forward(self, x):
                return self.body(x)

        net = Net()
        a = F.softmax(z, dim=1)
        b = a.float()
        c = torch.sigmoid(z)
        d = net(x)
        e = nn.LogSoftmax(dim=1)(z)
        sink(a, b, c, d, e)
        """
    )
    flow = dataflow(model)
    args = [a.value for a in _last_call(model, "sink").args]
    kinds = [getattr(flow.activation(v), "kind", None) for v in args]
    assert kinds == [SOFTMAX, SOFTMAX, SIGMOID, LOGITS, LOG_SOFTMAX]


def test_reaching_respects_order_and_branches():
    model = _model(
        """
        import torch.nn.functional as F
        out = F.softmax(z, 1)
        use1(out)
        out = model(x)
        use2(out)
        if flag:
            out = F.softmax(out, 1)
        use3(out)
        """
    )
    flow = dataflow(model)
    kind = lambda name: getattr(flow.activation(_last_call(model, name).args[0].value), "kind", None)
    assert kind("use1") == SOFTMAX
    assert kind("use2") is None
    assert kind("use3") is None  # conditional: cannot tell


def test_dataflow_is_cached_on_the_model():
    model = _model("x = 1\n")
    assert dataflow(model) is dataflow(model)


@pytest.mark.parametrize(
    "name, role",
    [("train_loader", "train"), ("trainloader", "train"), ("valLoader", "eval"), ("testset", "eval"),
     ("val_tf", "eval"), ("train_eval_loader", None), ("tta_transforms", None), ("loader", None),
     ("constrained", None), ("valdir", "eval")],
)
def test_name_role(name, role):
    assert name_role(name) == role, name_tokens(name)


# ---- rules on tricky code ---------------------------------------------------------------------------


def test_criterion_passed_as_argument_is_followed():
    source = """
        import torch.nn as nn
        import torch.nn.functional as F

        def train(model, loader, criterion):
            for x, y in loader:
                probs = F.softmax(model(x), dim=1)
                loss = criterion(probs, y)

        train(net, loader, nn.CrossEntropyLoss())
        """
    assert codes(source) == [(8, "SAN601")]


def test_unknown_criterion_stays_quiet():
    source = """
        import torch.nn.functional as F

        def train(model, loader, criterion):
            for x, y in loader:
                loss = criterion(F.softmax(model(x), dim=1), y)
        """
    assert codes(source) == []


def test_model_ending_in_sigmoid_with_bce_loss_is_fine():
    source = """
        import torch.nn as nn
        disc = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
        loss = nn.BCELoss()(disc(x), y)
        """
    assert codes(source) == []


def test_view_after_permute_through_self_attribute_is_quiet():
    # the attribute's value is unknown in this method: silence
    assert codes("def f(self):\n    return self.x.view(-1)\n") == []


def test_forward_inside_forward_and_nested_helpers_is_quiet():
    source = """
        import torch.nn as nn

        class Wrapper(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, x):
                def run(y):
                    return self.model.forward(y)
                return run(x)
        """
    assert codes(source) == []


def test_half_typed_code_never_raises():
    fragments = [
        "x.view(", "n, c, h, w = x.shape\nx.view(n, h, w,", "loss = F.cross_entropy(F.softmax(",
        "import torch.nn as nn\nnn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(",
        "for a, in loader:\n    a.to(", "train_loader = DataLoader(", "def forward(self, x):\n    return self.",
        "nn.init.zeros_(", "x = x.transpose(1, 2)\ny = x.view(*", "val_tf = T.Compose([T.Random",
    ]
    for fragment in fragments:
        report = analyze_source(fragment, rules=MY_RULES)
        assert not [p for p in report.problems if p.kind == "internal-error"], (fragment, report.problems)


# ---- fixes on the corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", MY_CORPUS, ids=lambda p: p.name)
def test_corpus_fixes_are_safe_and_idempotent(path):
    source = path.read_text(encoding="utf-8")
    before = analyze_source(source, rules=MY_RULES)
    fixed, after = fix_source(source, rules=MY_RULES, unsafe=True)
    cst.parse_module(fixed)
    fixable = {(f.code, f.start.line) for f in before.findings if f.fix is not None}
    remaining = {(f.code, f.start.line) for f in after.findings}
    # every fixed finding is gone (line numbers do not move: the fixes never add or remove lines)
    assert not fixable & remaining
    assert fix_source(fixed, rules=MY_RULES, unsafe=True)[0] == fixed


# ---- cross-file ---------------------------------------------------------------------------------------


def test_model_from_sibling_module(tmp_path):
    (tmp_path / "nets.py").write_text(textwrap.dedent(
        """
        import torch.nn as nn

        class Classifier(nn.Sequential):
            pass

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)
                self.act = nn.Sigmoid()

            def forward(self, x):
                return self.act(self.fc(x))
        """
    ))
    (tmp_path / "train.py").write_text(textwrap.dedent(
        """
        import torch.nn as nn
        from nets import Head

        head = Head()
        loss = nn.BCEWithLogitsLoss()(head(x), y)
        """
    ))
    report = analyze_file(tmp_path / "train.py", project=Project(tmp_path))
    assert [(f.start.line, f.code) for f in report.findings] == [(6, "SAN603")]
    # without the project the model is unknown: silent
    alone = analyze_file(tmp_path / "train.py")
    assert [f.code for f in alone.findings if f.code == "SAN603"] == []


def test_missing_sibling_is_quiet(tmp_path):
    (tmp_path / "train.py").write_text(
        "import torch.nn as nn\nfrom nets import Head\nloss = nn.CrossEntropyLoss()(Head()(x), y)\n"
    )
    report = analyze_file(tmp_path / "train.py", project=Project(tmp_path))
    assert not report.problems and report.findings == []
