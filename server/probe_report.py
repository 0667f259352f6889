"""Render a probe report (the JSON of ``probe_runner``) as plain text, a rich table, or one self-contained HTML
file whose charts are drawn by the bundled Chart.js (no network at view time)."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from ..probes.report import STATUSES

ASSETS = Path(__file__).resolve().parent / "assets"
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
            if isinstance(v, (dict, list)) or v is None:
                continue
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


# -- HTML -------------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px} .meta{color:#5b6475;margin-bottom:16px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:20px}
th,td{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f7;font-weight:600}
.status{font-weight:700;text-transform:uppercase;font-size:12px}
.pass{color:#1a7f37}.warn{color:#b08800}.fail{color:#cf222e}.skip{color:#6e7781}.error{color:#8250df}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:16px}
.card{background:#fff;border:1px solid #e3e6ec;border-radius:6px;padding:12px}
.card h3{font-size:14px;margin:0 0 8px}
pre{background:#0d1117;color:#e6edf3;padding:12px;border-radius:6px;overflow:auto}
.thumbs canvas{margin:2px;image-rendering:pixelated;width:64px;height:64px}
"""

_JS = r"""
(function(){
const report = JSON.parse(document.getElementById('report-data').textContent);
const byId = {}; (report.checks||[]).forEach(c => byId[c.id] = c);
const esc = s => String(s === null || s === undefined ? '—' : s);
const fmt = v => {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (Array.isArray(v)) return '[' + v.slice(0,4).map(fmt).join(', ') + (v.length>4?', …':'') + ']';
  if (typeof v === 'object') return Object.entries(v).filter(([k,x]) => x !== null && typeof x !== 'object')
      .map(([k,x]) => k + '=' + fmt(x)).join(', ');
  return String(v);
};
const tbody = document.getElementById('checks');
(report.checks||[]).forEach(c => {
  const tr = document.createElement('tr');
  const cells = [c.id, c.status, fmt(c.measured), fmt(c.expected), c.message,
                 c.line === null || c.line === undefined ? '' : (c.path ? c.path.split('/').pop() + ':' : 'line ') + c.line];
  cells.forEach((text, i) => { const td = document.createElement('td'); td.textContent = esc(text);
    if (i === 1) td.className = 'status ' + c.status; tr.appendChild(td); });
  tbody.appendChild(tr);
});
const charts = document.getElementById('charts');
function card(title){ const d = document.createElement('div'); d.className='card';
  const h = document.createElement('h3'); h.textContent = title; d.appendChild(h); charts.appendChild(d); return d; }
function chart(title, config){ const d = card(title); const cv = document.createElement('canvas'); d.appendChild(cv);
  config.options = Object.assign({animation:false, responsive:true, plugins:{legend:{display:true}}}, config.options||{});
  new Chart(cv, config); }
const idx = n => Array.from({length:n}, (_, i) => i + 1);
const ys = v => (typeof v === 'number') ? v : null;
const ov = byId['overfit-batch'];
if (ov && ov.series && ov.series.loss) chart('overfit-batch: loss on one batch', {type:'line',
  data:{labels: idx(ov.series.loss.length), datasets:[{label:'loss', data: ov.series.loss.map(ys), borderColor:'#0969da', pointRadius:0}]},
  options:{scales:{x:{title:{display:true,text:'step'}}, y:{type:'logarithmic', title:{display:true,text:'loss'}}}}});
const ii = byId['input-independence'];
if (ii && ii.series && ii.series.real) chart('input-independence: real vs zeroed inputs', {type:'line',
  data:{labels: idx(Math.max(ii.series.real.length, ii.series.zeros.length)), datasets:[
    {label:'real inputs', data: ii.series.real.map(ys), borderColor:'#1a7f37', pointRadius:0},
    {label:'zeroed inputs', data: ii.series.zeros.map(ys), borderColor:'#cf222e', pointRadius:0}]},
  options:{scales:{x:{title:{display:true,text:'step'}}}}});
const lr = byId['lr-range'];
if (lr && lr.series && lr.series.lr) {
  const pts = lr.series.lr.map((x, i) => ({x, y: ys(lr.series.smoothed[i])}));
  const raw = lr.series.lr.map((x, i) => ({x, y: ys(lr.series.loss[i])}));
  const ds = [{label:'smoothed loss', data: pts, borderColor:'#0969da', pointRadius:0, showLine:true},
              {label:'loss', data: raw, borderColor:'#9aa4b2', pointRadius:1, showLine:false}];
  if (lr.series.suggestion) ds.push({label:'steepest descent', data:[{x:lr.series.suggestion, y: Math.min(...pts.map(p=>p.y).filter(v=>v!==null))}],
      borderColor:'#1a7f37', backgroundColor:'#1a7f37', pointRadius:6, showLine:false});
  if (lr.series.configured) ds.push({label:'configured LR', data:[{x:lr.series.configured, y: pts[0] && pts[0].y}],
      borderColor:'#cf222e', backgroundColor:'#cf222e', pointRadius:6, pointStyle:'triangle', showLine:false});
  const finite = pts.map(p => p.y).filter(v => v !== null && isFinite(v));
  const cap = finite.length ? 2 * finite[0] : undefined;
  chart('lr-range: learning-rate sweep', {type:'scatter', data:{datasets: ds},
    options:{scales:{x:{type:'logarithmic', title:{display:true,text:'learning rate'},
                        ticks:{callback: v => { const e = Math.log10(v); return Math.abs(e - Math.round(e)) < 1e-6 ? '1e' + Math.round(e) : ''; }}},
                     y:{max: cap, title:{display:true,text:'loss'}}}}});
}
const gf = byId['gradient-flow'];
if (gf && gf.series && gf.series.layers && gf.series.layers.length) {
  chart('gradient-flow: gradient norm per parameter', {type:'bar', data:{labels: gf.series.layers,
    datasets:[{label:'‖grad‖', data: gf.series.grad_norm.map(ys), backgroundColor:'#0969da'}]},
    options:{scales:{y:{type:'logarithmic'}}}});
  if (gf.series.update_ratio && gf.series.update_ratio.length) chart('gradient-flow: update / weight ratio (healthy ≈ 1e-3)',
    {type:'bar', data:{labels: gf.series.layers, datasets:[{label:'‖Δw‖/‖w‖', data: gf.series.update_ratio.map(ys), backgroundColor:'#8250df'}]},
     options:{scales:{y:{type:'logarithmic'}}}});
  if (gf.series.relu && gf.series.relu.length) chart('gradient-flow: dead ReLU fraction (fail ≥ 70%)',
    {type:'bar', data:{labels: gf.series.relu, datasets:[{label:'never active', data: gf.series.relu_dead_fraction, backgroundColor:'#cf222e'}]},
     options:{scales:{y:{min:0, max:1}}}});
}
const bi = byId['batch-independence'];
if (bi && bi.series && bi.series.grad_per_sample) chart('batch-independence: gradient at each sample (probed: ' + bi.series.probed_sample + ')',
  {type:'bar', data:{labels: idx(bi.series.grad_per_sample.length).map(i => 'sample ' + (i-1)),
   datasets:[{label:'max |∂out/∂input|', data: bi.series.grad_per_sample, backgroundColor:'#b08800'}]}});
const de = byId['determinism'];
if (de && de.series && de.series.first_loss) chart('determinism: first loss in two fresh runs', {type:'bar',
  data:{labels: de.series.runs, datasets:[{label:'first loss', data: de.series.first_loss.map(ys), backgroundColor:'#57606a'}]}});
const ds = byId['data-stats'];
if (ds && ds.series) {
  if (ds.series.label_histogram) chart('data-stats: labels in the batch', {type:'bar',
    data:{labels: ds.series.label_histogram.map((_, i) => String(i)), datasets:[{label:'count', data: ds.series.label_histogram, backgroundColor:'#0969da'}]}});
  const key = Object.keys(ds.series).find(k => k.endsWith('_channel_mean'));
  if (key) { const base = key.slice(0, -5);
    chart('data-stats: per-channel mean ± std, min, max', {type:'line', data:{labels: ds.series[key].map((_, i) => String(i)), datasets:[
      {label:'mean', data: ds.series[key], borderColor:'#0969da'},
      {label:'std', data: ds.series[base + '_std'] || [], borderColor:'#8250df'},
      {label:'min', data: ds.series[base + '_min'] || [], borderColor:'#9aa4b2'},
      {label:'max', data: ds.series[base + '_max'] || [], borderColor:'#57606a'}]}}); }
  const th = ds.series.thumbnails;
  if (th && th.shape) { const d = card('data-stats: first images of the batch'); d.classList.add('thumbs');
    const [n, c, h, w] = th.shape;
    for (let k = 0; k < n; k++) { const cv = document.createElement('canvas'); cv.width = w; cv.height = h;
      const ctx = cv.getContext('2d'); const img = ctx.createImageData(w, h);
      for (let p = 0; p < h * w; p++) { for (let ch = 0; ch < 3; ch++) {
          const v = th.data[k * c * h * w + (c === 3 ? ch : 0) * h * w + p]; img.data[p * 4 + ch] = v; }
        img.data[p * 4 + 3] = 255; }
      ctx.putImageData(img, 0, 0); d.appendChild(cv); } }
}
})();
"""


