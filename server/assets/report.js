// torchsanity reports: draws the page's chart specs (JSON in #report-charts) with Chart.js and, in the VS Code
// webview, turns line links and buttons into messages to the extension. The same script in both front ends.
(function () {
  "use strict";
  const vscode = typeof acquireVsCodeApi === "function" ? acquireVsCodeApi() : undefined;
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("[data-line],[data-action]") : null;
    if (!target || !vscode) return;
    event.preventDefault();
    const action = target.getAttribute("data-action");
    if (action) vscode.postMessage({ type: action, line: Number(target.getAttribute("data-line") || 1) });
    else vscode.postMessage({ type: "reveal", line: Number(target.getAttribute("data-line")) });
  });
  const specs = JSON.parse(document.getElementById("report-charts").textContent || "[]");
  const style = getComputedStyle(document.body);
  const color = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const palette = [color("--link", "#0969da"), color("--fail", "#cf222e"), color("--pass", "#1a7f37"),
                   color("--error", "#8250df"), color("--warn", "#b08800"), color("--skip", "#6e7781")];
  if (typeof Chart === "function") {
    Chart.defaults.color = style.color;
    Chart.defaults.borderColor = color("--line", "#e3e6ec");
    Chart.defaults.font.family = style.fontFamily;
  }
  function axis(a) {
    const out = { type: a.log ? "logarithmic" : a.labels ? "category" : "linear", title: { display: !!a.title, text: a.title } };
    if (a.labels) out.labels = a.labels;
    if (a.min !== undefined && a.min !== null) out.min = a.min;
    if (a.max !== undefined && a.max !== null) out.max = a.max;
    if (a.log) out.ticks = { callback: (v, i, ticks) => {  // every tick on a short range, else 1, 2, 5 of each decade
      const m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
      if (ticks.length > 8 && ![1, 2, 5].some((d) => Math.abs(m - d) < 1e-6)) return "";
      return v >= 0.01 && v < 1e4 ? String(Number(v.toPrecision(2))) : v.toExponential(0);
    } };
    return out;
  }
  specs.forEach((spec, i) => {
    const canvas = document.querySelector('canvas[data-chart="' + i + '"]');
    if (!canvas || typeof Chart !== "function") return;
    const horizontal = !!spec.horizontal;
    const datasets = spec.datasets.map((d, k) => {
      const c = palette[(d.color === undefined ? k : d.color) % palette.length];
      return { label: d.label, data: d.data, borderColor: c, backgroundColor: c, showLine: d.line !== false,
               pointRadius: d.radius === undefined ? 0 : d.radius, pointStyle: d.pointStyle || "circle", spanGaps: false };
    });
    const x = axis(spec.x || {}), y = axis(spec.y || {});
    new Chart(canvas, {
      type: spec.type === "bar" ? "bar" : "scatter",
      data: { labels: spec.x && spec.x.labels, datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false, indexAxis: horizontal ? "y" : "x",
                 plugins: { legend: { display: datasets.length > 1 } },
                 scales: horizontal ? { y: x, x: y } : { x, y } },
    });
  });
  document.body.setAttribute("data-charts-ready", "true");
})();
