"""One module per check, one list of check ids, one report shape: the child's JSON round-trips through
``probes/report.py``, and the registry, the CLI and the renderer agree on the ids and statuses (package.json's
``probe.checks`` is compared with the registry in tests/extension/test_settings_contract.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchsanity.probes import checks
from torchsanity.probes.checks import CHECK_IDS, CHECKS, MODULES, PARENT_CHECKS
from torchsanity.probes.report import STATUSES, CheckEntry, ProbeError, Report, ReportError, parse_report
from torchsanity.server import probe_report
from torchsanity.server.probe_runner import run_probe

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def test_every_check_module_is_registered_under_its_own_id_in_report_order():
    on_disk = sorted(p.stem for p in (REPO / "probes" / "checks").glob("*.py") if p.stem != "__init__")
    assert sorted(MODULES) == on_disk
    for cid in CHECK_IDS:
        module = checks.load(cid)
        assert module.ID == cid and callable(module.check)
    assert list(CHECKS) == [c for c in CHECK_IDS if c not in PARENT_CHECKS]
    assert CHECK_IDS[0] == "initial-loss" and "determinism" in CHECK_IDS


def test_the_server_side_reads_the_ids_and_the_report_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from torchsanity.server import probe_runner, probe_report, probe_command\n"
            "from torchsanity.probes.checks import CHECK_IDS\n"
            "print(','.join(CHECK_IDS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ",".join(CHECK_IDS)


def test_unknown_check_ids_are_refused_with_the_registry_list():
    with pytest.raises(ValueError, match="unknown check\\(s\\): speed; choose from initial-loss, overfit-batch"):
        run_probe(str(SCRIPTS / "healthy_classifier.py"), checks=["speed"])


def test_renderer_styles_every_status():
    assert set(probe_report.STATUS_STYLE) == set(STATUSES)


def _child_report(tmp_path: Path, script: str, checks: list[str]) -> dict:
    """Run the probe child itself on a script and return the report file it wrote (its raw JSON)."""
    cfg = {"out_dir": str(tmp_path), "checks": checks, "steps": 6, "tag": "main", "mode": "probe"}
    env = dict(os.environ, TORCHSANITY_PROBE_CONFIG=json.dumps(cfg), PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-m", "torchsanity.probes.child", str(SCRIPTS / script)], env=env,
                   cwd=tmp_path, capture_output=True, timeout=240, check=False)
    return json.loads((tmp_path / "report-main-0.json").read_text(encoding="utf-8"))


def test_child_report_round_trips_through_the_contract(tmp_path):
    raw = _child_report(tmp_path, "healthy_classifier.py", ["initial-loss", "overfit-batch", "data-stats"])
    assert [c["id"] for c in raw["checks"]] == ["initial-loss", "overfit-batch", "data-stats"]
    assert set(raw) <= set(Report.__annotations__)
    assert parse_report(raw) == raw
    for entry in raw["checks"]:
        assert CheckEntry.from_json(entry).to_json() == entry
    assert json.loads(json.dumps(parse_report(raw))) == raw


def test_child_error_round_trips_through_the_contract(tmp_path):
    raw = _child_report(tmp_path, "raises_before_backward.py", ["initial-loss"])
    error = raw["error"]
    assert error["source"] == "script" and "Traceback" in error["traceback"]
    assert ProbeError.from_json(error).to_json() == error
    assert parse_report(raw) == raw


@pytest.mark.parametrize("report, complaint", [
    ([], "a report is a JSON object"),
    ({"checks": [{"id": "initial-loss", "status": "ok", "message": "m"}]}, "status 'ok' is not one of pass"),
    ({"checks": [{"id": "initial-loss", "status": "pass"}]}, "missing message"),
    ({"checks": [{"id": "x", "status": "pass", "message": "m", "colour": 1}]}, "unknown colour"),
    ({"checks": [{"id": "x", "status": "pass", "message": "m", "line": "3"}]}, "line must be int"),
    ({"error": {"type": "X", "message": "m", "source": "elsewhere"}}, "source 'elsewhere'"),
    ({"error": {"type": "X"}}, "missing message"),
    ({"exit_code": True}, "exit_code must be int, not a boolean"),
    ({"verdict": "OK"}, "unknown report field\\(s\\): verdict"),
])
def test_reports_off_the_contract_are_refused_with_the_reason(report, complaint):
    with pytest.raises(ReportError, match=complaint):
        parse_report(report)