def render_html(report: dict) -> str:
    """One self-contained HTML page: the verdict table and the series drawn with the bundled Chart.js."""
    chartjs = (ASSETS / "chart.umd.min.js").read_text(encoding="utf-8")
    data = json.dumps(report, default=str).replace("</", "<\\/").replace("<!--", "<\\!--")
    err = error_text(report)
    title = html.escape(os.path.basename(str(report.get("script"))))
    meta = [f"device: {report.get('device') or '?'}"]
    if report.get("loss"):
        loss = report["loss"]
        meta.append(f"loss: {loss.get('kind')}" + (f" over {loss['classes']} classes" if loss.get("classes") else ""))
    if report.get("model"):
        meta.append(f"model: {report['model']} ({report.get('parameters', '?')} parameters)")
    if report.get("batch"):
        meta.append(f"batch: {report['batch'].get('size')} from {report['batch'].get('source')}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>torchsanity probe — {title}</title>
<style>{_CSS}</style>
<script>{chartjs}</script>
</head><body>
<h1>torchsanity probe — {title}</h1>
<div class="meta">{html.escape(" · ".join(meta))}<br>{html.escape(verdict_line(report))}</div>
{"".join(f'<div class="meta">{html.escape(n)}</div>' for n in notes(report))}
{f'<h2>Error</h2><pre>{html.escape(err)}</pre>' if err else ''}
<table><thead><tr><th>check</th><th>status</th><th>measured</th><th>expected</th><th>explanation</th><th>where</th></tr>
</thead><tbody id="checks"></tbody></table>
<div class="charts" id="charts"></div>
<script type="application/json" id="report-data">{data}</script>
<script>{_JS}</script>
</body></html>
"""
