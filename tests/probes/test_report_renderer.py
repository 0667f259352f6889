"""The one renderer of the probe report (server/probe_report.py + report_page.py), on a report of a real probe run
(the CLI in a subprocess, real torch on CPU): the CLI's file and the VS Code webview's page share one body; no
Python dict reaches a cell; the charts plot what their axes say; errors read as ERROR with a traceback and advice
in the front end's words; the model summary, first-layer filters and thumbnails are right for the model."""

from __future__ import annotations

import html
import importlib.util
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torchsanity.probes import summary  # noqa: E402
from torchsanity.probes.report import describe  # noqa: E402
from torchsanity.server.lsp_probe import render_report  # noqa: E402
from torchsanity.server.probe_charts import chart_specs  # noqa: E402
from torchsanity.server.probe_report import render_html  # noqa: E402
from torchsanity.server.report_page import page_body, webview  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests/probes/scripts"
CNN = SCRIPTS / "frozen_stem_cnn.py"
WEBVIEW = {"nonce": "dGVzdC1ub25jZS0xMjM0", "cspSource": "https://file+.vscode-resource.vscode-cdn.net",
           "chartUri": "https://file+.vscode-resource.vscode-cdn.net/ext/out/webview/chart.umd.min.js"}
DICT_LIKE = re.compile(r"[{}]|'\w+':|\"\w+\":|\[\{")


def probe(*args: str, timeout: int = 400) -> dict:
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--format", "json", "--device", "cpu",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def report() -> dict:
    return probe("--checks", "initial-loss,generalization,lr-range,gradient-flow,data-stats", "--steps", "20", str(CNN))


def decode_png(uri: str) -> tuple[int, int, int, list[bytes]]:
    """(width, height, channels, rows) of a data: URI PNG as summary.png writes it (checks every chunk's CRC)."""
    import base64

    data = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    channels = {0: 1, 2: 3}[colour]
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + width * channels
    rows = [raw[i * stride:(i + 1) * stride] for i in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type none
    return width, height, channels, [row[1:] for row in rows]


def test_the_cli_file_and_the_webview_page_share_one_body(report):
    cli = render_html(report)
    page = render_report({"report": report, **WEBVIEW})["html"]  # the language server's torchsanity/renderReport
    cli_nonce = re.search(r'<script nonce="([^"]+)">', cli).group(1)
    assert page_body(cli).replace(cli_nonce, "N") == page_body(page).replace(WEBVIEW["nonce"], "N")
    # the file carries Chart.js inside; the webview loads the extension's copy, under its policy and nonce
    assert "Chart.js v4" in cli and "Chart.js v4" not in page
    assert f'<script nonce="{WEBVIEW["nonce"]}" src="{WEBVIEW["chartUri"]}"></script>' in page
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page).group(1)
    assert "default-src 'none'" in policy and f"script-src 'nonce-{WEBVIEW['nonce']}'" in policy
    for page_ in (cli, page):
        for tag in re.findall(r"<script\b[^>]*>", page_):
            assert "nonce=" in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:image/png|https://file\+)", page_)


def test_the_webview_shell_takes_source_expressions_and_refuses_directives():
    assert webview("bm9uY2UxMjM0", "'self' https://*.vscode-cdn.net http://127.0.0.1:8080", "x").csp_source
    for bad in ("a; script-src *", 'a" onload="x', "a\nb", "<x>"):
        with pytest.raises(ValueError):
            webview("bm9uY2UxMjM0", bad, "x")
    with pytest.raises(ValueError):
        webview("short", "'self'", "x")


def test_no_python_dict_in_any_cell(report):
    page = render_html(report)
    table = re.search(r'<table id="verdicts">(.*?)</table>', page, re.S).group(1)
    cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)]
    assert len(cells) == 6 * len(report["checks"])
    for cell in cells:
        assert not DICT_LIKE.search(cell), cell
    data_stats = next(c for c in report["checks"] if c["id"] == "data-stats")
    shape = "×".join(map(str, data_stats["measured"]["input"]["shape"]))
    assert f"input: shape {shape}, mean " in describe(data_stats["measured"])


def test_every_chart_plots_what_its_axes_say(report):
    gen = next(c for c in report["checks"] if c["id"] == "generalization")
    (spec,) = chart_specs(gen)
    assert spec["y"]["title"] == "loss" and spec["x"]["title"] == "step"
    train, held = spec["datasets"]
    assert [p["y"] for p in held["data"]] == pytest.approx(gen["series"]["held_out_loss"])
    assert [p["x"] for p in held["data"]] == gen["series"]["held_out_step"]  # steps on x, never on the loss axis
    assert [p["y"] for p in train["data"]] == pytest.approx(gen["series"]["train_loss"])
    lr = next(c for c in report["checks"] if c["id"] == "lr-range")
    (spec,) = chart_specs(lr)
    assert spec["x"]["log"] and spec["x"]["title"] == "learning rate"
    marker = next(d for d in spec["datasets"] if d["label"] == "steepest descent")
    assert marker["data"][0]["x"] == lr["series"]["suggestion"]
    smoothed = [v for v in lr["series"]["smoothed"] if v is not None]
    assert spec["y"]["max"] <= 4 * min(smoothed) * 1.1 + 1e-9  # the blown-up tail does not squash the curve
    page = render_html(report)
    charts = json.loads(re.search(r'id="report-charts">(.*?)</script>', page, re.S).group(1))
    assert len(charts) == page.count("<canvas data-chart=")
    for i, chart in enumerate(charts):
        assert f'<canvas data-chart="{i}"' in page and chart["title"] in html.unescape(page)


