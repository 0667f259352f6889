"""SAN105 on a loss divided by the wrong count: the fix is unsafe and offered only with `--unsafe-fixes`, it makes
the accumulated gradient the gradient of the combined batch (checked with torch), and the name guess behind it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torchsanity.analyzers import all_rules, analyze_source, fix_source
from torchsanity.analyzers.name_guesses import counts_accumulation_steps

SAN105 = [rule for rule in all_rules() if rule.code == "SAN105"]
CORPUS = Path(__file__).parent / "corpus" / "loop_bugs_accumulation_divisor.py"

# A training loop over micro-batches, runnable as it is written: ``grad_accum`` and ``accum_steps`` are two
# names for "how many micro-batches per step"; the loss is divided by one and the step waits for the other.
LOOP = textwrap.dedent("""
    grad_accum = 2
    accum_steps = 4
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y)
        loss = loss / grad_accum
        loss.backward()
        if (i + 1) % accum_steps == 0:
            grads.append(model.weight.grad.clone())
            optimizer.step()
            optimizer.zero_grad()
""")


def _run(code: str) -> list[torch.Tensor]:
    """Run ``code`` on a linear model that never moves (lr 0): the gradient of each optimizer step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    data = torch.randn(8, 3), torch.randn(8, 1)
    loader = [(data[0][i:i + 1], data[1][i:i + 1]) for i in range(8)]
    grads: list[torch.Tensor] = []
    namespace = {"loader": loader, "model": model, "criterion": torch.nn.MSELoss(), "grads": grads,
                 "optimizer": torch.optim.SGD(model.parameters(), lr=0.0)}
    exec(compile(code, "<loop>", "exec"), namespace)
    return grads


def _combined_batch_gradients() -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1, bias=False)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    out = []
    for start in (0, 4):
        model.zero_grad()
        torch.nn.MSELoss()(model(x[start:start + 4]), y[start:start + 4]).backward()
        out.append(model.weight.grad.clone())
    return out


def test_the_fix_makes_the_accumulated_gradient_that_of_the_combined_batch():
    report = analyze_source(LOOP, rules=SAN105)
    [finding] = report.findings
    assert finding.start.line == 6 and "divided by `grad_accum`" in finding.message
    assert not finding.fix.is_safe
    fixed, after = fix_source(LOOP, rules=SAN105, unsafe=True)
    assert "loss = loss / accum_steps" in fixed and not after.findings
    expected = _combined_batch_gradients()
    before, repaired = _run(LOOP), _run(fixed)
    assert len(before) == len(repaired) == len(expected) == 2
    for wrong, right, want in zip(before, repaired, expected):
        assert torch.allclose(right, want, atol=1e-6)
        assert torch.allclose(wrong, 2 * want, atol=1e-6)  # divided by 2 over 4 micro-batches: twice the gradient


def test_safe_fixes_leave_a_wrong_divisor_alone():
    fixed, after = fix_source(LOOP, rules=SAN105, unsafe=False)
    assert fixed == LOOP
    assert [f.code for f in after.findings] == ["SAN105"]


def test_cli_offers_the_divisor_fix_only_with_unsafe_fixes(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(CORPUS.read_text(encoding="utf-8"), encoding="utf-8")
    command = [sys.executable, "-m", "torchsanity.server", "check", "--no-cache", "--select", "SAN105", "--diff"]
    safe, unsafe = (subprocess.run([*command, *extra, str(script)], capture_output=True, text=True, timeout=120,
                                   check=False) for extra in ([], ["--unsafe-fixes"]))
    assert "+            loss = outputs.loss / args.accumulation_steps" not in safe.stdout, safe.stdout
    assert unsafe.returncode == 1, unsafe.stderr
    assert "-            loss = outputs.loss / args.grad_accum  # expect: SAN105" in unsafe.stdout
    assert "+            loss = outputs.loss / args.accumulation_steps  # expect: SAN105" in unsafe.stdout
    assert "+        loss = criterion(model(images), labels) / ACCUM_STEPS  # expect: SAN105" in unsafe.stdout
    assert script.read_text(encoding="utf-8") == CORPUS.read_text(encoding="utf-8")  # --diff writes nothing


@pytest.mark.parametrize("name, expected", [
    ("accum_steps", True), ("args.gradient_accumulation_steps", True), ("cfg.TRAIN.ACCUMULATION_STEPS", True),
    ("grad_acc", True), ("iters_to_accumulate", True), ("accumulate_grad_batches", True),
    ("accuracy", False), ("acc_steps", False), ("accumulated_tokens", False), ("accum_loss", False),
    ("batch_size", False), ("total_accum_samples", False),
])
def test_names_of_accumulation_counts(name, expected):
    assert counts_accumulation_steps(name) is expected
