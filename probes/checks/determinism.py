"""determinism: two fresh runs of the script must start identically (same initial weights, first batch and first
loss). The parent launches the second run and compares the two reports' fingerprints, so this check runs there and
needs no torch."""

from __future__ import annotations

import os

from ..report import CheckEntry

ID = "determinism"


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def determinism(main_report: dict, second: dict | None, *, distributed: bool) -> dict:
    """Compare the fingerprints (first loss, initial weights, first batch) of two fresh runs of the script:
    ``main_report`` and ``second`` (the report of the second run, None when it was not launched)."""
    sites = main_report.get("sites", {})

    def check(status: str, message: str, measured=None, expected=None, site: str = "model", series=None) -> dict:
        s = sites.get(site) or sites.get("loop") or {}
        path = s.get("path")
        if path and os.path.abspath(path) == os.path.abspath(main_report.get("script") or ""):
            path = None
        return CheckEntry(ID, status, message, measured, expected, s.get("line"), path, series or {}).to_json()

    if distributed or second is None:
        return check("skip", "not run under --nproc-per-node (two more distributed launches would be needed)")
    a = main_report.get("fingerprint")
    b = second.get("fingerprint")
    if not a or not b:
        why = (second.get("error") or {}).get("message")
        return check("skip" if not a else "error", "the second run did not reach its first backward()" +
                     (f": {why}" if why else "") if a else "the first run did not reach its first backward()")
    device = str(main_report.get("device") or "cpu")
    tol = 1e-6 if device.startswith("cpu") else 1e-4
    params = max(_rel(x, y) for x, y in zip(a["params"], b["params"]))
    batch = max(_rel(x, y) for x, y in zip(a["batch"], b["batch"]))
    loss = _rel(a["loss"], b["loss"])
    measured = {"first_loss": [a["loss"], b["loss"]], "weights_rel_diff": params, "batch_rel_diff": batch,
                "loss_rel_diff": loss}
    series = {"runs": ["run 1", "run 2"], "first_loss": [a["loss"], b["loss"]]}
    expected = "identical first loss, weights and batch in two fresh runs"
    status = "fail" if device.startswith("cpu") else "warn"
    if params > tol:
        return check(status, "two fresh runs start from different weights: seed torch (torch.manual_seed) before "
                     "building the model", measured, expected, "model", series)
    if batch > tol:
        return check(status, "two fresh runs see a different first batch: seed the data order and generation "
                     "(torch, numpy and random seeds; a seeded DataLoader generator)", measured, expected, "data",
                     series)
    if loss > tol:
        return check(status, "same weights and batch but a different first loss: unseeded randomness in the "
                     "forward pass (dropout, noise) or nondeterministic kernels", measured, expected, "loss", series)
    return check("pass", f"two fresh runs start identically (first loss {a['loss']:.6g}, same weights and batch)",
                 measured, expected, "model", series)


check = determinism
