"""Render a probe report (the JSON of ``probe_runner``) as plain text, a rich table, or one self-contained HTML
file whose charts are drawn by the bundled Chart.js (no network at view time)."""

from __future__ import annotations

import html
import os
import re
from typing import Any

from ..probes.report import STATUSES, describe
from .probe_charts import chart_specs
from .report_page import Shell, finite, json_for_script, render_page, standalone

STATUS_STYLE = dict(zip(STATUSES, ("green", "yellow", "bold red", "dim", "magenta")))


def short(value: Any, limit: int = 60) -> str:
    """A compact one-line rendering of a measured / expected value."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if isinstance(v, dict) and v:  # one level down: data-stats' input / target / labels
                parts.append(f"{k}({short({a: b for a, b in v.items() if a != 'shape'}, limit)})")
            elif not isinstance(v, (dict, list)) and v is not None:
                parts.append(f"{k}={short(v)}")
        text = ", ".join(parts)
    elif isinstance(value, list):
        text = "[" + ", ".join(short(v) for v in value[:4]) + (", …]" if len(value) > 4 else "]")
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def where(check: dict) -> str:
    if check.get("line") is None:
        return ""
    path = check.get("path")
    return f"{os.path.basename(path)}:{check['line']}" if path else f"line {check['line']}"


def error_text(report: dict) -> str:
    err = report.get("error")
    if not err:
        return ""
    lines = []
    if err.get("source") == "script":
        lines.append(f"The script raised {err.get('type')}: {err.get('message')}")
    else:
        lines.append(f"{err.get('type')}: {err.get('message')}")
    if report.get("oom") or err.get("oom"):
        lines.append("Out of memory: lower the batch size or the model size for the probe.")
    if err.get("traceback"):
        lines.append(err["traceback"].rstrip())
    if err.get("output", "").strip():
        lines.append("The script's output (last lines):")
        lines.extend("  | " + line for line in err["output"].rstrip().splitlines())
    return "\n".join(lines)


def notes(report: dict) -> list[str]:
    """What the harness changed or chose (learning rate, copies, which step), and the checks that did not run."""
    out = list(report.get("notes") or [])
    not_run = report.get("not_run")
    if not_run and not_run.get("checks"):
        out.append(f"not run: {', '.join(not_run['checks'])} — {not_run.get('reason', '')}")
    return out


def render_text(report: dict) -> str:
    """Plain text: one block per check, then any error with its traceback."""
    out = [f"torchsanity probe: {report.get('script')}  (device: {report.get('device') or '?'})"]
    out.extend(f"  note: {n}" for n in notes(report))
    for c in report.get("checks", []):
        loc = where(c)
        out.append(f"  {c['status'].upper():5}  {c['id']:<19} {c['message']}" + (f"  [{loc}]" if loc else ""))
        if c["status"] in ("fail", "warn"):
            out.append(f"         measured: {short(c.get('measured'), 100)}; expected: {short(c.get('expected'), 60)}")
    err = error_text(report)
    if err:
        out.append("")
        out.append(err)
    out.append(verdict_line(report))
    return "\n".join(out) + "\n"


def verdict_line(report: dict) -> str:
    counts: dict[str, int] = {}
    for c in report.get("checks", []):
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no checks ran"
    missing = len((report.get("not_run") or {}).get("checks") or [])
    if missing and counts:
        summary += f", {missing} not run"
    if report.get("timed_out"):
        head = "TIMED OUT"
    elif report.get("cancelled"):
        head = "CANCELLED"
    elif report.get("error"):
        head = "ERROR"
    elif counts.get("fail"):
        head = "FAIL"
    elif counts.get("error"):
        head = "ERROR"  # a check that could not run is never "OK"
    else:
        head = "OK"
    return f"{head}: {summary}"


def rich_table(report: dict, width: int = 160):
    """The verdict table for the terminal (measured / expected columns only where there is room)."""
    from rich.table import Table

    wide = width >= 140
    table = Table(title=f"torchsanity probe — {os.path.basename(str(report.get('script')))}", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    if wide:
        table.add_column("measured", overflow="fold", max_width=34)
        table.add_column("expected", overflow="fold", max_width=24)
    table.add_column("explanation", overflow="fold")
    table.add_column("where", no_wrap=True)
    for c in report.get("checks", []):
        style = STATUS_STYLE.get(c["status"], "")
        cells = [c["id"], f"[{style}]{c['status']}[/]"]
        if wide:
            cells += [short(c.get("measured")), short(c.get("expected"))]
        cells += [c.get("message", ""), where(c)]
        table.add_row(*cells)
    return table


# -- HTML (one renderer for the CLI's file and the VS Code webview: see report_page) ------------------------
def render_html(report: dict, shell: Shell | None = None) -> str:
    """The report as one HTML page: verdict, notes, error, verdict table, model summary, images and charts.
    ``shell`` says where it is shown (default: a self-contained file for the CLI)."""
    shell = shell or standalone()
    name = os.path.basename(str(report.get("script") or "script"))
    charts: list[dict] = []
    figures = []
    for check in report.get("checks", []):
        for spec in chart_specs(check):
            figures.append(f'<figure id="chart-{len(charts)}"><figcaption>{_e(spec["title"])} '
                           f'{_badge(spec["status"])}</figcaption><div class="canvas-box"><canvas '
                           f'data-chart="{len(charts)}" role="img" aria-label="{_e(spec["title"])}"></canvas></div>'
                           "</figure>")
            charts.append(spec)
    parts = [
        f'<header><h1>Sanity probe: <span class="script" title="{_e(report.get("script") or "")}">{_e(name)}</span> '
        f'<span class="badge {_e(overall(report).lower().split()[0])}" id="verdict">{_e(overall(report))}</span></h1>',
        f'<p class="meta">{_e(" · ".join(_meta(report)))}</p>',
        f'<p class="meta" id="summary-line">{_e(verdict_line(report))}</p>',
        '<p class="vscode-only"><button type="button" data-action="rerun">Run again</button> '
        '<button type="button" data-action="reveal" data-line="1">Open script</button></p></header>',
    ]
    if notes(report):
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(front_end_words(n, shell.frontend))}</li>"
                                                    for n in notes(report)) + "</ul>")
    parts.append(_error_html(report, shell.frontend))
    parts.append(_table(report, shell.frontend))
    parts.append(_summary_html(report.get("summary")))
    if figures:
        parts.append('<h2>Charts</h2><section class="charts" id="charts">' + "".join(figures) + "</section>")
    # the report itself, for whoever reads the page with a program
    parts.append(f'<script type="application/json" id="report-data">{json_for_script(finite(report))}</script>')
    return render_page(f"torchsanity probe — {name}", "\n".join(p for p in parts if p), charts, shell)


def overall(report: dict) -> str:
    """The one-word verdict of the header: the worst check status, or what stopped the probe."""
    if report.get("timed_out"):
        return "TIMED OUT"
    if report.get("cancelled"):
        return "CANCELLED"
    statuses = [c["status"] for c in report.get("checks", [])]
    if report.get("error") or "error" in statuses or not statuses:
        return "ERROR"
    return next(s for s in ("fail", "warn", "pass", "skip") if s in statuses or s == "skip").upper()


def advice(report: dict, frontend: str) -> list[str]:
    """What to do about the probe's error, in the words of the front end (a setting in VS Code, a flag on the
    command line)."""
    err = report.get("error") or {}
    vscode = frontend == "vscode"
    text = " ".join(str(err.get(k) or "") for k in ("type", "message", "output", "traceback"))
    out = []
    if "No module named" in text or err.get("type") in ("ModuleNotFoundError", "ImportError", "ChildFailed"):
        where = ("the `torchsanity.interpreter` setting (or the Python extension's interpreter)" if vscode
                 else "`--python PATH`")
        out.append(f"Run the probe with the Python environment the script trains in: choose it with {where}.")
    if report.get("timed_out") or err.get("type") == "Timeout":
        out.append("Give the probe more time with " + ("the `torchsanity.probe.timeout` setting" if vscode
                                                       else "`--timeout SECONDS`") + ", or fewer checks.")
    if err.get("type") == "ScriptExited":
        out.append("Pass the script's arguments with " + ("the `torchsanity.probe.args` setting" if vscode
                                                          else "the command line after `--`") + ".")
    if report.get("oom") or err.get("oom"):
        out.append("Lower the batch size or the model size for the probe" + (
            ", or set `torchsanity.probe.device` to cpu." if vscode else ", or run with `--device cpu`."))
    return out


# The command line's flags as VS Code users set them (flags without a setting are left as they are).
_VSCODE_WORDS = [
    (re.compile(r"pass (it|them) after --(?=[;,. ]|$)"), r"put \1 in the `torchsanity.probe.args` setting"),
    (re.compile(r"--(step|batch-dim|device) (\w+)"),
     lambda m: f"`torchsanity.probe.{_SETTING[m.group(1)]}` = {m.group(2)}"),
    (re.compile(r"--(python|timeout|step|batch-dim|allow-mixing|device|check-budget)\b(?!-)(?: [A-Z]{2,}\b)?"),
     lambda m: f"the `torchsanity.{'interpreter' if m.group(1) == 'python' else 'probe.' + _SETTING[m.group(1)]}` "
               "setting"),
]
_SETTING = {"timeout": "timeout", "step": "step", "batch-dim": "batchDim", "allow-mixing": "allowMixing",
            "device": "device", "check-budget": "checkBudget"}


def front_end_words(text: str, frontend: str) -> str:
    """The harness's messages name command-line flags; in VS Code they name the settings that do the same."""
    if frontend != "vscode":
        return text
    for pattern, replacement in _VSCODE_WORDS:
        text = pattern.sub(replacement, text)
    return text


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def _meta(report: dict) -> list[str]:
    meta = [f"device {report.get('device') or '?'}"]
    loss = report.get("loss") or {}
    if loss.get("kind"):
        meta.append(f"loss {loss['kind']}" + (f" over {loss['classes']} classes" if loss.get("classes") else ""))
    if report.get("model"):
        meta.append(f"model {report['model']}")
    batch = report.get("batch") or {}
    if batch.get("size"):
        meta.append(f"batch of {batch['size']} from {batch.get('source') or '?'}")
    if isinstance(report.get("duration"), (int, float)):
        meta.append(f"{report['duration']:.1f} s")
    return meta


