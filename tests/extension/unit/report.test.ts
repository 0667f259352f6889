// The extension's side of the probe report: verdicts, report messages, and the policy check of the page the server
// draws (server/probe_report.py, the renderer of the CLI's HTML file). The page under test is the real server's:
// rendered by the project's Python (.venv, or TORCHSANITY_E2E_PYTHON) for a webview nonce and cspSource.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { checkedPage, contentSecurityPolicy, messagePage, overallVerdict, readReportMessage, type ProbeReport } from "../../../extension/src/report";

const ROOT = join(__dirname, "../..");
const report = JSON.parse(readFileSync(join(ROOT, "tests/extension/fixtures/report-fail.json"), "utf8")) as ProbeReport;
const NONCE = "N0nce+abc/123==";
const CSP_SOURCE = "https://file+.vscode-resource.vscode-cdn.net";
const PYTHON = [process.env.TORCHSANITY_E2E_PYTHON, join(ROOT, ".venv/bin/python")].find((p) => p && existsSync(p));

/** The page the language server answers to `torchsanity/renderReport` for this report (its handler, in-process). */
function serverPage(r: unknown, nonce = NONCE, cspSource = CSP_SOURCE): string {
  const code =
    "import json, sys\nfrom torchsanity.server.lsp_probe import render_report\n" +
    "sys.stdout.write(render_report(json.load(sys.stdin))['html'])";
  return execFileSync(PYTHON!, ["-c", code], {
    input: JSON.stringify({ report: r, nonce, cspSource, chartUri: "https://file+.vscode-resource.vscode-cdn.net/ext/out/webview/chart.umd.min.js" }),
    encoding: "utf8",
    cwd: ROOT,
    env: { ...process.env, PYTHONPATH: undefined },
    timeout: 60000,
    maxBuffer: 64 * 1024 * 1024,
  });
}

test("verdict is the worst status", () => {
  assert.equal(overallVerdict(report), "fail");
  assert.equal(overallVerdict({ checks: [{ id: "a", status: "pass" }, { id: "b", status: "warn" }] }), "warn");
  assert.equal(overallVerdict({ checks: [{ id: "a", status: "skip" }] }), "skip");
  assert.equal(overallVerdict({ error: "Traceback…" }), "error");
});

test("strict CSP: nonce-only scripts, no network", () => {
  const csp = contentSecurityPolicy("N0nce", "vscode-webview://x");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'nonce-N0nce'/);
  assert.match(csp, /connect-src 'none'/);
  assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"));
});

test("the server's page for the webview passes the policy check unchanged", { skip: PYTHON ? false : "no project Python (.venv)" }, () => {
  const page = serverPage(report);
  assert.equal(checkedPage(page, NONCE, CSP_SOURCE), page, "the server's policy is the one this view asks for");
  assert.ok(page.includes(`<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(NONCE, CSP_SOURCE)}">`));
  for (const tag of page.match(/<script\b[^>]*>/g) ?? []) {
    assert.ok(tag.includes(`nonce="${NONCE}"`) || tag.includes('type="application/json"'), tag);
  }
  assert.ok(!/\sstyle=/.test(page), "no inline style attributes");
  assert.ok(!/(src|href)="https?:\/\/(?!file\+\.vscode-resource)/.test(page), "nothing remote");
  // the report's text is escaped, never markup
  assert.ok(!page.includes("<script>alert(1)</script>"));
  assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(page, /id="verdict">FAIL</);
  assert.match(page, /data-line="44"/);
  // the same page under another nonce is refused: a page is only accepted for the nonce it was drawn for
  assert.notEqual(checkedPage(page, "0therNonce1234", CSP_SOURCE), page);
  // code-server's webviews name themselves with a quoted keyword and a host with a port
  const codeServer = "'self' http://127.0.0.1:8080";
  const served = serverPage(report, NONCE, codeServer);
  assert.equal(checkedPage(served, NONCE, codeServer), served);
});

test("pages without the policy, or with a script that lacks the nonce, are refused", () => {
  const good = messagePage("hello", NONCE, CSP_SOURCE);
  assert.equal(checkedPage(good, NONCE, CSP_SOURCE), good);
  const injected = good.replace("<p id=", "<script>alert(1)</script><p id=");
  assert.notEqual(checkedPage(injected, NONCE, CSP_SOURCE), injected);
  const noPolicy = good.replace(/<meta http-equiv[^>]*>/, "");
  assert.match(checkedPage(noPolicy, NONCE, CSP_SOURCE), /could not be shown/);
  assert.match(checkedPage(undefined, NONCE, CSP_SOURCE), /could not be shown/);
  assert.match(messagePage("a <b> c", NONCE, CSP_SOURCE), /a &lt;b&gt; c/);
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
