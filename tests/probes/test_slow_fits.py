"""Slow fits are slow, not broken (issue 10, item 6; found on karpathy/makemore at its default learning rate 5e-4):
a zero-initialised bigram table falls in a straight, slow line that overfit-batch used to call a plateau ("cannot
fit"), and a slow character RNN's held-out loss falling in step with its training loss was "nothing transferred".
Real CLI runner, real torch on CPU, on a script of our own (tests/probes/scripts/slow_char_models.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.probes.checks.generalization import _judge
from torchsanity.probes.context import still_falling
from torchsanity.server.probe_runner import run_probe

SCRIPT = str(Path(__file__).resolve().parent / "scripts" / "slow_char_models.py")
RUNS = {
    "bigram": (["--type", "bigram"], ["overfit-batch", "generalization", "input-independence"]),
    "rnn": (["--type", "rnn"], ["generalization"]),
}


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=1)
    futures = {key: pool.submit(run_probe, SCRIPT, args, checks=checks, timeout=300)
               for key, (args, checks) in RUNS.items()}

    def get(key):
        outcome = futures[key].result(timeout=900)
        assert "error" not in outcome.report, outcome.report.get("error")
        return {c["id"]: c for c in outcome.report["checks"]}

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def test_a_slow_straight_fit_escalates_and_warns_instead_of_failing(runs):
    check = runs("bigram")["overfit-batch"]
    assert check["status"] == "warn", check
    assert "still falling slowly" in check["message"]
    measured = check["measured"]
    assert measured["steps"] > 60  # continued past --steps while the line still fell
    assert measured["final"] < 0.99 * measured["start"]
    assert measured["final"] > 0.3 * measured["start"]  # it is slow: not memorised


def test_generalization_and_input_independence_skip_a_fit_too_slow_to_judge(runs):
    checks = runs("bigram")
    gen = checks["generalization"]
    assert gen["status"] == "skip" and "too slow to judge" in gen["message"], gen
    assert gen["measured"]["train_final"] > 0.5 * gen["measured"]["train_start"]
    inputs = checks["input-independence"]
    assert inputs["status"] == "skip" and "moved too little to compare" in inputs["message"], inputs


def test_a_slow_rnn_whose_held_out_loss_falls_with_its_fit_passes_generalization(runs):
    gen = runs("rnn")["generalization"]
    assert gen["status"] == "pass", gen
    assert gen["measured"]["held_out_best"] < gen["measured"]["held_out_start"]


def _line(start: float, end: float, n: int) -> list[float]:
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def test_still_falling_tells_a_slow_line_from_a_plateau_and_from_no_progress():
    assert still_falling(_line(3.30, 3.25, 60))  # 1.5 % in a straight line: slow, still going
    assert not still_falling(_line(3.30, 3.2999, 60))  # no progress at all
    levelled = _line(3.30, 2.0, 20) + [2.0 - 0.0001 * i for i in range(40)]
    assert not still_falling(levelled)  # fell, then levelled off: a plateau
    assert still_falling(_line(3.30, 2.0, 60))  # the fast fall of the old rule


def test_held_out_loss_in_step_with_a_slow_fit_passes_and_a_flat_one_does_not():
    steps = [0, 1, 2, 3, 4, 5, 10, 15, 20, 25, 30, 35, 39]
    train = _line(3.34, 2.87, 40)  # a slow fit: 14 % in 40 steps (makemore's RNN at lr 5e-4)
    with_it = [(i, 3.263 - 0.003 * i) for i in steps]  # 3.6 %: about a quarter of the training loss's fall
    res = _judge(train, with_it, 8, 8, None)
    assert res.status == "pass" and "fell with the training loss" in res.message, res.message
    flat = [(i, 3.263 - 0.0001 * i) for i in steps]
    res = _judge(train, flat, 8, 8, None)
    assert res.status == "skip" and "too slow to judge" in res.message, res.message
    res = _judge(_line(3.34, 1.0, 40), flat, 8, 8, None)  # the fit halved the loss and nothing moved: a finding
    assert res.status == "warn" and "nothing transferred" in res.message, res.message


def test_a_table_indexed_by_tokens_says_why_batch_independence_cannot_chart_it():
    import torch
    from torch import nn
    from torchsanity.probes.checks import CHECKS
    from torchsanity.probes.context import ProbeContext, loss_info, scalar
    from torchsanity.probes.entry import EntryStep
    from torchsanity.probes.workbench import Workbench

    class Table(nn.Module):  # the bigram model's lookup: logits = table[idx]
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(27, 27))

        def forward(self, idx):
            return self.logits[idx].transpose(1, 2)

    torch.manual_seed(0)
    idx = torch.randint(0, 27, (16, 10))
    step = EntryStep(Table(), (idx, torch.randint(0, 27, (16, 10))), nn.CrossEntropyLoss(),
                     lambda params: torch.optim.AdamW(params, lr=5e-4))
    _, loss = step.observe()
    wb = Workbench(step.models, step.optimizer)
    step.choose_sub_batch(wb)
    res = CHECKS["batch-independence"](ProbeContext(step, wb, loss_info(step.loss_call, scalar(loss)), steps=5,
                                                    sites={}))
    wb.restore()
    assert res.status == "skip" and "no nn.Embedding takes them" in res.message, res.message
