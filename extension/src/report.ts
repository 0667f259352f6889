/**
 * The probe report (JSON from `torchsanity/probeReport`) → the webview's HTML and chart specs. Pure: no vscode
 * import, so it is unit-tested from JSON reports, and `chartSpecs` is also bundled into the webview script.
 *
 * Report contract (DESIGN.md §3): {"script", "device", "checks": [{"id", "status", "measured", "expected",
 * "message", "line", "series"}], ...}. Anything else in it is shown as-is, never interpreted as HTML.
 */

export type Status = "pass" | "warn" | "fail" | "skip" | "error";

export interface ProbeCheck {
  id: string;
  status: Status | string;
  measured?: unknown;
  expected?: unknown;
  message?: string;
  line?: number | null;
  series?: unknown;
  [key: string]: unknown;
}

export interface ProbeReport {
  script?: string;
  device?: string;
  checks?: ProbeCheck[];
  verdict?: string;
  status?: string;
  error?: unknown;
  traceback?: string;
  duration?: number;
  duration_s?: number;
  [key: string]: unknown;
}

const ORDER: Status[] = ["error", "fail", "warn", "pass", "skip"];

/** The overall verdict: the worst check status (error > fail > warn > pass > skip). */
export function overallVerdict(report: ProbeReport): Status {
  const explicit = (report.verdict ?? report.status) as string | undefined;
  if (explicit && (ORDER as string[]).includes(explicit)) return explicit as Status;
  const statuses = (report.checks ?? []).map((c) => String(c.status));
  if (report.error && !statuses.length) return "error";
  for (const s of ["error", "fail", "warn", "pass"] as Status[]) if (statuses.includes(s)) return s;
  return statuses.length ? "skip" : "error";
}

/** A report-carrying message: `torchsanity/probeReport` or the `torchsanity/runProbe` answer. */
export interface ReportMessage {
  uri?: string;
  status?: string;
  report?: ProbeReport;
}

/**
 * Reads `{uri, status, exitCode, report}` (the server's contract; `report` may be null when none was made) or a
 * bare report (one with `checks` or an `error`). Without a `uri`, the report's `script` path gives it.
 */
export function readReportMessage(params: unknown, fileUri: (path: string) => string): ReportMessage {
  const p = (params && typeof params === "object" ? params : {}) as { uri?: unknown; status?: unknown; report?: unknown; checks?: unknown; error?: unknown };
  const bare = !("report" in p) && (Array.isArray(p.checks) || p.error !== undefined);
  const report = bare ? (p as ProbeReport) : p.report && typeof p.report === "object" ? (p.report as ProbeReport) : undefined;
  let uri = typeof p.uri === "string" ? p.uri : undefined;
  if (!uri && typeof report?.script === "string") uri = fileUri(report.script);
  return { uri, status: typeof p.status === "string" ? p.status : undefined, report };
}

export function countStatuses(report: ProbeReport): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of report.checks ?? []) counts[String(c.status)] = (counts[String(c.status)] ?? 0) + 1;
  return counts;
}

export function escapeHtml(value: string): string {
  return value
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** A measured/expected value as short text: numbers to 4 significant digits, objects as "key value, …". */
export function formatValue(value: unknown, depth = 0): string {
  if (value === undefined || value === null || value === "") return "—";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return String(value);
    if (value !== 0 && (Math.abs(value) < 1e-3 || Math.abs(value) >= 1e5)) return value.toExponential(2);
    return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, "");
  }
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "yes" : "no";
  let text: string;
  if (Array.isArray(value)) {
    if (value.length === 0) return "none";
    if (value.length === 2 && value.every((v) => typeof v === "number")) {
      return `${formatValue(value[0])} – ${formatValue(value[1])}`;
    }
    const shown = value.slice(0, 4).map((v) => formatValue(v, depth + 1));
    text = `[${shown.join(", ")}${value.length > 4 ? `, … (${value.length})` : ""}]`;
  } else if (typeof value === "object") {
    const parts = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))
      .map(([k, v]) => (depth >= 1 && v && typeof v === "object" ? `${k} {…}` : `${k.replace(/_/g, " ")} ${formatValue(v, depth + 1)}`));
    text = parts.length ? (depth ? `{${parts.join(", ")}}` : parts.join(", ")) : "—";
  } else {
    text = String(value);
  }
  return text.length > 220 ? text.slice(0, 219) + "…" : text;
}

// ---------------------------------------------------------------------------------------------------------------
// Charts

export interface ChartDataset {
  label: string;
  data: number[] | { x: number; y: number }[];
}

