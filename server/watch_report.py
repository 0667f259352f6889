"""The report of ``torchsanity watch``, drawn by the renderer of the probe report (:mod:`.report_page`): verdicts,
summary and every curve (loss and validation loss with the verdicts marked, learning rates, gradient norm,
throughput and data wait, per-layer update / weight ratios and gradient norms, dead and saturated units). The CLI
writes it as one self-contained file; the VS Code webview gets the same page, and while the run goes a live page
(``live=True``: the same charts, empty, filled by ``assets/watch.js`` from the server's ``torchsanity/watchUpdate``
notifications, with a Stop button)."""

from __future__ import annotations

import html
import math
import os

from .report_page import ASSETS, Shell, finite, json_for_script, render_page, standalone

MAX_POINTS = 4000  # per curve; longer runs are thinned evenly (the non-finite steps are always kept)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(value) -> float | None:
    """A finite number for a chart, else None (a gap)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _points(xs: list, ys: list) -> list[dict]:
    return [{"x": x, "y": _num(y)} for x, y in zip(xs, ys) if _num(y) is not None]


def _positive(datasets: list[dict]) -> bool:
    ys = [p["y"] for d in datasets for p in d["data"]]
    return bool(ys) and all(y > 0 for y in ys)


def _spec(key: str, title: str, y_title: str, datasets: list[dict], log: bool | None = None) -> dict:
    return {"key": key, "title": title, "type": "line", "x": {"title": "step"},
            "y": {"title": y_title, "log": _positive(datasets) if log is None else log}, "datasets": datasets}


def _thin(report: dict) -> dict:
    """At most MAX_POINTS steps per curve, evenly spaced, keeping every non-finite step."""
    series = report.get("series") or {}
    n = len(series.get("step", []))
    if n <= MAX_POINTS:
        return report
    stride = -(-n // MAX_POINTS)
    keep = [i for i in range(n) if i % stride == 0 or i == n - 1 or isinstance(series["loss"][i], str)
            or isinstance(series["grad_norm"][i], str)]
    thinned = {k: [v[i] for i in keep] if isinstance(v, list) and len(v) == n else v for k, v in series.items()}
    return dict(report, series=thinned)


def chart_specs(report: dict, live: bool = False) -> list[dict]:
    """The charts of a (thinned) report; a live page gets every chart the updates can fill, even empty ones."""
    s = report.get("series") or {}
    steps = s.get("step") or []
    loss = s.get("loss") or []
    marks = [{"x": v["step"], "y": _num(loss[steps.index(v["step"])]) if v.get("step") in steps else None,
              "label": v.get("id")} for v in report.get("verdicts") or []]
    evals = report.get("evals") or []
    loss_sets = [{"label": "training loss", "data": _points(steps, loss)},
                 {"label": "validation loss", "data": _points([e["step"] for e in evals], [e.get("loss") for e in
                                                                                           evals]), "radius": 3},
                 {"label": "verdicts", "data": [m for m in marks if m["y"] is not None], "line": False, "radius": 7,
                  "pointStyle": "triangle", "color": 1}]
    specs = [_spec("loss", "loss (passed to backward) and validation loss", "loss", loss_sets,
                   log=_positive(loss_sets[:2]))]
    lrs = s.get("lr") or []
    groups = max((len(x) for x in lrs), default=0)
    specs.append(_spec("lr", "learning rate", "learning rate",
                       [{"label": f"group {g}", "data": _points(steps, [x[g] if g < len(x) else None for x in lrs])}
                        for g in range(max(groups, 1))]))
    specs.append(_spec("grad_norm", "global gradient norm", "‖grad‖",
                       [{"label": "‖grad‖", "data": _points(steps, s.get("grad_norm") or [])}]))
    specs.append(_spec("throughput", "samples per second", "samples/s",
                       [{"label": "samples/s", "data": _points(steps, s.get("samples_per_second") or [])}], log=False))
    seconds, data = s.get("seconds") or [], s.get("data_seconds") or []
    if live or any(_num(x) is not None for x in data):
        specs.append(_spec("time", "step time and data wait (s)", "seconds",
                           [{"label": "step", "data": _points(steps, seconds)},
                            {"label": "waiting for data", "data": _points(steps, data)}], log=False))
    layers, ndim = report.get("layers") or [], report.get("ndim") or []
    kernels = [i for i, d in enumerate(ndim) if d >= 2]
    samples = report.get("samples") or []
    at = [x["step"] for x in samples]
    for key, title, y_title in (("update_ratio", "update / weight ratio ‖Δw‖/‖w‖ per layer (healthy about 1e-3)",
                                 "‖Δw‖/‖w‖"), ("layer_grad_norm", "gradient norm per layer", "‖grad‖")):
        field = "update_ratio" if key == "update_ratio" else "grad_norm"
        sets = [{"label": layers[k], "data": _points(at, [x[field][k] if k < len(x[field]) else None
                                                          for x in samples]), "radius": 2} for k in kernels]
        if live or any(d["data"] for d in sets):
            specs.append(_spec(key, title, y_title, sets, log=True))
    specs += _activation_specs(report.get("activations") or [])
    return specs


def _activation_specs(activations: list[dict]) -> list[dict]:
    """Dead (ReLU family) and saturated (tanh, sigmoid) fractions per module over the sampled steps."""
    out = []
    for key, field, title in (("dead", "dead", "dead units per layer (never positive over the batch)"),
                              ("saturated", "saturated", "saturated units per layer (tanh, sigmoid)")):
        names: list[str] = []
        for a in activations:
            for m in a.get("modules") or []:
                if m.get(field) is not None and m.get("name") not in names:
                    names.append(m.get("name"))
        sets = []
        for name in names:
            pts = [{"x": a["step"], "y": _num(m.get(field))} for a in activations for m in a.get("modules") or []
                   if m.get("name") == name and _num(m.get(field)) is not None]
            label = next((f"{name} ({m.get('type')})" for a in activations for m in a.get("modules") or []
                          if m.get("name") == name), name)
            sets.append({"label": label, "data": pts, "radius": 2})
        if sets:
            spec = _spec(key, title, "fraction", sets, log=False)
            spec["y"].update(min=0, max=1)
            out.append(spec)
    return out


def _meta(report: dict) -> list[str]:
    s = report.get("summary") or {}
    meta = [f"{report.get('steps', 0)} optimizer steps ({report.get('stopped')})",
            f"optimizer: {report.get('optimizer') or '?'}", f"per-layer statistics every {report.get('every')} steps"]
    if report.get("device"):
        meta.append(f"device: {report['device']}")
    if s.get("first_loss") is not None:
        meta.append(f"loss {s['first_loss']:.4g} → {s['last_loss']:.4g} (best {s['best_loss']:.4g} at step "
                    f"{s['best_step']})")
    return meta


def _rows(verdicts: list[dict]) -> str:
    return "".join(
        f'<tr><td class="num">{_e(v.get("step"))}</td><td class="fail">{_e(v.get("id"))}</td>'
        f'<td>{_e(v.get("message"))}</td><td>{_e(v.get("advice"))}</td><td>{_e(v.get("criterion"))}</td></tr>'
        for v in verdicts)


def render_html(report: dict, shell: Shell | None = None, live: bool = False) -> str:
    """The report as one HTML page (``shell``: where it is shown; default a self-contained file for the CLI).
    ``live``: the page of a run that is still going — empty charts, a status line, a Stop button."""
    shell = shell or standalone()
    report = _thin(report)
    name = os.path.basename(str(report.get("script") or "script"))
    charts = chart_specs(report, live)
    verdicts = report.get("verdicts") or []
    figures = "".join(
        f'<figure id="chart-{spec["key"]}"><figcaption>{_e(spec["title"])}</figcaption><div class="canvas-box">'
        f'<canvas data-chart="{i}" role="img" aria-label="{_e(spec["title"])}"></canvas></div></figure>'
        for i, spec in enumerate(charts))
    status = (f"running {_e(name)}…" if live else " · ".join(_meta(report)))
    empty = "" if verdicts else '<p id="no-verdicts">No verdicts' + (" yet." if live else ": the run looks healthy.") \
        + "</p>"
    table = (f'<table id="watch-verdicts"{"" if verdicts else " hidden"}><thead><tr><th>step</th>'
             f"<th>verdict</th><th>evidence</th><th>what to do</th><th>criterion</th></tr></thead><tbody>"
             f"{_rows(verdicts)}</tbody></table>") if verdicts or live else ""
    err = report.get("error")
    err_html = ""
    if err:
        text = f"{err.get('type')}: {err.get('message')}\n{err.get('traceback') or ''}"
        err_html = f'<section class="error"><h2>Error</h2><pre>{_e(text.rstrip())}</pre></section>'
    buttons = ('<button type="button" data-action="stop" id="stop">Stop</button> ' if live else
               '<button type="button" data-action="rerun">Watch again</button> ')
    live_script = ""
    if live:
        live_script = f'<script nonce="{_e(shell.nonce)}">{(ASSETS / "watch.js").read_text(encoding="utf-8")}</script>'
    body = f"""<header><h1>torchsanity watch: <span class="script" title="{_e(report.get('script') or '')}">{_e(name)}</span>
<span class="badge {'skip' if live else ('error' if err else ('fail' if verdicts else 'pass'))}" id="verdict">{
        'RUNNING' if live else ('ERROR' if err else (f'{len(verdicts)} VERDICT(S)' if verdicts else 'HEALTHY'))}</span></h1>
<p class="meta" id="watch-status">{_e(status)}</p>
<p class="vscode-only">{buttons}<button type="button" data-action="reveal" data-line="1">Open script</button></p></header>
{err_html}
<h2>Verdicts</h2>{empty}{table}
<h2>Charts</h2><section class="charts" id="charts">{figures}</section>
<script type="application/json" id="watch-data">{json_for_script(finite(report))}</script>
{live_script}"""
    return render_page(f"torchsanity watch — {name}", body, charts, shell)