def test_model_summary_filters_and_thumbnails_match_the_model(report):
    spec = importlib.util.spec_from_file_location("frozen_stem_cnn", CNN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the model; main() is not run
    model = module.BarNet()
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.stem.parameters())
    got = report["summary"]
    assert (got["model"]["parameters"], got["model"]["frozen"]) == (total, frozen)
    assert got["model"]["trainable"] == total - frozen
    assert [layer["name"] for layer in got["model"]["layers"]] == [n for n, m in model.named_modules()
                                                                   if list(m.parameters(recurse=False))]
    page = html.unescape(render_html(report))
    assert (f"{total:,} parameters in {len(got['model']['layers'])} layers: {total - frozen:,} trainable, "
            f"{frozen:,} frozen.") in page
    filters = got["filters"]
    width, height, channels, _ = decode_png(filters["png"])
    cols = filters["columns"]
    side = 3 * summary.FILTER_SCALE
    assert (filters["layer"], filters["count"], channels) == ("stem", model.stem.out_channels, 3)
    assert (width, height) == (cols * side + cols + 1, filters["rows"] * side + filters["rows"] + 1)
    thumbs = got["thumbnails"]
    width, height, channels, _ = decode_png(thumbs["png"])
    assert (thumbs["count"], channels, thumbs["original_size"]) == (min(16, thumbs["batch"]), 3, [16, 16])
    assert f'<img src="{filters["png"]}"' in page and f'<img src="{thumbs["png"]}"' in page
    assert got["output_layer"] == {"name": "head", "type": "Linear", "out_features": 4}


def test_thumbnails_are_the_batch_s_images_pixel_for_pixel():
    torch.manual_seed(1)
    x = torch.rand(3, 1, 5, 4) * 10 - 5
    thumbs = summary.batch_thumbnails(x)
    width, height, channels, rows = decode_png(thumbs["png"])
    scale = 2  # images up to 16 px are doubled
    assert channels == 1 and thumbs["columns"] == 3
    for k in range(3):
        img = x[k, 0]
        expected = ((img - img.min()) / (img.max() - img.min()) * 255).round()
        left = 1 + k * (4 * scale + 1)
        for r in range(5):
            row = rows[1 + r * scale]
            got = [row[left + c * scale] for c in range(4)]
            assert got == expected[r].tolist()
    assert summary.batch_thumbnails(torch.rand(4, 5, 8, 8)) is None  # 5 channels: not an image
    assert summary.batch_thumbnails(torch.rand(4, 3, 8, 8), batch_dim=1) is None


def test_png_encoder_round_trips_and_refuses_ragged_pixels():
    pixels = [[0, 128, 255, 7, 8, 9], [1, 2, 3, 250, 251, 252]]
    width, height, channels, rows = decode_png(summary.data_uri(summary.png(pixels, 3)))
    assert (width, height, channels) == (2, 2, 3) and [list(r) for r in rows] == pixels
    with pytest.raises(ValueError):
        summary.png([[1, 2, 3], [4, 5]], 1)
    with pytest.raises(ValueError):
        summary.png([[1, 2]], 2)


def test_errors_read_as_error_with_the_traceback_and_front_end_advice():
    report = probe(str(SCRIPTS / "raises_before_backward.py"), timeout=200)
    err = report["error"]
    cli, page = render_html(report), render_report({"report": report, **WEBVIEW})["html"]
    for text in (cli, page):
        assert '<span class="badge error" id="verdict">ERROR</span>' in text
        assert "<h2>ERROR</h2>" in text
        trace = html.unescape(re.search(r'<pre class="traceback">(.*?)</pre>', text, re.S).group(1))
        assert trace == err["traceback"].rstrip()


@pytest.mark.skipif(subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0
                    if Path("/usr/bin/python3").exists() else True, reason="needs a Python without torch")
def test_an_interpreter_without_torch_gets_advice_in_each_front_end_s_words():
    report = probe("--python", "/usr/bin/python3", str(SCRIPTS / "raises_before_backward.py"), timeout=200)
    assert "torch" in report["error"]["message"]
    cli, page = render_html(report), render_report({"report": report, **WEBVIEW})["html"]
    assert "`--python PATH`" in cli and "torchsanity.interpreter" not in cli
    shown = re.sub(r"<script\b.*?</script>", "", page_body(page), flags=re.S)  # what a person reads
    assert "`torchsanity.interpreter` setting" in shown and "--python" not in shown
