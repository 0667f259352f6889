"""A DDP script under `--nproc-per-node 2` with gloo: every rank is probed, rank 0 reports."""

from __future__ import annotations


def test_ddp_two_ranks_gloo(scripts_dir):
    from torchsanity.server.probe_runner import run_probe

    outcome = run_probe(str(scripts_dir / "ddp_classifier.py"), nproc_per_node=2, timeout=280)
    report = outcome.report
    assert "error" not in report, report.get("error")
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses.pop("determinism") == "skip"
    assert statuses.pop("time-independence") == "skip"  # a classifier, not a sequence model
    assert set(statuses.values()) == {"pass"}, [(c["id"], c["message"]) for c in report["checks"]]
    assert report["world_size"] == 2 and report["rank"] == 0
    assert [r["rank"] for r in report["ranks"]] == [0, 1]
    for rank in report["ranks"]:
        assert rank["exit_code"] == 0 and rank["statuses"].pop("time-independence") == "skip"
        assert set(rank["statuses"].values()) == {"pass"}, rank["statuses"]
    assert outcome.exit_code == 0
