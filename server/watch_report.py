"""The HTML report of ``torchsanity watch``: one self-contained file — verdicts, summary and curves (loss,
learning rate, gradient norm, per-layer update / weight ratio) drawn by the Chart.js bundled with the probe
report (no network at view time)."""

from __future__ import annotations

import html
import json
import os

from .probe_report import ASSETS

MAX_POINTS = 4000  # per curve; longer runs are thinned evenly (the non-finite steps are always kept)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px} .meta{color:#5b6475;margin-bottom:16px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:20px}
th,td{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f7;font-weight:600} .id{font-weight:700;color:#cf222e;white-space:nowrap}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
.card{background:#fff;border:1px solid #e3e6ec;border-radius:6px;padding:12px} .card h3{font-size:14px;margin:0 0 8px}
pre{background:#0d1117;color:#e6edf3;padding:12px;border-radius:6px;overflow:auto}
"""

_JS = r"""
(function(){
const r = JSON.parse(document.getElementById('watch-data').textContent);
const num = v => (typeof v === 'number') ? v : null;
const charts = document.getElementById('charts');
function chart(title, datasets, logY, extra){
  const d = document.createElement('div'); d.className = 'card';
  const h = document.createElement('h3'); h.textContent = title; d.appendChild(h);
  const cv = document.createElement('canvas'); d.appendChild(cv); charts.appendChild(d);
  new Chart(cv, {type:'line', data:{datasets}, options:Object.assign({animation:false, responsive:true, parsing:false,
    normalized:true, plugins:{legend:{display:datasets.length > 1}},
    scales:{x:{type:'linear', title:{display:true, text:'step'}}, y:{type: logY ? 'logarithmic' : 'linear'}}}, extra||{})});
}
const pts = (xs, ys) => xs.map((x, i) => ({x, y: num(ys[i])}));
const positive = ys => ys.every(v => typeof v !== 'number' || v > 0);
const s = r.series, colors = ['#0969da','#cf222e','#1a7f37','#8250df','#b08800','#57606a','#bf3989','#0550ae'];
const line = (label, data, i) => ({label, data, borderColor: colors[i % colors.length], pointRadius: 0, borderWidth: 1.5});
const marks = (r.verdicts||[]).map(v => ({x: v.step, y: null, label: v.id}));
if (s.step.length) {
  const loss = [line('loss', pts(s.step, s.loss), 0)];
  const at = new Map(s.step.map((x, i) => [x, num(s.loss[i])]));
  if (marks.length) loss.push({label:'verdicts', data: marks.map(m => ({x: m.x, y: at.get(m.x)})), showLine:false,
      pointRadius:6, pointStyle:'triangle', borderColor:'#cf222e', backgroundColor:'#cf222e'});
  chart('loss (passed to backward)', loss, positive(s.loss));
  const groups = s.lr.length ? s.lr[0].length : 0;
  const lrs = s.lr.map(l => l[0]);
  chart('learning rate', Array.from({length: groups}, (_, g) => line('group ' + g, pts(s.step, s.lr.map(l => l[g])), g)),
        positive(lrs) && lrs.some(v => typeof v === 'number'));
  // null: not taken that step (a stride on small models) — joined over; a non-finite norm is a string, left out
  const taken = s.step.map((x, i) => ({x, y: s.grad_norm[i]})).filter(p => p.y !== null).map(p => ({x: p.x, y: num(p.y)}));
  chart('global gradient norm', [line('‖grad‖', taken, 2)], positive(s.grad_norm));
  if (s.seconds.some(v => typeof v === 'number')) chart('step time (s)', [line('seconds', pts(s.step, s.seconds), 5)], false);
}
const kernels = (r.layers||[]).map((n, i) => i).filter(i => r.ndim[i] >= 2);
if ((r.samples||[]).length && kernels.length) {
  const steps = r.samples.map(x => x.step);
  const ds = kernels.map((k, j) => line(r.layers[k], pts(steps, r.samples.map(x => x.update_ratio[k])), j));
  ds.forEach(d => d.pointRadius = 2);
  chart('update / weight ratio ‖Δw‖/‖w‖ per layer (healthy about 1e-3; verdicts outside 1e-4…1e-1)', ds, true);
  const gs = kernels.map((k, j) => line(r.layers[k], pts(steps, r.samples.map(x => x.grad_norm[k])), j));
  gs.forEach(d => d.pointRadius = 2);
  chart('gradient norm per layer', gs, true);
}
})();
"""


def _thin(report: dict) -> dict:
    """At most MAX_POINTS steps per curve, evenly spaced, keeping every non-finite step."""
    series = report.get("series") or {}
    n = len(series.get("step", []))
    if n <= MAX_POINTS:
        return report
    stride = -(-n // MAX_POINTS)
    keep = [i for i in range(n) if i % stride == 0 or i == n - 1 or isinstance(series["loss"][i], str)
            or isinstance(series["grad_norm"][i], str)]
    thinned = {k: [v[i] for i in keep] for k, v in series.items()}
    return dict(report, series=thinned)


def render_html(report: dict) -> str:
    """One self-contained page: verdicts with their advice, the summary, and every curve."""
    chartjs = (ASSETS / "chart.umd.min.js").read_text(encoding="utf-8")
    data = json.dumps(_thin(report)).replace("</", "<\\/").replace("<!--", "<\\!--")
    title = html.escape(os.path.basename(str(report.get("script"))))
    s = report.get("summary") or {}
    meta = [f"{report.get('steps', 0)} optimizer steps ({report.get('stopped')})",
            f"optimizer: {report.get('optimizer') or '?'}", f"per-layer statistics every {report.get('every')} steps"]
    if s.get("first_loss") is not None:
        meta.append(f"loss {s['first_loss']:.4g} → {s['last_loss']:.4g} (best {s['best_loss']:.4g} at step "
                    f"{s['best_step']})")
    rows = "".join(
        f"<tr><td>{v['step']}</td><td class=\"id\">{html.escape(v['id'])}</td><td>{html.escape(v['message'])}</td>"
        f"<td>{html.escape(v['advice'])}</td><td>{html.escape(v['criterion'])}</td></tr>"
        for v in report.get("verdicts", []))
    table = (f"<table><thead><tr><th>step</th><th>verdict</th><th>evidence</th><th>what to do</th><th>criterion</th>"
             f"</tr></thead><tbody>{rows}</tbody></table>") if rows else "<p>No verdicts: the run looks healthy.</p>"
    err = report.get("error")
    err_html = ""
    if err:
        text = f"{err.get('type')}: {err.get('message')}\n{err.get('traceback') or ''}"
        err_html = f"<h2>Error</h2><pre>{html.escape(text.rstrip())}</pre>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>torchsanity watch — {title}</title>
<style>{_CSS}</style>
<script>{chartjs}</script>
</head><body>
<h1>torchsanity watch — {title}</h1>
<div class="meta">{html.escape(" · ".join(meta))}</div>
{err_html}
{table}
<div class="charts" id="charts"></div>
<script type="application/json" id="watch-data">{data}</script>
<script>{_JS}</script>
</body></html>
"""
