import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  chartSpecs,
  contentSecurityPolicy,
  formatValue,
  overallVerdict,
  readReportMessage,
  renderReportHtml,
  type ProbeReport,
} from "../../../extension/src/report";

const report = JSON.parse(readFileSync(join(__dirname, "../../tests/extension/fixtures/report-fail.json"), "utf8")) as ProbeReport;
const opts = { nonce: "N0nce", cspSource: "https://file+.vscode-resource.vscode-cdn.net", scriptUri: "webview://report.js", styleUri: "webview://report.css" };

test("verdict is the worst status", () => {
  assert.equal(overallVerdict(report), "fail");
  assert.equal(overallVerdict({ checks: [{ id: "a", status: "pass" }, { id: "b", status: "warn" }] }), "warn");
  assert.equal(overallVerdict({ checks: [{ id: "a", status: "skip" }] }), "skip");
  assert.equal(overallVerdict({ error: "Traceback…" }), "error");
});

test("the table has one row per check, with measured/expected values and links to lines", () => {
  const html = renderReportHtml(report, opts);
  const rows = html.match(/<tr class="status-/g) ?? [];
  assert.equal(rows.length, 5);
  assert.match(html, /<tr class="status-fail" data-check="overfit-batch">/);
  assert.match(html, /badge-fail verdict" id="verdict">FAIL</);
  assert.match(html, /<td class="val">2\.305<\/td>/);
  assert.match(html, /data-line="44"/);
  assert.match(html, /device <b>cpu<\/b>/);
  assert.match(html, /train_&lt;bad&gt;\.py/);
});

test("report text is escaped, never markup", () => {
  const html = renderReportHtml(report, opts);
  assert.ok(!html.includes("<script>alert(1)</script>"));
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  // the embedded JSON cannot close its <script> element
  const data = html.slice(html.indexOf('id="report-data">'), html.indexOf("</script>", html.indexOf('id="report-data">')));
  assert.ok(!data.includes("<"), "no raw < inside the JSON block");
});

test("strict CSP: nonce-only scripts, no network, no inline styles", () => {
  const csp = contentSecurityPolicy("N0nce", "vscode-webview://x");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'nonce-N0nce'/);
  assert.match(csp, /connect-src 'none'/);
  assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"));
  const html = renderReportHtml(report, opts);
  assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy("N0nce", opts.cspSource)}">`));
  for (const tag of html.match(/<script\b[^>]*>/g) ?? []) {
    assert.ok(tag.includes('nonce="N0nce"') || tag.includes('type="application/json"'), tag);
  }
  assert.ok(!/\sstyle=/.test(html), "no inline style attributes");
  assert.ok(!/https?:\/\/(?!file\+)/.test(html.replace(opts.cspSource, "")), "no network URLs");
});

test("charts: overfit curve, LR sweep (log x, suggestion), per-layer gradient norms (bars)", () => {
  const [overfit] = chartSpecs(report.checks![1]);
  assert.equal(overfit.type, "line");
  assert.deepEqual(overfit.datasets[0].data, [2.31, 2.3, 2.3, 2.29, 2.29]);
  const [lr] = chartSpecs(report.checks![2]);
  assert.equal(lr.xLog, true);
  assert.equal(lr.markerX, 0.003);
  assert.deepEqual(lr.datasets[0].data[0], { x: 1e-5, y: 2.3 });
  const [grad] = chartSpecs(report.checks![3]);
  assert.equal(grad.type, "bar");
  assert.deepEqual(grad.labels, ["fc1.weight", "fc2.weight", "head.weight"]);
  assert.equal(grad.yLog, true);
  assert.deepEqual(chartSpecs(report.checks![4]), []);
  const html = renderReportHtml(report, opts);
  assert.equal((html.match(/<canvas /g) ?? []).length, 3);
});

