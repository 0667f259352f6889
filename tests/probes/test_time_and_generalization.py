"""The two checks from Karpathy's recipe (issue 10, item 7), on real scripts with real torch on CPU:
time-independence (the output at position t must not depend on inputs after t: a missing causal mask fails) and
generalization (after the overfit steps, held-out samples must do better than at initialisation: labels shuffled
against their inputs fail)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
RUNS = {
    "gpt": ("char_gpt", [], ["time-independence", "generalization"]),
    "gpt_no_mask": ("char_gpt", ["--no-mask"], ["time-independence"]),
    "gpt_padded": ("char_gpt", ["--padded"], ["time-independence"]),
    "blobs": ("blob_classifier", [], ["generalization", "time-independence"]),
    "shuffled": ("blob_classifier", ["--shuffle-labels"], ["generalization"]),
    "one_batch": ("blob_classifier", ["--batch-size", "8"], ["generalization"]),
}


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {key: pool.submit(run_probe, str(SCRIPTS / f"{name}.py"), args, checks=checks, timeout=180)
               for key, (name, args, checks) in RUNS.items()}
    yield lambda key: futures[key].result(timeout=600)
    pool.shutdown(wait=True, cancel_futures=True)


def _check(runs, key, cid):
    report = runs(key).report
    assert "error" not in report, report.get("error")
    return next(c for c in report["checks"] if c["id"] == cid)


def test_causal_char_gpt_passes_time_independence(runs):
    check = _check(runs, "gpt", "time-independence")
    assert check["status"] == "pass", check
    t, grads = check["series"]["probed_position"], check["series"]["grad_per_position"]
    assert t == 7 and len(grads) == 16  # the middle of block_size 16
    assert all(g == 0 for g in grads[t + 1:]) and grads[t] > 0
    assert "next-token prediction" in check["message"]


def test_padded_words_with_ignored_targets_are_still_next_token_prediction(runs):
    # makemore's layout: each word ends early, inputs padded with 0 and targets with ignore_index -1
    check = _check(runs, "gpt_padded", "time-independence")
    assert check["status"] == "pass", check
    assert "next-token prediction" in check["message"]


def test_missing_causal_mask_fails_naming_the_first_leaking_position(runs):
    check = _check(runs, "gpt_no_mask", "time-independence")
    assert check["status"] == "fail", check
    assert "depends on the input at position 8" in check["message"] and "causal mask" in check["message"]
    assert check["measured"]["max_grad_later"] > 0
    assert runs("gpt_no_mask").exit_code == 1


def test_non_sequence_model_skips_time_independence_with_the_reason(runs):
    check = _check(runs, "blobs", "time-independence")
    assert check["status"] == "skip" and "not integer tokens" in check["message"], check


def test_learnable_data_generalizes(runs):
    for key in ("blobs", "gpt"):
        check = _check(runs, key, "generalization")
        assert check["status"] == "pass", check
        measured = check["measured"]
        assert measured["held_out_best"] <= 0.95 * measured["held_out_start"]
        assert measured["train_final"] < measured["train_start"]
        assert measured["held_out_samples"] == 8


def test_labels_shuffled_against_inputs_fail_generalization(runs):
    check = _check(runs, "shuffled", "generalization")
    assert check["status"] == "fail", check
    measured = check["measured"]
    assert measured["train_final"] < 0.5 * measured["train_start"]  # the sub-batch is memorised ...
    assert measured["held_out_final"] > 1.1 * measured["held_out_start"]  # ... and nothing transfers
    assert "labels match" in check["message"]
    assert runs("shuffled").exit_code == 1


def test_generalization_skips_without_held_out_samples(runs):
    check = _check(runs, "one_batch", "generalization")
    assert check["status"] == "skip" and "no held-out data" in check["message"], check


def test_generalization_restores_model_optimizer_and_rng_exactly():
    """In process, through the entry path: the held-out samples are the ones after the sub-batch, and after the
    check the weights, the optimizer state (Adam moments included) and the RNG are byte-identical."""
    import torch
    from torch import nn
    from torchsanity.probes.checks import CHECKS
    from torchsanity.probes.context import ProbeContext, loss_info, scalar
    from torchsanity.probes.entry import EntryStep
    from torchsanity.probes.workbench import Workbench

    torch.manual_seed(0)
    y = torch.arange(32) % 4
    x = torch.randn(4, 8)[y] * 2 + torch.randn(32, 8)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    step = EntryStep(model, (x, y), nn.CrossEntropyLoss(), lambda params: torch.optim.Adam(params, lr=1e-2))
    _, loss = step.observe()
    loss.backward()
    step.optimizer.step()  # the optimizer has state to restore
    wb = Workbench(step.models, step.optimizer)
    step.choose_sub_batch(wb)
    held = step.run(wb, held_out=True)
    assert torch.equal(held.model_outputs[0], wb.models[0](x[8:16]))  # samples 8..15, not the sub-batch
    ctx = ProbeContext(step, wb, loss_info(step.loss_call, scalar(loss)), steps=30, sites={})
    weights = [t.clone() for t in wb.models[0].state_dict().values()]
    moments = [t.clone() for s in wb.optimizer.state_dict()["state"].values() for t in s.values()]
    rng = torch.get_rng_state()
    result = CHECKS["generalization"](ctx)
    assert result.status == "pass", result.message
    assert all(torch.equal(a, b) for a, b in zip(weights, wb.models[0].state_dict().values()))
    after = [t for s in wb.optimizer.state_dict()["state"].values() for t in s.values()]
    assert len(after) == len(moments) and all(torch.equal(a, b) for a, b in zip(moments, after))
    assert torch.equal(rng, torch.get_rng_state())
