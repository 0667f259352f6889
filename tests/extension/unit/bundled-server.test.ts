// The packaged server, as the extension starts it (`<python> -I extension/bundled/launch.py server`), with every
// CPython 3.10–3.13 found on this machine: each must answer initialize and publish SAN diagnostics with no pip
// step (-I: no user site, no PYTHONPATH; the bundled libraries come first on sys.path).
// Needs `npm run bundle:python` (part of `npm run package`); skipped when extension/bundled is missing.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { whichSync } from "../../../extension/src/python";

const ROOT = join(__dirname, "../..");
const LAUNCH = join(ROOT, "extension/bundled/launch.py");
const FIXTURE = join(ROOT, "tests/extension/e2e/workspace/train_buggy.py");

function versionOf(python: string): string | undefined {
  try {
    return execFileSync(python, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], { encoding: "utf8", timeout: 20000, stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

/** Python 3.10–3.13 interpreters on this machine (pyenv versions, pythonX.Y on PATH, python3). */
function interpreters(): Map<string, string> {
  const candidates: string[] = [];
  const pyenv = join(process.env.PYENV_ROOT ?? join(homedir(), ".pyenv"), "versions");
  if (existsSync(pyenv)) {
    for (const d of readdirSync(pyenv).sort()) candidates.push(join(pyenv, d, "bin/python"));
  }
  for (const name of ["python3.10", "python3.11", "python3.12", "python3.13", "python3"]) {
    const p = whichSync(name);
    if (p) candidates.push(p);
  }
  const found = new Map<string, string>();
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const v = versionOf(c);
    if (v && /^3\.1[0-3]$/.test(v) && !found.has(v)) found.set(v, c);
  }
  return found;
}

function frame(msg: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(msg), "utf8");
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]);
}

async function diagnosticsFrom(python: string): Promise<{ codes: string[]; exitCode: number | null }> {
  const child = spawn(python, ["-I", LAUNCH, "server"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const messages: any[] = [];
  let buf = Buffer.alloc(0);
  let notify: (() => void) | undefined;
  child.stdout.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const headerEnd = buf.indexOf("\r\n\r\n");
      if (headerEnd < 0) break;
      const length = Number(/Content-Length: (\d+)/i.exec(buf.subarray(0, headerEnd).toString())?.[1]);
      if (buf.length < headerEnd + 4 + length) break;
      messages.push(JSON.parse(buf.subarray(headerEnd + 4, headerEnd + 4 + length).toString("utf8")));
      buf = buf.subarray(headerEnd + 4 + length);
      notify?.();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const waitFor = async (pred: (m: any) => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = messages.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no matching message; stderr:\n${stderr.slice(-2000)}`);
      await new Promise<void>((r) => {
        notify = r;
        setTimeout(r, 200);
      });
    }
  };
  let dir: string | undefined;
  try {
    // outside the repository: its pyproject.toml excludes tests/ from analysis
    dir = mkdtempSync(join(tmpdir(), "torchsanity-bundled-"));
    const script = join(dir, "train.py");
    writeFileSync(script, readFileSync(FIXTURE, "utf8"));
    const uri = "file://" + script;
    child.stdin.write(frame({ jsonrpc: "2.0", id: 1, method: "initialize", params: { processId: process.pid, rootUri: null, capabilities: {} } }));
    await waitFor((m) => m.id === 1, 60000);
    child.stdin.write(frame({ jsonrpc: "2.0", method: "initialized", params: {} }));
    child.stdin.write(
      frame({
        jsonrpc: "2.0",
        method: "textDocument/didOpen",
        params: { textDocument: { uri, languageId: "python", version: 1, text: readFileSync(FIXTURE, "utf8") } },
      }),
    );
    const published = await waitFor((m) => m.method === "textDocument/publishDiagnostics" && m.params.uri === uri, 60000);
    child.stdin.write(frame({ jsonrpc: "2.0", id: 2, method: "shutdown", params: null }));
    await waitFor((m) => m.id === 2, 20000);
    child.stdin.write(frame({ jsonrpc: "2.0", method: "exit", params: null }));
    const exitCode = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 10000))]);
    return { codes: published.params.diagnostics.map((d: any) => String(d.code)), exitCode };
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

const found = interpreters();
for (const v of ["3.10", "3.11", "3.12", "3.13"]) {
  const python = found.get(v);
  const skip = !existsSync(LAUNCH) ? "extension/bundled is not built (npm run bundle:python)" : !python ? `no Python ${v} on this machine` : false;
  test(`bundled server gives diagnostics under Python ${v} with no pip step`, { skip, timeout: 120000 }, async () => {
    const { codes, exitCode } = await diagnosticsFrom(python!);
    for (const code of ["SAN101", "SAN504", "SAN601"]) assert.ok(codes.includes(code), `${code} in ${codes.join(", ")}`);
    assert.equal(exitCode, 0, "the server exits cleanly after shutdown/exit");
  });
}

test("an interpreter the bundle does not cover gets a clear message and exit code 3", { skip: !existsSync(LAUNCH) }, () => {
  // a Python the bundle lacks: run the launcher with its libs/ hidden behind an empty copy of the folder
  const python = [...found.values()][0];
  if (!python) return;
  const dir = mkdtempSync(join(tmpdir(), "torchsanity-launch-"));
  try {
    writeFileSync(join(dir, "launch.py"), readFileSync(LAUNCH, "utf8"));
    let stderr = "";
    let status = 0;
    try {
      execFileSync(python, ["-I", join(dir, "launch.py"), "server"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 20000 });
    } catch (err: any) {
      stderr = String(err.stderr);
      status = err.status;
    }
    assert.equal(status, 3);
    assert.match(stderr, /is not supported by this build of the extension/);
    assert.match(stderr, /torchsanity\.interpreter/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
