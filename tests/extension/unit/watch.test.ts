// The extension's side of `torchsanity/watch`: the request's params, the reading of `torchsanity/watchUpdate`, the
// progress text; and the pages the real server draws for the watch webview (live and finished), which must pass
// the webview's policy check unchanged. The pages come from the project's Python (.venv, or TORCHSANITY_E2E_PYTHON).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkedPage } from "../../../extension/src/report";
import { endMessage, progressText, readWatchUpdate, toWatchParams } from "../../../extension/src/watchModel";

const ROOT = join(__dirname, "../..");
const PYTHON = [process.env.TORCHSANITY_E2E_PYTHON, join(ROOT, ".venv/bin/python")].find((p) => p && existsSync(p));
const NONCE = "W4tch+nonce/123==";
const CSP_SOURCE = "https://file+.vscode-resource.vscode-cdn.net";
const CHART_URI = "https://file+.vscode-resource.vscode-cdn.net/ext/out/webview/chart.umd.min.js";

function python(code: string, input: unknown, timeout = 60000): string {
  return execFileSync(PYTHON!, ["-c", code], {
    input: JSON.stringify(input),
    encoding: "utf8",
    cwd: ROOT,
    env: { ...process.env, PYTHONPATH: undefined, OMP_NUM_THREADS: "1" },
    timeout,
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** The page the language server answers to `torchsanity/renderWatch` (its handler, in-process). */
function serverPage(report: unknown): string {
  const code = "import json, sys\nfrom torchsanity.server.lsp_watch import render_watch\nsys.stdout.write(render_watch(json.load(sys.stdin))['html'])";
  return python(code, { report, script: "/work/train.py", nonce: NONCE, cspSource: CSP_SOURCE, chartUri: CHART_URI });
}

test("params: the script, the interpreter, the token, and the probe's args and device settings", () => {
  const settings: Record<string, unknown> = { "probe.args": ["--epochs", "2"], "probe.device": "cpu", "probe.timeout": 30, "probe.checks": ["x"] };
  const get = <T>(key: string) => settings[key] as T | undefined;
  assert.deepEqual(toWatchParams("file:///w/train.py", "/usr/bin/python3", get, "tok-1"), {
    uri: "file:///w/train.py",
    python: "/usr/bin/python3",
    workDoneToken: "tok-1",
    args: ["--epochs", "2"],
    device: "cpu",
  });
  assert.deepEqual(toWatchParams("file:///w/t.py", "py", () => undefined, "t"), { uri: "file:///w/t.py", python: "py", workDoneToken: "t" });
});

test("updates are read defensively: records kept as they are, verdicts with an id and a step", () => {
  const update = readWatchUpdate({
    uri: "file:///w/train.py",
    records: [{ kind: "step", step: 3, loss: "nan" }, 7, null, { kind: "eval", step: 3, loss: 0.5 }],
    verdicts: [{ id: "non-finite", step: 3, message: "the loss became nan", advice: "clamp" }, { id: 5 }, "x"],
    step: 3,
    loss: "nan",
  });
  assert.ok(update);
  assert.deepEqual(update.records, [{ kind: "step", step: 3, loss: "nan" }, { kind: "eval", step: 3, loss: 0.5 }]);
  assert.deepEqual(update.verdicts.map((v) => [v.id, v.step, v.advice]), [["non-finite", 3, "clamp"]]);
  assert.equal(update.done, false);
  assert.equal(readWatchUpdate({ records: [] }), undefined);
  assert.equal(readWatchUpdate(null), undefined);
  const done = readWatchUpdate({ uri: "u", records: [], verdicts: [], step: 60, loss: 0.1, done: true, status: "stopped" });
  assert.equal(done?.done, true);
  assert.equal(done?.status, "stopped");
});

test("progress and end messages", () => {
  assert.equal(progressText(120, 0.038061234, 0), "step 120 · loss 0.03806");
  assert.equal(progressText(7, "inf", 2), "step 7 · loss inf · 2 verdict(s)");
  assert.equal(progressText(0, null, 0), "step 0 · loss —");
  const v = { id: "divergence", step: 130, message: "m" };
  assert.equal(endMessage("t.py", "stopped", 40, [v, v]), "Torch Sanity: watch of t.py stopped after 40 step(s), 2 verdict(s): divergence.");
  assert.equal(endMessage("t.py", "completed", 60, []), "Torch Sanity: watch of t.py finished after 60 step(s), no verdicts.");
});

test("the live page from the server passes the webview's policy: nonce scripts, local Chart.js, a Stop button", { skip: !PYTHON && "no Python with torchsanity" }, () => {
  const page = serverPage(null);
  assert.equal(checkedPage(page, NONCE, CSP_SOURCE), page);
  assert.match(page, /<button type="button" data-action="stop" id="stop">Stop<\/button>/);
  assert.ok(page.includes(`<script nonce="${NONCE}" src="${CHART_URI}"></script>`));
  assert.match(page, /id="watch-status">running train\.py/);
  const specs = JSON.parse(/<script type="application\/json" id="report-charts">(.*?)<\/script>/s.exec(page)![1]) as { key: string }[];
  // every chart the live updates fill is on the page from the start
  for (const key of ["loss", "lr", "grad_norm", "throughput", "time", "update_ratio", "layer_grad_norm"]) {
    assert.ok(specs.some((s) => s.key === key), key);
  }
  assert.equal(checkedPage(page.replace(`<script nonce="${NONCE}">`, "<script>"), NONCE, CSP_SOURCE).includes("data-action"), false);
});

test("the finished report of a real run, drawn for the webview, has the run's curves", { skip: !PYTHON && "no Python with torchsanity", timeout: 180000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "ts-watch-unit-"));
  try {
    const out = execFileSync(
      PYTHON!,
      ["-m", "torchsanity.server", "watch", "--format", "json", "--steps", "30", "--every", "10", "-o", join(dir, "r.html"), join(ROOT, "tests/watch/scripts/regression_epochs.py")],
      { cwd: dir, encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" }, timeout: 170000, maxBuffer: 64 * 1024 * 1024 },
    );
    const report = JSON.parse(out) as { steps: number; series: { loss: number[] } };
    assert.equal(report.steps, 30);
    const page = serverPage(report);
    assert.equal(checkedPage(page, NONCE, CSP_SOURCE), page);
    assert.ok(!page.includes('data-action="stop"'), "no Stop button on a finished run");
    const specs = JSON.parse(/<script type="application\/json" id="report-charts">(.*?)<\/script>/s.exec(page)![1]) as {
      key: string;
      datasets: { data: { x: number; y: number }[] }[];
    }[];
    const loss = specs.find((s) => s.key === "loss")!;
    assert.deepEqual(loss.datasets[0].data.map((p) => p.y), report.series.loss);
    // the CLI's file and the webview page share the body: one renderer
    const file = readFileSync(join(dir, "r.html"), "utf8");
    const body = (html: string) => /<header>.*<\/header>/s.exec(html)![0];
    assert.equal(body(file), body(page));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