def _error_html(report: dict, frontend: str) -> str:
    err = report.get("error")
    if not err:
        return ""
    who = {"script": "The script raised", "entry": "The --entry function raised"}.get(err.get("source"), "The probe failed:")
    out = [f'<section class="error" id="error"><h2>ERROR</h2><p>{_e(who)} <b>{_e(err.get("type"))}</b>: '
           f'{_e(front_end_words(str(err.get("message")), frontend))}</p>']
    out.extend(f"<p>{_e(line)}</p>" for line in advice(report, frontend))
    if err.get("traceback"):
        out.append(f'<pre class="traceback">{_e(err["traceback"].rstrip())}</pre>')
    if str(err.get("output") or "").strip():
        out.append(f'<p>The script\'s output (last lines):</p><pre>{_e(err["output"].rstrip())}</pre>')
    return "".join(out) + "</section>"


def _table(report: dict, frontend: str) -> str:
    rows = []
    for c in report.get("checks", []):
        line = c.get("line")
        loc = where(c)
        cell = (f'<a href="#" data-line="{int(line)}" title="Go to {_e(loc)}">{_e(loc)}</a>'
                if isinstance(line, int) and not c.get("path") else _e(loc or "—"))
        tb = (c.get("details") or {}).get("traceback")
        trace = f'<details><summary>traceback</summary><pre>{_e(tb.rstrip())}</pre></details>' if tb else ""
        rows.append(f'<tr class="row-{_e(c["status"])}"><td data-label="check">{_e(c["id"])}</td>'
                    f'<td data-label="verdict">{_badge(c["status"])}</td>'
                    f'<td data-label="measured">{_e(describe(c.get("measured")))}</td>'
                    f'<td data-label="expected">{_e(describe(c.get("expected")))}</td>'
                    f'<td data-label="why">{_e(front_end_words(c.get("message", ""), frontend))}{trace}</td>'
                    f'<td data-label="where" class="num">{cell}</td></tr>')
    body = "".join(rows) or '<tr><td colspan="6">No checks ran.</td></tr>'
    return ('<table id="verdicts"><thead><tr><th>check</th><th>verdict</th><th>measured</th><th>expected</th>'
            f"<th>why</th><th>where</th></tr></thead><tbody>{body}</tbody></table>")


