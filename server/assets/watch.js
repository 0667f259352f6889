// torchsanity watch, live page: fills the charts that report.js drew (found with Chart.getChart) from the metrics
// records the extension posts ({type: "records", records, verdicts}, then {type: "done", status}), adds the
// verdicts to the table as they fire and keeps the status line current. Records are probes/watch.py's JSON lines.
(function () {
  "use strict";
  // one VS Code API object per page: report.js asks for it too, and a second acquireVsCodeApi() call throws
  const api = typeof acquireVsCodeApi === "function" ? acquireVsCodeApi() : undefined;
  if (api) window.acquireVsCodeApi = () => api;
  const MAX_POINTS = 5000; // per dataset: beyond, every other point is dropped (the curve keeps its shape)
  const queue = [];
  let ready = false;
  let layers = [];
  let ndim = [];
  let step = 0;
  let loss = null;
  let verdictCount = 0;
  const lossAt = new Map(); // step -> finite loss, where the verdict marks go
  let lastFinite = null;
  const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);
  let specs = []; // the page's chart specs: read at load (their element comes after this script)

  function chart(key) {
    const i = specs.findIndex((s) => s.key === key);
    const canvas = i < 0 ? null : document.querySelector('canvas[data-chart="' + i + '"]');
    return canvas && typeof Chart === "function" ? Chart.getChart(canvas) : undefined;
  }

  function dataset(c, index, label) {
    while (c.data.datasets.length <= index) {
      const palette = ["#3794ff", "#f14c4c", "#89d185", "#cca700", "#b180d7", "#4ec9b0", "#ce9178", "#d7ba7d"];
      const color = palette[c.data.datasets.length % palette.length];
      c.data.datasets.push({ label: label, data: [], borderColor: color, backgroundColor: color, showLine: true,
                             pointRadius: 2, spanGaps: false });
      c.options.plugins.legend.display = c.data.datasets.length > 1;
    }
    return c.data.datasets[index];
  }

  function push(c, index, x, y, label) {
    if (!c || y === null) return;
    const data = dataset(c, index, label).data;
    data.push({ x: x, y: y });
    if (data.length > MAX_POINTS) c.data.datasets[index].data = data.filter((_, i) => i % 2 === 0);
  }

  function onRecord(r) {
    const kind = r.kind;
    if (kind === "layers") {
      layers = r.names || [];
      ndim = r.ndim || [];
    } else if (kind === "step") {
      step = r.step;
      if (r.loss !== null && r.loss !== undefined) loss = r.loss;
      if (num(r.loss) !== null) {
        lossAt.set(r.step, num(r.loss));
        lastFinite = num(r.loss);
      }
      push(chart("loss"), 0, r.step, num(r.loss), "training loss");
      (r.lr || []).forEach((lr, g) => push(chart("lr"), g, r.step, num(lr), "group " + g));
      push(chart("grad_norm"), 0, r.step, num(r.grad_norm), "‖grad‖");
      push(chart("throughput"), 0, r.step, num(r.samples_per_second), "samples/s");
      push(chart("time"), 0, r.step, num(r.seconds), "step");
      push(chart("time"), 1, r.step, num(r.data_seconds), "waiting for data");
    } else if (kind === "eval") {
      push(chart("loss"), 1, r.step, num(r.loss), "validation loss");
    } else if (kind === "sample") {
      let j = 0;
      ndim.forEach((d, k) => {
        if (d < 2) return;
        push(chart("update_ratio"), j, r.step, num((r.update_ratio || [])[k]), layers[k]);
        push(chart("layer_grad_norm"), j, r.step, num((r.grad_norm || [])[k]), layers[k]);
        j++;
      });
    }
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  function onVerdict(v) {
    verdictCount++;
    const table = document.getElementById("watch-verdicts");
    const none = document.getElementById("no-verdicts");
    if (none) none.remove();
    if (table) {
      table.hidden = false;
      const row = document.createElement("tr");
      cell(row, v.step, "num");
      cell(row, v.id, "fail");
      cell(row, v.message);
      cell(row, v.advice);
      cell(row, v.criterion);
      table.tBodies[0].appendChild(row);
    }
    const c = chart("loss");
    const y = lossAt.has(v.step) ? lossAt.get(v.step) : lastFinite;
    if (c && y !== null) {
      const marks = c.data.datasets[2];
      if (marks) marks.data.push({ x: v.step, y: y });
    }
    const badge = document.getElementById("verdict");
    if (badge) badge.className = "badge fail";
  }

  function status(text) {
    const line = document.getElementById("watch-status");
    if (line) line.textContent = text;
  }

  function running() {
    const l = typeof loss === "number" ? Number(loss.toPrecision(4)) : loss === null ? "—" : loss;
    return "step " + step + " · loss " + l + (verdictCount ? " · " + verdictCount + " verdict(s)" : "");
  }

  function handle(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "records") {
      (msg.records || []).forEach(onRecord);
      (msg.verdicts || []).forEach(onVerdict);
      specs.forEach((s) => {
        const c = chart(s.key);
        if (c) c.update("none");
      });
      status("running · " + running());
      document.body.setAttribute("data-watch-step", String(step));
    } else if (msg.type === "done") {
      status((msg.status || "finished") + " · " + running());
      const stop = document.getElementById("stop");
      if (stop) stop.disabled = true;
      const badge = document.getElementById("verdict");
      if (badge) badge.textContent = String(msg.status || "finished").toUpperCase();
      document.body.setAttribute("data-watch-done", String(msg.status || "finished"));
    }
  }

  window.addEventListener("message", (event) => {
    if (ready) handle(event.data);
    else queue.push(event.data);
  });
  window.addEventListener("load", () => {
    specs = JSON.parse(document.getElementById("report-charts").textContent || "[]");
    specs.forEach((s) => {
      const c = chart(s.key); // the legend names only the curves that have points yet
      if (c) c.options.plugins.legend.labels.filter = (item, data) => data.datasets[item.datasetIndex].data.length > 0;
    });
    ready = true;
    queue.splice(0).forEach(handle);
    document.body.setAttribute("data-watch-ready", "true");
    if (api) api.postMessage({ type: "ready" }); // the extension holds the updates back until the page listens
  });
})();
