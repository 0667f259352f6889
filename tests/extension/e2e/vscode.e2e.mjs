// End-to-end: the packaged extension in code-server, driven like a user with headless Chromium.
// Started by run.sh, which installs code-server and the .vsix and passes everything through TORCHSANITY_E2E_*.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test as nodeTest } from "node:test";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/extension/e2e/run.sh`);
  return v;
};
const URL = env("TORCHSANITY_E2E_URL");
const WS = env("TORCHSANITY_E2E_WORKSPACE");
const USER_SETTINGS = env("TORCHSANITY_E2E_USER_SETTINGS");
const PYTHON = env("TORCHSANITY_E2E_PYTHON");
const ARTIFACTS = env("TORCHSANITY_E2E_ARTIFACTS");
const SHOTS = env("TORCHSANITY_E2E_SCREENSHOTS");
// TORCHSANITY_E2E_ONLY=REGEX runs only the tests whose names match (the others are reported skipped)
const ONLY = process.env.TORCHSANITY_E2E_ONLY ? new RegExp(process.env.TORCHSANITY_E2E_ONLY) : undefined;
const test = (name, options, fn) =>
  nodeTest(name, ONLY && !ONLY.test(name) ? { ...options, skip: "not selected by TORCHSANITY_E2E_ONLY" } : options, fn);
const SCRIPT = "train_buggy.py";
const EXPECTED_CODES = ["SAN101", "SAN504", "SAN601"];
const EXPECTED_LINE_FOR_SHOT = 29; // the Adam(weight_decay=...) line: the SAN504 squiggle in view

let browser;
let page;
let userDataDir;
const consoleErrors = [];

function log(...args) {
  console.log("[e2e]", ...args);
}

async function shot(name) {
  try {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  } catch {
    /* best effort */
  }
}

async function step(name, fn) {
  log("step:", name);
  try {
    return await fn();
  } catch (err) {
    await shot(`failed-${name.replace(/\W+/g, "-")}`);
    throw err;
  }
}

// machine-scoped settings live in the remote (Machine) settings of code-server; user settings for the rest
function setUserSetting(key, value) {
  for (const file of [USER_SETTINGS, USER_SETTINGS.replace(/User([\\/])settings\.json$/, "Machine$1settings.json")]) {
    let data = {};
    try {
      data = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      /* new file */
    }
    if (value === undefined) delete data[key];
    else data[key] = value;
    writeFileSync(file, JSON.stringify(data, null, 2));
  }
}

function mainGuardLine(name) {
  return readFileSync(join(WS, name), "utf8").split("\n").findIndex((l) => l.startsWith("if __name__")) + 1;
}

