"""Verdicts as pure functions of a run's records, on series built here (the scripts in test_watch_recorder.py cover
the same verdicts on real runs): the edges of the criteria."""

from __future__ import annotations

import json
import random

from torchsanity.probes.watch_verdicts import Run, verdicts


def run_of(losses: list[float], lr: float = 0.01, **extra) -> Run:
    run = Run()
    lines = [{"kind": "layers", "names": ["0.weight", "0.bias"], "ndim": [2, 1], "numel": [64, 8],
              "optimizer": "SGD"}]
    lines += [{"kind": "step", "step": i + 1, "loss": x, "grad_norm": 1.0, "lr": [lr], "seconds": 0.01,
               "backwards": 1, **extra} for i, x in enumerate(losses)]
    run.extend(json.dumps(r) for r in lines)
    return run


def ids(run: Run) -> set[str]:
    return {v["id"] for v in verdicts(run)}


def test_a_loss_that_swings_around_a_flat_trend_is_noisy_and_a_falling_one_is_not():
    rng = random.Random(0)
    flat = [rng.expovariate(1.0) for _ in range(600)]  # a spread as large as the loss itself
    found = {v["id"]: v for v in verdicts(run_of(flat))}
    noisy = found["noisy-loss"]
    assert 200 <= noisy["step"] <= 600  # three noisy windows of 50 in a row, after the first
    assert "raise the batch size" in noisy["advice"] and len(noisy["evidence"]["steps"]) == 150
    assert "plateau" not in found  # flat, but that noisy: a smaller step or a larger batch, not a larger one
    # the same noise on a loss that keeps falling 15% per window is progress, not a verdict
    falling = [x * 0.85 ** (i // 50) for i, x in enumerate(flat)]
    assert "noisy-loss" not in ids(run_of(falling))
    # mild noise (a healthy minibatch loss) is not a verdict either
    calm = [1.0 + 0.05 * rng.uniform(-1, 1) for _ in range(600)]
    assert "noisy-loss" not in ids(run_of(calm)) and "plateau" in ids(run_of(calm))


def test_a_diverged_loss_is_neither_noisy_nor_a_plateau():
    rng = random.Random(1)
    diverged = [1.0] * 20 + [rng.uniform(50, 150) for _ in range(280)]
    found = ids(run_of(diverged))
    assert "divergence" in found and "noisy-loss" not in found and "plateau" not in found


def test_input_bound_needs_both_the_share_and_a_wait_worth_a_verdict():
    slow = run_of([1.0] * 60, data_seconds=0.03, compute_seconds=0.01)
    assert "input-bound" in ids(slow)
    tiny = run_of([1.0] * 60, data_seconds=0.003, compute_seconds=0.001)  # 75% of a 4 ms step: not worth it
    assert "input-bound" not in ids(tiny)
    busy = run_of([1.0] * 60, data_seconds=0.01, compute_seconds=0.03)
    assert "input-bound" not in ids(busy)


def _evals(run: Run, pairs: list[tuple[int, float]]) -> Run:
    run.extend(json.dumps({"kind": "eval", "step": s, "loss": v, "fn": "cross_entropy"}) for s, v in pairs)
    return run


def test_overfitting_needs_the_validation_loss_to_rise_while_the_training_loss_falls():
    train = [2.0 * 0.99 ** i for i in range(100)]
    rising = [(10 * k, v) for k, v in enumerate([1.5, 1.2, 1.0, 1.05, 1.12, 1.2], start=1)]
    found = {v["id"]: v for v in verdicts(_evals(run_of(train), rising))}
    assert found["overfitting"]["step"] == 50 and found["overfitting"]["evidence"]["values"][-1] == 1.12
    # the same validation curve while the training loss is flat too: not overfitting (both stall)
    assert "overfitting" not in ids(_evals(run_of([1.0] * 100), rising))
    # validation noise within 10% of its best: not a verdict
    wobble = [(10 * k, v) for k, v in enumerate([1.5, 1.2, 1.0, 1.04, 1.02, 1.06], start=1)]
    assert "overfitting" not in ids(_evals(run_of(train), wobble))


def test_a_validation_loss_that_swings_before_its_best_is_not_overfitting_when_it_swings_after():
    train = [2.0 * 0.99 ** i for i in range(100)]
    swinging = [(10 * k, v) for k, v in enumerate([2.0, 1.4, 1.9, 1.0, 1.2, 1.4], start=1)]  # up 0.5 at step 30
    assert "overfitting" not in ids(_evals(run_of(train), swinging))  # 1.0 -> 1.4 is within its swings
    climbing = swinging[:5] + [(60, 1.6), (70, 1.7)]  # 0.6 and 0.7 above its best: more than it ever swung
    found = {v["id"]: v for v in verdicts(_evals(run_of(train), climbing))}
    assert found["overfitting"]["step"] == 60 and "any rise before the best" in found["overfitting"]["criterion"]
