"""`torchsanity probe` on the bundled example (the README's first command), JSON / text / HTML output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from torchsanity.server import probe_report

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/healthy_classifier.py"


def _cli(*args, timeout=280):
    return subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_bundled_example_passes_and_renders(tmp_path):
    proc = _cli("--format", "json", EXAMPLE, "--", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["script"].endswith("healthy_classifier.py")
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "initial-loss": "pass", "overfit-batch": "pass", "generalization": "pass", "input-independence": "pass",
        "batch-independence": "pass", "time-independence": "skip", "gradient-flow": "pass", "determinism": "pass",
        "lr-range": "pass", "data-stats": "pass"}
    for c in report["checks"]:
        assert set(c) >= {"id", "status", "measured", "expected", "message", "line", "series"}
        assert c["line"] is None or c["line"] >= 1
    assert not (REPO / "healthy_classifier.pt").exists()  # stopped long before its checkpoint

    text = probe_report.render_text(report)
    assert "PASS   overfit-batch" in text and text.rstrip().endswith("9 pass, 1 skip")

    page = probe_report.render_html(report)
    assert "Chart.js v4" in page and "new Chart(" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing fetched at view time
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded)["checks"] == report["checks"]


def test_html_output_file_and_exit_code_on_failure(tmp_path):
    out = tmp_path / "report.html"
    script = REPO / "tests/probes/scripts/big_final_layer.py"
    proc = _cli("--checks", "initial-loss", str(script), "--output", str(out))  # options after the script too
    assert proc.returncode == 1, proc.stderr
    assert "report written to" in proc.stderr and "FAIL" in proc.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "initial-loss" in page


def test_text_format_and_bad_arguments():
    proc = _cli("--checks", "initial-loss,data-stats", EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert "PASS   initial-loss" in proc.stdout and "OK: 2 pass" in proc.stdout
    bad = _cli("--checks", "overfit", EXAMPLE)
    assert bad.returncode == 2 and "unknown check" in bad.stderr
    missing = _cli("no_such_script.py")
    assert missing.returncode == 2 and "no such script" in missing.stdout


def test_options_between_the_script_and_its_arguments():
    proc = _cli("--checks", "initial-loss", EXAMPLE, "--format", "json", "--", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert [c["id"] for c in json.loads(proc.stdout)["checks"]] == ["initial-loss"]