export interface ChartSpec {
  checkId: string;
  title: string;
  type: "line" | "bar";
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  /** Category labels (bar charts, or line charts over steps). */
  labels?: string[];
  datasets: ChartDataset[];
  /** A vertical marker (e.g. the suggested learning rate). */
  markerX?: number;
}

const TITLES: Record<string, string> = {
  "overfit-batch": "Overfit one batch — loss per step",
  "lr-range": "Learning-rate range test — loss vs. learning rate",
  "gradient-flow": "Per-layer gradient norms",
  "input-independence": "Real vs. zeroed inputs — loss per step",
  determinism: "Two runs — loss per step",
  "initial-loss": "Initial loss",
  "batch-independence": "Batch independence — input gradient per sample",
  "data-stats": "Batch statistics",
};

function isNumArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number" || x === null);
}

function isPairArray(v: unknown): v is [number, number][] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === "number" && typeof p[1] === "number")
  );
}

function clean(values: (number | null)[]): number[] {
  return values.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : NaN));
}

const X_KEYS = ["x", "lr", "lrs", "learning_rate", "step", "steps", "iteration", "iterations"];
const Y_KEYS = ["y", "loss", "losses", "smoothed", "smoothed_loss", "value", "values"];
const LABEL_KEYS = ["layer", "layers", "name", "names", "param", "params", "parameter", "parameters", "label", "labels"];

function xyFrom(xs: number[], ys: number[]): { x: number; y: number }[] {
  const n = Math.min(xs.length, ys.length);
  const out: { x: number; y: number }[] = [];
  for (let i = 0; i < n; i++) {
    const x = xs[i];
    const y = ys[i];
    if (Number.isFinite(x) && Number.isFinite(y)) out.push({ x, y });
  }
  return out;
}

/** Turns one check's `series` (whatever reasonable shape the probe used) into chart specs. */
export function chartSpecs(check: ProbeCheck): ChartSpec[] {
  const series = check.series;
  if (series === undefined || series === null) return [];
  const id = String(check.id);
  if (id === "data-stats" && series && typeof series === "object" && !Array.isArray(series)) {
    return dataStatsSpecs(check, series as Record<string, unknown>);
  }
  return genericSpecs(check, series).map((spec) => fewPointsAsBars(spec));
}

/** Two or three points are a comparison, not a curve. */
function fewPointsAsBars(spec: ChartSpec): ChartSpec {
  if (spec.type !== "line" || !spec.labels) return spec;
  const n = Math.max(...spec.datasets.map((d) => d.data.length));
  return n <= 3 ? { ...spec, type: "bar", xLabel: spec.checkId === "determinism" ? "run" : spec.xLabel } : spec;
}

/** data-stats: per-channel input statistics and the label histogram are two different charts. */
function dataStatsSpecs(check: ProbeCheck, series: Record<string, unknown>): ChartSpec[] {
  const labelEntries = Object.entries(series).filter(([k, v]) => /label|class|target/i.test(k) && isNumArray(v)) as [string, number[]][];
  const inputEntries = Object.entries(series).filter(([k, v]) => !/label|class|target/i.test(k) && isNumArray(v)) as [string, number[]][];
  const specs: ChartSpec[] = [];
  if (inputEntries.length) {
    const n = Math.max(...inputEntries.map(([, v]) => v.length));
    specs.push({
      checkId: check.id, title: "Input statistics per channel", type: n <= 3 ? "bar" : "line", xLabel: "channel", yLabel: "value",
      labels: Array.from({ length: n }, (_, i) => String(i)),
      datasets: inputEntries.map(([k, v]) => ({ label: k.replace(/^input_channel_|^input_/, ""), data: clean(v) })),
    });
  }
  for (const [k, v] of labelEntries) {
    specs.push({
      checkId: check.id, title: "Label histogram", type: "bar", xLabel: "class", yLabel: "count",
      labels: v.map((_, i) => String(i)), datasets: [{ label: k.replace(/_/g, " "), data: clean(v) }],
    });
  }
  return specs;
}