async function runCommand(title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await input.waitFor({ state: "visible", timeout: 15000 });
  await input.fill(">" + title);
  const row = page.locator(".quick-input-widget .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ state: "visible", timeout: 15000 });
  await page.keyboard.press("Enter");
}

async function openFile(name) {
  const input = page.locator(".quick-input-widget .quick-input-box input");
  // the file's own tab (its label starts with the name; "Probe Report: NAME" is not it), in the active group
  const tab = page.locator(`.tab.active[aria-label^="${name}"]`).first();
  for (let attempt = 1; ; attempt++) {
    try {
      await page.keyboard.press("Control+P");
      await input.waitFor({ state: "visible", timeout: 15000 });
      await input.fill(name, { timeout: 10000 });
      const row = page.locator(".quick-input-widget .monaco-list-row", { hasText: name }).first();
      await row.waitFor({ timeout: 15000 });
      // a click, not Enter: a webview that takes the keyboard focus back would swallow the key
      await row.click({ timeout: 10000 });
      await tab.waitFor({ timeout: 15000 });
      break;
    } catch (err) {
      // the keyboard focus may sit in a webview (a report just shown): give it back to the workbench, try again
      if (attempt >= 3) throw err;
      log(`quick open did not open ${name} (attempt ${attempt}): ${err.message.split("\n")[0]}`);
      await shot(`open-${name}-attempt-${attempt}`);
      const focus = await page.evaluate(() => `${document.activeElement?.tagName}.${document.activeElement?.className}`);
      const tabs = await page.locator(".tab").evaluateAll((ts) => ts.map((t) => t.getAttribute("aria-label")));
      log(`focus: ${focus}; tabs: ${JSON.stringify(tabs)}`);
      await page.keyboard.press("Escape");
      await page.locator(".part.activitybar").first().click({ position: { x: 20, y: 400 } }).catch(() => undefined);
      await page.waitForTimeout(500);
    }
  }
  // quick open leaves the focus in the editor it opened
  await page.waitForTimeout(300);
}

async function gotoLine(line, column = 1) {
  await page.keyboard.press("Control+G");
  const input = page.locator(".quick-input-widget .quick-input-box input");
  await input.waitFor({ state: "visible", timeout: 10000 });
  await input.fill(`:${line}:${column}`);
  await page.keyboard.press("Enter");
}

async function problemsText() {
  const panel = page.locator(".markers-panel");
  if (!(await panel.isVisible().catch(() => false))) {
    await page.keyboard.press("Control+Shift+M");
    await panel.waitFor({ state: "visible", timeout: 15000 });
  }
  return panel.innerText();
}

async function waitForProblems(predicate, timeout = 60000) {
  const deadline = Date.now() + timeout;
  let text = "";
  while (Date.now() < deadline) {
    text = await problemsText();
    if (predicate(text)) return text;
    await page.waitForTimeout(500);
  }
  throw new Error(`Problems panel never matched; last text:\n${text}`);
}

async function notificationText() {
  return (await page.locator(".notifications-toasts").innerText().catch(() => "")) || "";
}

async function waitForNotification(re, timeout = 30000) {
  const deadline = Date.now() + timeout;
  let text = "";
  while (Date.now() < deadline) {
    text = await notificationText();
    if (re.test(text)) return text;
    await page.waitForTimeout(300);
  }
  throw new Error(`no notification matching ${re}; last: ${text}`);
}

async function clearNotifications() {
  await runCommand("Notifications: Clear All Notifications").catch(() => undefined);
}

async function reportFrame(timeout = 300000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if (await frame.locator("#verdicts").count()) return frame;
      } catch {
        /* frame navigating */
      }
    }
    await page.waitForTimeout(500);
  }
  throw new Error("the probe report webview never appeared");
}

function probeProcesses() {
  try {
    return execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
      .split("\n")
      // only processes running this test's workspace scripts (other work may run on the machine)
      .filter((l) => l.includes(WS + "/") && /train_\w+\.py/.test(l) && !l.includes("ps -eo"));
  } catch {
    return [];
  }
}