def _summary_html(summary: dict | None) -> str:
    if not summary:
        return ""
    out = []
    model = summary.get("model") or {}
    if model:
        frozen = f", {model['frozen']:,} frozen" if model.get("frozen") else ", none frozen"
        rows = "".join(f'<tr><td>{_e(layer["name"])}</td><td>{_e(layer["type"])}</td>'
                       f'<td class="num">{layer["parameters"]:,}</td><td class="num">{_trainable(layer)}</td></tr>'
                       for layer in model.get("layers") or [])
        more = f'<p class="meta">… and {model["more_layers"]} more layers</p>' if model.get("more_layers") else ""
        out.append(f'<h2>Model</h2><p id="model-summary">{model.get("parameters", 0):,} parameters in '
                   f'{len(model.get("layers") or []) + (model.get("more_layers") or 0)} layers: '
                   f'{model.get("trainable", 0):,} trainable{frozen}.</p>'
                   '<details><summary>layers</summary><table class="layers"><thead><tr><th>layer</th><th>type</th>'
                   f'<th>parameters</th><th>trainable</th></tr></thead><tbody>{rows}</tbody></table>{more}</details>')
    images = []
    filters = summary.get("filters")
    if filters:
        shown = f"{filters['count']} of {filters['total']}" if filters["count"] < filters["total"] else filters["count"]
        images.append(_image(filters["png"], f"First-layer filters ({filters['layer']}: {shown} filters, "
                             f"{'×'.join(map(str, filters['kernel']))}, at initialisation)", "filters"))
    thumbs = summary.get("thumbnails")
    if thumbs:
        images.append(_image(thumbs["png"], f"The batch: first {thumbs['count']} of {thumbs['batch']} images "
                             f"({'×'.join(map(str, thumbs['original_size']))})", "thumbnails"))
    if images:
        out.append('<section class="images">' + "".join(images) + "</section>")
    return "".join(out)


def _image(uri: str, caption: str, ident: str) -> str:
    if not str(uri).startswith("data:image/png;base64,"):
        return ""  # only the PNGs the probe made: nothing is fetched at view time
    return (f'<figure id="{ident}"><figcaption>{_e(caption)}</figcaption><img src="{_e(uri)}" alt="{_e(caption)}">'
            "</figure>")


def _trainable(layer: dict) -> str:
    return "all" if layer["trainable"] == layer["parameters"] else "none" if not layer["trainable"] else \
        f"{layer['trainable']:,}"
