"""SAN107 (an optimizer over parameters that are all frozen) beyond its own examples: near misses on both
sides of every condition the rule checks, the message (which parameters, frozen where), notebooks and
the editor's incremental analysis."""

from __future__ import annotations

from textwrap import dedent

import pytest

from torchsanity.analyzers import analyze_source
from torchsanity.analyzers.live import LiveDocument
from torchsanity.analyzers.rules.san107_optimizer_over_frozen_parameters import OptimizerOverFrozenParameters

RULE = [OptimizerOverFrozenParameters]


def _lines(source: str, path: str = "train.py") -> list[int]:
    report = analyze_source(dedent(source), path, rules=RULE)
    assert not report.problems, report.problems
    return [f.start.line for f in report.findings if f.code == "SAN107"]


# (found on, code): each pair of cases differs in one condition of the rule.
CASES = {
    "the head is optimized but was never replaced": ([6], """\
        import torch.optim as optim
        import torchvision
        model = torchvision.models.resnet18(weights="DEFAULT")
        for param in model.parameters():
            param.requires_grad = False
        optimizer = optim.SGD(model.fc.parameters(), lr=1e-3)
    """),
    "the head is replaced after the freeze": ([], """\
        import torch
        import torch.optim as optim
        import torchvision
        model = torchvision.models.resnet18(weights="DEFAULT")
        for param in model.parameters():
            param.requires_grad = False
        model.fc = torch.nn.Linear(512, 2)
        optimizer = optim.SGD(model.fc.parameters(), lr=1e-3)
    """),
    "a layer of a Sequential replaced after the freeze": ([], """\
        import torch
        for param in vgg.parameters():
            param.requires_grad = False
        vgg.classifier[6] = torch.nn.Linear(4096, 2)
        optimizer = torch.optim.SGD(vgg.parameters(), lr=1e-3)
    """),
    "freeze and optimizer under the same flag": ([5], """\
        import torch
        if args.freeze:
            for p in model.parameters():
                p.requires_grad = False
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    """),
    "freeze under a flag, optimizer not": ([], """\
        import torch
        if args.freeze:
            model.requires_grad_(False)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    """),
    "named_parameters, every one frozen": ([4], """\
        import torch
        for name, p in model.named_parameters():
            p.requires_grad = False
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "named_parameters, some skipped": ([], """\
        import torch
        for name, p in model.named_parameters():
            if name.startswith("fc."):
                continue
            p.requires_grad = False
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "moved, wrapped, printed and counted in between": ([9], """\
        import torch
        import torch.nn as nn
        for p in model.parameters(): p.requires_grad_(False)
        model = model.to(device)
        model = nn.DataParallel(model)
        print(model)
        logger.info("model %s", model)
        n_params = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "rebuilt in between": ([], """\
        import torch
        model.requires_grad_(False)
        model = Net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "an alias changed in between": ([], """\
        import torch
        model.requires_grad_(False)
        net = model
        net.fc = torch.nn.Linear(512, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "new parameters set on its modules in between": ([], """\
        import torch
        model.requires_grad_(False)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight = torch.nn.Parameter(torch.ones(module.normalized_shape))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "handed to an unknown helper in between": ([], """\
        import torch
        model.requires_grad_(False)
        attach_adapters(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "a helper of this file that changes the model": ([], """\
        import torch
        def add_head():
            model.fc = torch.nn.Linear(3, 4)
        model.requires_grad_(False)
        add_head()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "a method on self": ([5], """\
        import torch
        class Trainer:
            def setup(self):
                self.model.requires_grad_(False)
                self.optimizer = torch.optim.Adam(params=self.model.parameters(), lr=1e-3)
    """),
    "a module added through self in between": ([], """\
        import torch
        class Trainer:
            def setup(self):
                self.model.requires_grad_(False)
                self.model.add_module("head", torch.nn.Linear(8, 2))
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
    """),
    "every parameter group frozen": ([3], """\
        import torch
        model.requires_grad_(False)
        optimizer = torch.optim.SGD([{"params": model.backbone.parameters()}, {"params": model.neck.parameters()}], lr=0.1)
    """),
    "one parameter group trains": ([], """\
        import torch
        model.backbone.requires_grad_(False)
        optimizer = torch.optim.SGD([{"params": model.backbone.parameters()}, {"params": model.head.parameters()}], lr=0.1)
    """),
    "the trainable ones filtered out of a frozen model (an empty list raises)": ([], """\
        import torch
        model.requires_grad_(False)
        optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
    """),
    "a slice of the parameters frozen": ([], """\
        import torch
        for p in list(model.parameters())[:-2]:
            p.requires_grad = False
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "requires_grad set on the module (freezes nothing)": ([], """\
        import torch
        model.requires_grad = False
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "the optimizer in another function": ([], """\
        import torch
        model.requires_grad_(False)
        def make_optimizer():
            return torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "a block unfrozen through a subscript": ([], """\
        import torch
        for p in model.encoder.parameters():
            p.requires_grad = False
        optimizer = torch.optim.AdamW(model.encoder.parameters(), lr=2e-5)
        for epoch in range(4):
            blocks[-1 - epoch].requires_grad_(True)
    """),
    "unfrozen with requires_grad_() and no argument": ([], """\
        import torch
        model.requires_grad_(False)
        model.fc.requires_grad_()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """),
    "the teacher is frozen, the student optimized": ([], """\
        import torch
        teacher.requires_grad_(False)
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    """),
}


@pytest.mark.parametrize("name", CASES)
def test_near_misses(name):
    expected, source = CASES[name]
    assert _lines(source) == expected


def test_the_message_says_what_is_frozen_and_where():
    source = dedent("""\
        import torch
        import torchvision
        model = torchvision.models.resnet18(weights="DEFAULT")

        for param in model.parameters():
            param.requires_grad = False
        optimizer = torch.optim.SGD(model.layer4.parameters(), lr=1e-3)
    """)
    [finding] = analyze_source(source, "train.py", rules=RULE).findings
    assert (finding.start.line, finding.severity.value, finding.fix) == (7, "warning", None)
    assert "`model.layer4.parameters()`" in finding.message
    assert "every parameter of `model` was frozen" in finding.message and "on line 5" in finding.message


def test_in_a_notebook_the_message_gives_no_line_of_the_joined_program():
    source = "import torch\nmodel.requires_grad_(False)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    [finding] = analyze_source(source, "nb.ipynb", rules=RULE).findings
    assert "on line" not in finding.message and "`model`" in finding.message


def test_the_editor_reports_what_a_fresh_analysis_reports_while_the_freeze_moves():
    first = dedent("""\
        import torch


        def setup(model):
            for p in model.parameters():
                p.requires_grad = False
            return torch.optim.SGD(model.parameters(), lr=0.1)
    """)
    edited = first.replace("def setup(model):\n", "def setup(model):\n    print(model)\n\n")
    document = LiveDocument()
    for text in (first, edited, first):
        live = [(f.start.line, f.message) for f in document.analyze(text, "train.py", rules=RULE).findings]
        fresh = [(f.start.line, f.message) for f in analyze_source(text, "train.py", rules=RULE).findings]
        assert live == fresh and len(live) == 1
    assert "on line 7" in analyze_source(edited, "train.py", rules=RULE).findings[0].message
