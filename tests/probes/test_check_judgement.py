"""Checks that judge what they measure (issue 10, item 6): the lr-range sweep's smoothing, divergence and
suggestion; initial-loss on GAN-style binary losses; input-independence on constant targets. Synthetic curves for
the sweep's arithmetic, real torch on CPU for the verdicts."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from test_checks_unit import blobs, run_check
from torch import nn
from torchsanity.probes.checks.lr_range import LR_DIVERGE, steepest_descent, sweep_curve
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _lrs(n):
    return [1e-8 * (1e8) ** (i / (n - 1)) for i in range(n)]


def test_smoothing_is_a_bias_corrected_moving_average_that_stops_at_4x_its_minimum():
    losses = [2.0] * 10 + [2.0 - 0.15 * i for i in range(10)] + [0.6 * 1.6 ** i for i in range(20)]
    smoothed, diverged = sweep_curve(losses)
    assert smoothed[0] == 2.0 and smoothed[9] == 2.0  # bias-corrected: no pull towards 0 at the start
    assert diverged is not None and smoothed[diverged] > LR_DIVERGE * min(smoothed[:diverged])
    assert all(s <= LR_DIVERGE * min(smoothed[:i + 1]) for i, s in enumerate(smoothed[:diverged]))
    assert sweep_curve([float("nan"), 1.0]) == ([], 0)


def test_the_suggestion_is_the_steepest_descent_before_the_raw_loss_blows_up():
    n = 40
    lrs = _lrs(n)
    losses = [2.0] * 12 + [2.0 - 0.12 * i for i in range(1, 13)] + [0.6] * 4 + [60.0] + [0.6] * (n - 29)
    smoothed, diverged = sweep_curve(losses)
    index, why = steepest_descent(lrs, losses, smoothed, diverged)
    assert why == "steepest" and 12 <= index < 28  # in the descent, never at or after the spike at 28
    assert losses[index] < LR_DIVERGE * min(smoothed[: index + 1])


def test_a_flat_sweep_has_no_suggestion():
    n = 40
    losses = [1.0 + 0.001 * math.sin(i) for i in range(n)]
    smoothed, diverged = sweep_curve(losses)
    assert steepest_descent(_lrs(n), losses, smoothed, diverged) == (None, "flat")


def test_lr_range_on_real_models():
    x, y = blobs()
    healthy = run_check("lr-range", nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), (x, y),
                        nn.CrossEntropyLoss(), lr=1e-2, steps=40)
    assert healthy.status in ("pass", "warn") and healthy.measured["suggested"] is not None, healthy.message
    lrs, raw = healthy.series["lr"], healthy.series["loss"]
    i = lrs.index(healthy.measured["suggested"])
    assert math.isfinite(raw[i]) and raw[i] <= LR_DIVERGE * min(healthy.series["smoothed"][: i + 1])

    dead = nn.Sequential(nn.Linear(8, 4), nn.ReLU())  # every unit off: no gradient, the loss cannot move
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)
    flat = run_check("lr-range", dead, (x, y), nn.CrossEntropyLoss(), steps=40)
    assert flat.status == "warn" and "stayed flat" in flat.message and flat.measured["suggested"] is None

    broken = nn.Linear(8, 4)
    with torch.no_grad():
        broken.weight[0, 0] = float("nan")
    res = run_check("lr-range", broken, (x, y), nn.CrossEntropyLoss(), steps=40)
    assert res.status == "error" and "first loss is nan" in res.message, res.message


def test_input_independence_skips_when_every_target_is_the_same():
    x, _ = blobs()
    res = run_check("input-independence", nn.Sequential(nn.Linear(8, 1), nn.Flatten(0)), (x, torch.ones(64)),
                    nn.BCEWithLogitsLoss(), steps=20)
    assert res.status == "skip" and "every target in the 8 samples fitted is 1" in res.message


def test_dcgan_style_discriminator_loss_at_1_7_ln2_warns_and_names_the_step():
    outcome = run_probe(str(SCRIPTS / "dcgan_style.py"), checks=["initial-loss", "input-independence"], timeout=180)
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert report["loss"]["kind"] == "bce" and report["step"]["index"] == 1
    checks = {(c["id"], (c.get("details") or {}).get("step")): c for c in report["checks"]}
    initial = checks["initial-loss", "discriminator"]
    assert 1.5 < initial["measured"]["ratio"] < 3 and initial["status"] == "warn", initial
    assert initial["measured"]["constant_target"] == 0.0  # the fake batch of the discriminator's step
    assert initial["message"].startswith("discriminator step: ")
    generator = checks["initial-loss", "generator"]  # -log D(G(z)) after D's first step: D's verdict, not G's init
    assert generator["status"] == "skip" and "discriminator's verdict" in generator["message"], generator
    assert all(c["status"] == "skip" for (cid, _), c in checks.items() if cid == "input-independence")
    assert outcome.exit_code == 0