function genericSpecs(check: ProbeCheck, series: unknown): ChartSpec[] {
  const id = String(check.id);
  const title = TITLES[id] ?? id;
  const isLr = id === "lr-range";
  const isGrad = id === "gradient-flow";
  const isBatch = id === "batch-independence";
  const base = {
    checkId: id,
    title,
    xLabel: isLr ? "learning rate" : isBatch ? "sample" : "step",
    yLabel: isGrad ? "gradient norm" : isBatch ? "input gradient" : "loss",
  };

  // [1.2, 1.1, ...] → one curve over steps
  if (isNumArray(series)) {
    return [{ ...base, type: "line", labels: series.map((_, i) => String(i)), datasets: [{ label: "loss", data: clean(series) }] }];
  }
  // [[x, y], ...]
  if (isPairArray(series)) {
    return [{ ...base, type: "line", xLog: isLr, datasets: [{ label: "loss", data: xyFrom(series.map((p) => p[0]), series.map((p) => p[1])) }] }];
  }
  // [{layer: "fc1.weight", grad_norm: 0.1, ratio: 1e-3}, ...] or [{lr, loss}, ...]
  if (Array.isArray(series) && series.length && series.every((r) => r && typeof r === "object" && !Array.isArray(r))) {
    const rows = series as Record<string, unknown>[];
    const keys = Object.keys(rows[0]);
    const labelKey = keys.find((k) => LABEL_KEYS.includes(k) || typeof rows[0][k] === "string");
    const xKey = keys.find((k) => X_KEYS.includes(k));
    if (labelKey) {
      const numeric = keys.filter((k) => k !== labelKey && typeof rows[0][k] === "number");
      return [{
        ...base, type: "bar", xLabel: "layer", yLog: isGrad, labels: rows.map((r) => String(r[labelKey])),
        datasets: numeric.map((k) => ({ label: k, data: clean(rows.map((r) => r[k] as number)) })),
      }];
    }
    if (xKey) {
      const yKeys = keys.filter((k) => k !== xKey && typeof rows[0][k] === "number");
      return [{
        ...base, type: "line", xLog: isLr || xKey.startsWith("lr"), xLabel: xKey,
        datasets: yKeys.map((k) => ({ label: k, data: xyFrom(clean(rows.map((r) => r[xKey] as number)), clean(rows.map((r) => r[k] as number))) })),
      }];
    }
    return [];
  }
  if (typeof series !== "object") return [];
  const obj = series as Record<string, unknown>;
  const entries = Object.entries(obj);
  const marker = ["suggested_lr", "suggestion", "suggested", "configured_lr"].map((k) => obj[k]).find((v) => typeof v === "number") as
    | number
    | undefined;

  // {"fc1.weight": 0.12, "fc2.weight": 0.03} → bars per layer
  if (entries.length && entries.every(([, v]) => typeof v === "number")) {
    return [{
      ...base, type: "bar", xLabel: "layer", yLog: isGrad, labels: entries.map(([k]) => k),
      datasets: [{ label: isGrad ? "gradient norm" : "value", data: clean(entries.map(([, v]) => v as number)) }],
    }];
  }
  // {layers: [...], grad_norm: [...], update_ratio: [...]} → grouped bars
  const labelKey = Object.keys(obj).find((k) => LABEL_KEYS.includes(k) && Array.isArray(obj[k]) && (obj[k] as unknown[]).every((x) => typeof x === "string"));
  if (labelKey) {
    const labels = obj[labelKey] as string[];
    const datasets = entries
      .filter(([k, v]) => k !== labelKey && isNumArray(v) && v.length === labels.length)
      .map(([k, v]) => ({ label: k, data: clean(v as number[]) }));
    return datasets.length ? [{ ...base, type: "bar", xLabel: "layer", yLog: isGrad, labels, datasets }] : [];
  }
  // {lr: [...], loss: [...], smoothed: [...]} → curves against x
  const xKey = Object.keys(obj).find((k) => X_KEYS.includes(k) && isNumArray(obj[k]));
  if (xKey) {
    const xs = clean(obj[xKey] as number[]);
    const datasets = entries
      .filter(([k, v]) => k !== xKey && isNumArray(v))
      .map(([k, v]) => ({ label: k, data: xyFrom(xs, clean(v as number[])) }));
    if (datasets.length) {
      return [{ ...base, type: "line", xLog: isLr || xKey.startsWith("lr") || xKey === "learning_rate", xLabel: isLr || xKey.startsWith("lr") ? "learning rate" : xKey, datasets, markerX: marker }];
    }
  }
  // {real: [...], zeros: [...]} / {run1: [...], run2: [...]} / {loss: [...]} → several curves over steps
  const curves = entries.filter(([, v]) => isNumArray(v)) as [string, number[]][];
  if (curves.length) {
    const n = Math.max(...curves.map(([, v]) => v.length));
    return [{
      ...base, type: isBatch ? "bar" : "line", labels: Array.from({ length: n }, (_, i) => String(i)),
      datasets: curves.map(([k, v]) => ({ label: k, data: clean(v) })),
    }];
  }
  // {something: {...nested series...}} → recurse one level
  const nested: ChartSpec[] = [];
  for (const [k, v] of entries) {
    if (v && typeof v === "object") {
      for (const spec of genericSpecs(check, v)) nested.push({ ...spec, title: `${spec.title} — ${k}` });
    }
  }
  return nested;
}