/** The extension's log (its LogOutputChannel's file under code-server's logs directory). */
function extensionLog() {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/Torch Sanity\.log$/.test(entry.name)) files.push(p);
    }
  };
  try {
    walk(env("TORCHSANITY_E2E_LOGS"));
  } catch {
    return "";
  }
  return files.map((f) => readFileSync(f, "utf8")).join("\n");
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  mkdirSync(SHOTS, { recursive: true });
  userDataDir = join(ARTIFACTS, "chromium-profile");
  execFileSync("rm", ["-rf", userDataDir]);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${userDataDir}`,
    ].filter((a) => !a.startsWith("--user-data-dir")),
  });
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  await page.goto(URL);
  await page.locator(".monaco-workbench").waitFor({ timeout: 120000 });
  await page.locator(".part.activitybar, .part.sidebar").first().waitFor({ timeout: 60000 });
  log("workbench loaded");
});

after(async () => {
  await browser?.close();
  const csp = consoleErrors.filter((e) => /Content Security Policy/i.test(e) && /torchsanity|report/i.test(e));
  if (csp.length) log("CSP errors:", csp);
});

test("untrusted workspace: static analysis works, diagnostics with SAN codes, no pip step", { timeout: 240000 }, async () => {
  await step("restricted mode", async () => {
    // security.workspace.trust.startupPrompt = never: the folder opens in Restricted Mode
    await page.locator(".statusbar-item", { hasText: "Restricted Mode" }).first().waitFor({ timeout: 30000 });
  });
  await step("open the buggy script", () => openFile(SCRIPT));
  await step("squiggles", async () => {
    await page.locator(".monaco-editor .squiggly-warning, .monaco-editor .squiggly-error").first().waitFor({ timeout: 120000 });
  });
  const text = await step("problems", () => waitForProblems((t) => EXPECTED_CODES.every((c) => t.includes(c))));
  for (const code of EXPECTED_CODES) assert.ok(text.includes(code), `${code} in Problems`);
  // the one-time "no Python extension: using python3 on PATH" note, if still up, would hide the Problems list
  const notes = await notificationText();
  log("notifications:", JSON.stringify(notes));
  // no Python extension in this code-server: python3 on PATH runs the bundled server, and the user is told
  assert.match(notes, /Python extension is not installed; using python3 on PATH/);
  await clearNotifications();
  await gotoLine(EXPECTED_LINE_FOR_SHOT);
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(SHOTS, "diagnostics.png") });
});

test("untrusted workspace: the probe is disabled with an explanation, nothing runs", { timeout: 120000 }, async () => {
  await step("the server's codelens says disabled", async () => {
    // the lens comes from the language server (textDocument/codeLens), which knows the workspace is not trusted
    await gotoLine(mainGuardLine(SCRIPT));
    const lens = page.locator(".codelens-decoration", { hasText: "Sanity Probe disabled" }).first();
    await lens.waitFor({ timeout: 30000 });
    assert.match(await lens.innerText(), /not trusted/);
  });
  await step("clicking it explains", async () => {
    // the lens re-renders whenever the server refreshes it; click again if the first click hit a stale one
    for (let attempt = 1; ; attempt++) {
      await page.locator(".codelens-decoration a", { hasText: "Sanity Probe disabled" }).first().click();
      try {
        await waitForNotification(/disabled in Restricted Mode/, 8000);
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
        log(`no explanation after clicking the CodeLens (attempt ${attempt}); clicking again`);
      }
    }
    await clearNotifications();
  });
  await step("command explains", async () => {
    await runCommand("Torch Sanity: Run Sanity Probe");
    await waitForNotification(/disabled in Restricted Mode/);
  });
  assert.deepEqual(probeProcesses(), [], "no probe process in Restricted Mode");
  await clearNotifications();
});

test("quick fix from the lightbulb menu", { timeout: 120000 }, async () => {
  const before = readFileSync(join(WS, SCRIPT), "utf8");
  const lines = before.split("\n");
  const line = lines.findIndex((l) => l.includes("torch.optim.Adam(")) + 1;
  const col = lines[line - 1].indexOf("Adam(") + 2;
  await step("cursor on the SAN504 squiggle", async () => {
    await gotoLine(line, col);
  });
  await step("lightbulb", async () => {
    const bulb = page.locator(".lightBulbWidget .codicon, .lightBulbWidget").first();
    try {
      await bulb.waitFor({ state: "visible", timeout: 15000 });
      await bulb.click();
    } catch {
      log("lightbulb not clickable; opening the same menu with Ctrl+.");
      await page.keyboard.press("Control+.");
    }
    const item = page.locator(".action-widget .monaco-list-row", { hasText: /AdamW/ }).first();
    await item.waitFor({ state: "visible", timeout: 15000 });
    await page.screenshot({ path: join(SHOTS, "quick-fix.png") });
    await item.click();
  });
  await step("saved with the fix", async () => {
    await page.keyboard.press("Control+S");
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline && !readFileSync(join(WS, SCRIPT), "utf8").includes("AdamW(")) await page.waitForTimeout(200);
    assert.match(readFileSync(join(WS, SCRIPT), "utf8"), /torch\.optim\.AdamW\(/);
  });
  await step("SAN504 gone", async () => {
    const text = await waitForProblems((t) => !t.includes("SAN504") && t.includes("SAN601"));
    assert.ok(!text.includes("SAN504"));
  });
});

test("trusting the workspace enables Run Sanity Probe; the report webview shows verdicts and charts", { timeout: 420000 }, async () => {
  await step("interpreter with torch (machine setting)", async () => {
    setUserSetting("torchsanity.interpreter", PYTHON);
    await page.waitForTimeout(1500);
  });
  await step("trust the workspace", async () => {
    await runCommand("Workspaces: Manage Workspace Trust");
    const trust = page.locator(".workspace-trust-editor .monaco-button", { hasText: /^Trust$/ }).first();
    await trust.waitFor({ state: "visible", timeout: 20000 });
    await trust.click();
    await page.locator(".statusbar-item", { hasText: "Restricted Mode" }).first().waitFor({ state: "detached", timeout: 20000 }).catch(() => undefined);
    await page.keyboard.press("Control+W");
  });
  await step("codelens enabled", async () => {
    await openFile(SCRIPT);
    await gotoLine(mainGuardLine(SCRIPT));
    await page.locator(".codelens-decoration a", { hasText: "Run Sanity Probe" }).first().waitFor({ timeout: 60000 });
  });
  await step("run the probe from the CodeLens", async () => {
    // the lens re-renders when the server restarts after trust; click again if the first click hit a stale one
    for (let attempt = 1; ; attempt++) {
      await page.locator(".codelens-decoration a", { hasText: "Run Sanity Probe" }).first().click();
      try {
        await waitForNotification(/probing train_buggy\.py/, 8000);
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
        log(`no progress after clicking the CodeLens (attempt ${attempt}); clicking again`);
      }
    }
    await shot("probe-progress");
  });
  const frame = await step("report webview", () => reportFrame(360000));
  await step("report content", async () => {
    await frame.locator("body[data-charts-ready=true]").waitFor({ timeout: 30000 });
    const rows = await frame.locator("#verdicts tbody tr").count();
    assert.ok(rows >= 1, "at least one check row");
    const table = await frame.locator("#verdicts").innerText();
    log("verdicts:\n" + table);
    assert.match(table, /initial-loss|overfit-batch|gradient-flow|lr-range/);
    assert.match(await frame.locator("#verdict").innerText(), /PASS|WARN|FAIL|ERROR|SKIP/);
    const canvases = await frame.locator("canvas").count();
    log(`charts: ${canvases}`);
  });
  await page.waitForTimeout(1000);
  const tab = page.locator(".tab", { hasText: "Probe Report" }).first();
  assert.ok(await tab.isVisible(), "Probe Report tab");
  await page.screenshot({ path: join(SHOTS, "vscode-probe.png") });
  await step("report screenshot", async () => {
    // the report alone, tall enough for the table and the charts
    await page.setViewportSize({ width: 1300, height: 2000 });
    await page.keyboard.press("Control+J"); // hide the panel
    await page.keyboard.press("Control+B"); // hide the side bar
    await tab.click();
    await runCommand("View: Close Editors in Other Groups").catch(async () => {
      log("no 'Close Editors in Other Groups' command; screenshot of the split layout");
      await page.keyboard.press("Escape");
    });
    await page.mouse.move(5, 1900);
    await page.waitForTimeout(2000);
    const view = page.locator("iframe.webview").last();
    await view.screenshot({ path: join(SHOTS, "probe-report.png") });
    await page.setViewportSize({ width: 1500, height: 900 });
  });
  // status bar shows the verdict
  const status = await page.locator(".statusbar-item", { hasText: "Torch Sanity" }).first().innerText();
  assert.match(status, /Torch Sanity: (pass|warn|fail|error|skip)/);
  // no probe process is left behind once the report is in
  const deadline = Date.now() + 15000;
  while (probeProcesses().length && Date.now() < deadline) await page.waitForTimeout(500);
  assert.deepEqual(probeProcesses(), []);
});

test("Cancel on the progress notification really stops the probe", { timeout: 240000 }, async () => {
  const SLOW = "train_slow.py";
  const slowProcs = () => probeProcesses().filter((l) => l.includes(SLOW));
  await clearNotifications();
  await step("open the slow script", () => openFile(SLOW));
  await runCommand("Torch Sanity: Run Sanity Probe");
  const toast = page.locator(".notification-toast", { hasText: "probing" }).first();
  await step("progress toast", () => toast.waitFor({ timeout: 30000 }));
  // wait until the script is really running, then cancel
  const deadline = Date.now() + 60000;
  while (!slowProcs().length && Date.now() < deadline) await page.waitForTimeout(200);
  const running = slowProcs();
  log("running:", running);
  assert.ok(running.length, "the probe started the script");
  await step("click Cancel", async () => {
    await toast.hover();
    await toast.locator(".monaco-button", { hasText: "Cancel" }).first().click();
  });
  await step("cancelled message", () => waitForNotification(/cancelled/, 60000));
  const end = Date.now() + 30000;
  while (slowProcs().length && Date.now() < end) await page.waitForTimeout(300);
  assert.deepEqual(slowProcs(), [], "the probe's process tree is gone");
});

async function watchFrame(timeout = 120000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if (await frame.locator("body[data-watch-ready=true] #watch-status").count()) return frame;
      } catch {
        /* frame navigating */
      }
    }
    await page.waitForTimeout(500);
  }
  throw new Error("the live watch webview never appeared");
}

test("Watch Training Run: the live chart updates while the script trains, Stop ends its process tree", { timeout: 300000 }, async () => {
  const WATCHED = "train_watch.py";
  const watchProcs = () => probeProcesses().filter((l) => l.includes(WATCHED));
  await clearNotifications();
  const restricted = await page
    .locator(".statusbar-item", { hasText: "Restricted Mode" })
    .first()
    .waitFor({ timeout: ONLY ? 30000 : 1000 })
    .then(() => true, () => false);
  if (restricted) {
    // run on its own (TORCHSANITY_E2E_ONLY): trust the workspace as the probe test does
    setUserSetting("torchsanity.interpreter", PYTHON);
    await page.waitForTimeout(1500);
    await runCommand("Workspaces: Manage Workspace Trust");
    await page.locator(".workspace-trust-editor .monaco-button", { hasText: /^Trust$/ }).first().click({ timeout: 20000 });
    await page.waitForTimeout(2000);
    await page.keyboard.press("Control+W");
  }
  await step("open the script", () => openFile(WATCHED));
  await step("the Watch Training Run lens next to Run Sanity Probe", async () => {
    await gotoLine(mainGuardLine(WATCHED));
    await page.locator(".codelens-decoration a", { hasText: "Watch Training Run" }).first().waitFor({ timeout: 60000 });
    assert.ok(await page.locator(".codelens-decoration a", { hasText: "Run Sanity Probe" }).count());
  });
  await step("run the command from the palette", () => runCommand("Torch Sanity: Watch Training Run"));
  const frame = await step("live webview", () => watchFrame());
  // the loss chart is the first chart; Chart.js is the page's own (the extension's copy, loaded by nonce)
  const points = () => frame.evaluate(() => {
    const chart = globalThis.Chart?.getChart(document.querySelector('canvas[data-chart="0"]'));
    return chart ? chart.data.datasets[0].data.length : -1;
  });
  const stepOf = async () => Number(await frame.locator("body").getAttribute("data-watch-step")) || 0;
  const first = await step("first steps arrive", async () => {
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline && (await stepOf()) < 5) await page.waitForTimeout(500);
    return { step: await stepOf(), points: await points() };
  });
  log("first:", first);
  assert.ok(first.step >= 5 && first.points >= 5, "the loss curve has points");
  assert.ok(watchProcs().length, "the script runs");
  await page.waitForTimeout(4000);
  const later = { step: await stepOf(), points: await points() };
  log("later:", later);
  assert.ok(later.step > first.step && later.points > first.points, "the chart grows while the script trains");
  assert.match(await frame.locator("#watch-status").innerText(), /running · step \d+ · loss [\d.e-]+/);
  await step("screenshot of the live webview", async () => {
    await page.locator(".tab", { hasText: "Watch: train_watch.py" }).first().click();
    await page.waitForTimeout(1000);
    // the editor with its lenses, the progress in the status bar, and the live page
    await page.screenshot({ path: join(SHOTS, "watch-live.png") });
  });
  await step("Stop", () => frame.locator("#stop").click());
  await step("stopped message", () => waitForNotification(/watch of train_watch\.py stopped after \d+ step\(s\)/, 60000));
  const end = Date.now() + 30000;
  while (watchProcs().length && Date.now() < end) await page.waitForTimeout(300);
  assert.deepEqual(watchProcs(), [], "the watched script's process tree is gone");
  await clearNotifications();
});

test("least privilege: the server from the interpreter's environment never imports the workspace's torchsanity", { timeout: 240000 }, async () => {
  // a workspace package that shadows torchsanity and leaves a marker when imported
  const marker = join(WS, "imported-from-the-workspace");
  for (const dir of ["torchsanity", "torchsanity/server"]) {
    mkdirSync(join(WS, dir), { recursive: true });
    for (const file of ["__init__.py", "__main__.py"]) writeFileSync(join(WS, dir, file), `open(${JSON.stringify(marker)}, "w").close()\n`);
  }
  await step("server from the interpreter's environment", async () => {
    setUserSetting("torchsanity.useBundledServer", false);
    await page.waitForTimeout(1500);
  });
  await step("the restarted server runs, isolated, from outside the workspace", async () => {
    const launched = /torchsanity from the interpreter's environment; (\S+) -I -m torchsanity\.server server in (.+)\.\n/;
    const deadline = Date.now() + 120000;
    let log = "";
    while (Date.now() < deadline) {
      log = extensionLog();
      const m = launched.exec(log);
      if (m && log.slice(m.index).includes("Server running.")) {
        assert.equal(m[1], PYTHON);
        assert.ok(!m[2].startsWith(WS), `working directory ${m[2]} is outside the workspace`);
        break;
      }
      await page.waitForTimeout(500);
    }
    assert.match(log.slice(-4000), launched, "the extension's log shows the isolated launch");
    await openFile(SCRIPT);
    await waitForProblems((t) => t.includes("SAN601"), 60000);
  });
  assert.equal(existsSync(marker), false, "the workspace's torchsanity package was imported");
  setUserSetting("torchsanity.useBundledServer", undefined);
});
