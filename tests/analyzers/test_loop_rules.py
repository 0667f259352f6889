"""Training-loop rules (SAN1xx, SAN2xx, SAN4xx, SAN501-503) beyond their own examples: fixes on whole
scripts, robustness on half-typed code, suppression, cross-file resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst
import pytest

from torchsanity.analyzers import Project, all_rules, analyze_file, analyze_source, fix_source

HERE = Path(__file__).parent
LOOP_RULES = [r for r in all_rules() if r.code not in ("SAN100", "SAN204") and r.code[:4] in ("SAN1", "SAN2", "SAN4")
              or r.code in ("SAN501", "SAN502", "SAN503")]
LOOP_CORPUS = sorted((HERE / "corpus").glob("loop_*.py"))
BUG_SCRIPTS = [p for p in LOOP_CORPUS if "bugs" in p.name]


def test_the_loop_rules_are_registered():
    assert {r.code for r in LOOP_RULES} == {
        "SAN101", "SAN102", "SAN104", "SAN105", "SAN106", "SAN107", "SAN201", "SAN202", "SAN203", "SAN401",
        "SAN402", "SAN501", "SAN502", "SAN503",
    }


@pytest.mark.parametrize("path", BUG_SCRIPTS, ids=lambda p: p.name)
def test_fixes_on_whole_scripts_parse_remove_findings_and_are_idempotent(path):
    source = path.read_text(encoding="utf-8")
    before = analyze_source(source, rules=LOOP_RULES)
    fixable = {f.code for f in before.findings if f.fix is not None}
    fixed, after = fix_source(source, rules=LOOP_RULES, unsafe=True)
    cst.parse_module(fixed)
    assert not after.problems
    assert not any(f.fix is not None for f in after.findings), [(f.code, f.start) for f in after.findings if f.fix]
    for code in fixable:
        assert len([f for f in after.findings if f.code == code]) < len([f for f in before.findings if f.code == code])
    again, _ = fix_source(fixed, rules=LOOP_RULES, unsafe=True)
    assert again == fixed


def _truncations(source: str):
    lines = source.splitlines(keepends=True)
    step = max(1, len(lines) // 8)
    for cut in range(1, len(lines), step):
        yield "".join(lines[:cut])
        yield "".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2]
        yield "".join(lines[:cut] + lines[cut + 1:])


@pytest.mark.parametrize("path", LOOP_CORPUS, ids=lambda p: p.name)
def test_half_typed_code_never_breaks_a_rule(path):
    for source in _truncations(path.read_text(encoding="utf-8")):
        report = analyze_source(source, rules=LOOP_RULES)
        assert not [p for p in report.problems if p.kind == "internal-error"], report.problems


def test_noqa_silences_a_loop_rule():
    source = "for x, y in loader:  # noqa: SAN101\n    loss_fn(model(x), y).backward()\n    opt.step()\n"
    assert "SAN101" not in [f.code for f in analyze_source(source, rules=LOOP_RULES).findings]
    assert "SAN101" in [f.code for f in analyze_source(source.replace("  # noqa: SAN101", ""), rules=LOOP_RULES).findings]


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))


def test_helpers_from_a_sibling_module_count_where_they_are_called(tmp_path):
    _write(tmp_path, {
        "steps.py": """
            def clear(optimizer):
                optimizer.zero_grad(set_to_none=True)

            def update(model, optimizer, loss):
                loss.backward()
                optimizer.step()
        """,
        "train.py": """
            from steps import clear, update

            for x, y in loader:
                clear(opt)
                update(net, opt, loss_fn(net(x), y))
            for x, y in loader:
                update(net, opt, loss_fn(net(x), y))
        """,
    })
    project = Project(tmp_path)
    report = analyze_file(tmp_path / "train.py", project=project)
    assert [(f.code, f.start.line) for f in report.findings if f.code == "SAN101"] == [("SAN101", 7)]
    # Without the project the helpers are opaque: nothing to say.
    alone = analyze_file(tmp_path / "train.py")
    assert [f for f in alone.findings if f.code == "SAN101"] == []


def test_seeding_helper_in_a_sibling_module(tmp_path):
    _write(tmp_path, {
        "utils.py": """
            import torch

            def make_reproducible(s):
                torch.manual_seed(s)
        """,
        "main.py": """
            import torch
            from utils import make_reproducible

            make_reproducible(0)
            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        """,
    })
    with_project = analyze_file(tmp_path / "main.py", project=Project(tmp_path))
    assert "SAN401" not in {f.code for f in with_project.findings}
    alone = analyze_file(tmp_path / "main.py")
    assert "SAN401" in {f.code for f in alone.findings}


def test_rule_docs_render():
    for rule in LOOP_RULES:
        page = rule.docs_markdown()
        assert page.startswith(f"# {rule.code} {rule.name}")


def test_scheduler_step_in_a_called_helper_is_reported_once_where_written():
    source = '''import torch
from torch.utils.data import DataLoader

model = torch.nn.Linear(4, 2)
loader = DataLoader(dataset, batch_size=8, shuffle=True)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


def train(epochs):
    for epoch in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
            scheduler.step()


if __name__ == "__main__":
    train(3)
'''
    from torchsanity.analyzers import analyze_source

    found = [(f.code, f.start.line) for f in analyze_source(source).findings if f.code == "SAN502"]
    assert found == [("SAN502", 16)]