// ---------------------------------------------------------------------------------------------------------------
// HTML

export interface RenderOptions {
  nonce: string;
  /** webview.cspSource */
  cspSource: string;
  /** webview URI of the bundled chart script (out/webview/report.js) */
  scriptUri: string;
  /** webview URI of the stylesheet (out/webview/report.css) */
  styleUri: string;
  /** when the report was received */
  receivedAt?: Date;
}

export function contentSecurityPolicy(nonce: string, cspSource: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    `style-src ${cspSource}`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
    "connect-src 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "base-uri 'none'",
  ].join("; ");
}

/** JSON that is safe inside a <script type="application/json"> element. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

function basename(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

export function renderReportHtml(report: ProbeReport, opts: RenderOptions): string {
  const verdict = overallVerdict(report);
  const counts = countStatuses(report);
  const checks = report.checks ?? [];
  const script = String(report.script ?? "");
  const e = escapeHtml;
  const rows = checks
    .map((c, i) => {
      const status = String(c.status);
      const line = typeof c.line === "number" && c.line > 0 ? c.line : undefined;
      const lineCell = line
        ? `<a href="#" class="line" data-line="${line}" title="Go to line ${line}">${line}</a>`
        : "—";
      const charts = chartSpecs(c).length ? `<a href="#chart-${i}" class="chart-link" title="Show the chart">chart</a>` : "";
      return `<tr class="status-${e(status)}" data-check="${e(String(c.id))}">
  <td class="check">${e(String(c.id))}</td>
  <td><span class="badge badge-${e(status)}">${e(status)}</span></td>
  <td class="val">${e(formatValue(c.measured))}</td>
  <td class="val">${e(formatValue(c.expected))}</td>
  <td class="message">${e(String(c.message ?? ""))} ${charts}</td>
  <td class="num">${lineCell}</td>
</tr>`;
    })
    .join("\n");
  const chartBlocks = checks
    .map((c, i) => {
      const specs = chartSpecs(c);
      return specs
        .map(
          (s, j) => `<figure class="chart" id="chart-${i}${j ? "-" + j : ""}">
  <figcaption>${e(s.title)} <span class="badge badge-${e(String(c.status))}">${e(String(c.status))}</span></figcaption>
  <div class="canvas-box"><canvas data-check-index="${i}" data-spec-index="${j}" role="img" aria-label="${e(s.title)}"></canvas></div>
</figure>`,
        )
        .join("\n");
    })
    .join("\n");
  const summary = ORDER.filter((s) => counts[s])
    .map((s) => `<span class="badge badge-${s}">${counts[s]} ${s}</span>`)
    .join(" ");
  const errorText =
    report.error !== undefined && report.error !== null && report.error !== ""
      ? `<section class="error"><h2>The script or the probe failed</h2><pre>${e(
          typeof report.error === "string" ? report.error : JSON.stringify(report.error, null, 2),
        )}${report.traceback ? "\n\n" + e(String(report.traceback)) : ""}</pre></section>`
      : "";
  const duration = report.duration_s ?? report.duration;
  const meta = [
    report.device ? `device <b>${e(String(report.device))}</b>` : "",
    typeof duration === "number" ? `${e(formatValue(duration))} s` : "",
    opts.receivedAt ? `at ${e(opts.receivedAt.toLocaleTimeString())}` : "",
  ]
    .filter(Boolean)
    .join(" · ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(opts.nonce, opts.cspSource)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${e(opts.styleUri)}">
<title>Probe report: ${e(basename(script))}</title>
</head>
<body>
<header>
  <h1>Sanity probe: <span class="script" title="${e(script)}">${e(basename(script) || "(unknown script)")}</span>
    <span class="badge badge-${verdict} verdict" id="verdict">${verdict.toUpperCase()}</span></h1>
  <p class="meta">${meta}</p>
  <p class="summary">${summary}</p>
  <p class="actions"><button id="rerun" type="button">Run again</button> <button id="open-script" type="button">Open script</button></p>
</header>
${errorText}
<table id="verdicts">
<thead><tr><th>Check</th><th>Verdict</th><th>Measured</th><th>Expected</th><th>Why</th><th>Line</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="6">No checks ran.</td></tr>'}
</tbody>
</table>
<section id="charts">
${chartBlocks}
</section>
<script type="application/json" id="report-data">${jsonForScript(report)}</script>
<script nonce="${opts.nonce}" src="${e(opts.scriptUri)}"></script>
</body>
</html>`;
}