test("other series shapes: pairs, row objects, named curves, layer tables", () => {
  assert.equal(chartSpecs({ id: "lr-range", status: "pass", series: [[1e-4, 2], [1e-3, 1]] })[0].xLog, true);
  const rows = chartSpecs({ id: "gradient-flow", status: "pass", series: [{ layer: "a", grad_norm: 1, ratio: 1e-3 }, { layer: "b", grad_norm: 2, ratio: 2e-3 }] });
  assert.deepEqual(rows[0].labels, ["a", "b"]);
  assert.deepEqual(rows[0].datasets.map((d) => d.label), ["grad_norm", "ratio"]);
  const named = chartSpecs({ id: "input-independence", status: "fail", series: { real: [1, 0.5], zeros: [1, 0.9] } });
  assert.deepEqual(named[0].datasets.map((d) => d.label), ["real", "zeros"]);
  const table = chartSpecs({ id: "gradient-flow", status: "pass", series: { layers: ["a", "b"], grad_norm: [1, 2] } });
  assert.equal(table[0].type, "bar");
  const withNaN = chartSpecs({ id: "overfit-batch", status: "fail", series: [1, null, Infinity] });
  assert.ok(Number.isNaN((withNaN[0].datasets[0].data as number[])[1]));
  assert.deepEqual(chartSpecs({ id: "x", status: "pass", series: "nope" }), []);
});

test("formatValue", () => {
  assert.equal(formatValue(null), "—");
  assert.equal(formatValue(0.00012), "1.20e-4");
  assert.equal(formatValue(2.302585), "2.303");
  assert.equal(formatValue(3), "3");
  assert.equal(formatValue([0.0001, 0.1]), "1.00e-4 – 0.1");
  assert.equal(formatValue(true), "yes");
  assert.equal(formatValue({ loss: 1.6126271, ln_C: 1.6094379, classes: 5, unused: [] }), "loss 1.613, ln C 1.609, classes 5");
  assert.equal(formatValue({ input: { mean: 0.01, std: 0.97, nested: { a: 1 } } }), "input {mean 0.01, std 0.97, nested {…}}");
  assert.equal(formatValue([1, 2, 3, 4, 5, 6]), "[1, 2, 3, 4, … (6)]");
  assert.ok(formatValue("x".repeat(500)).length <= 500);
  assert.ok(formatValue({ long: "y".repeat(500) }).length <= 220);
});

test("a harness error is shown with its traceback", () => {
  const html = renderReportHtml({ script: "t.py", error: "ZeroDivisionError: division by zero", traceback: "Traceback (most recent call last):\n  File <t.py>", checks: [] }, opts);
  assert.match(html, /The script or the probe failed/);
  assert.match(html, /File &lt;t\.py&gt;/);
  assert.match(html, /No checks ran/);
});

test("data-stats splits input statistics from the label histogram; short series become bars", () => {
  const specs = chartSpecs({
    id: "data-stats",
    status: "pass",
    series: { input_channel_mean: [0, 0.1, -0.1, 0.2], input_channel_std: [1, 1, 1, 1], label_histogram: [5, 7, 4] },
  });
  assert.deepEqual(specs.map((s) => s.title), ["Input statistics per channel", "Label histogram"]);
  assert.deepEqual(specs[0].datasets.map((d) => d.label), ["mean", "std"]);
  assert.equal(specs[1].type, "bar");
  const det = chartSpecs({ id: "determinism", status: "fail", series: { first_loss: [1.61, 1.62] } });
  assert.equal(det[0].type, "bar");
  assert.equal(chartSpecs({ id: "batch-independence", status: "pass", series: { grad_per_sample: [0, 0, 0.3, 0], probed_sample: 2 } })[0].type, "bar");
});

test("report messages: the server's {uri, status, report}, a bare report, and none", () => {
  const fileUri = (p: string) => "file://" + p;
  const wrapped = readReportMessage({ uri: "file:///w/t.py", status: "completed", exitCode: 1, report }, fileUri);
  assert.deepEqual(wrapped, { uri: "file:///w/t.py", status: "completed", report });
  const bare = readReportMessage({ script: "/w/t.py", checks: [] }, fileUri);
  assert.equal(bare.uri, "file:///w/t.py");
  assert.deepEqual(bare.report, { script: "/w/t.py", checks: [] });
  assert.deepEqual(readReportMessage({ uri: "file:///w/t.py", status: "cancelled", report: null }, fileUri), {
    uri: "file:///w/t.py",
    status: "cancelled",
    report: undefined,
  });
  assert.deepEqual(readReportMessage(null, fileUri), { uri: undefined, status: undefined, report: undefined });
  assert.equal(readReportMessage({ uri: "file:///w/t.py" }, fileUri).report, undefined, "an empty answer is no report");
});
