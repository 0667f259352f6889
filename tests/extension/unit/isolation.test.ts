// Least privilege, with a real interpreter: a workspace holding its own `torchsanity/` package (and naming itself on
// PYTHONPATH) must not get that package imported when the extension starts the server from the interpreter's
// environment (`torchsanity.useBundledServer` off, or no bundled launcher). The launch is the one server.ts uses:
// serverLaunch() with the working directory from isolatedCwd(). Needs an interpreter with torchsanity installed
// (TORCHSANITY_E2E_PYTHON, else .venv/bin/python); skipped without one.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isolatedCwd, serverLaunch, type PythonLaunch } from "../../../extension/src/python";

const ROOT = join(__dirname, "../..");
const PYTHON = process.env.TORCHSANITY_E2E_PYTHON || join(ROOT, ".venv/bin/python");

function hasTorchsanity(python: string): boolean {
  try {
    execFileSync(python, ["-I", "-c", "import torchsanity.server"], { cwd: tmpdir(), stdio: "ignore", timeout: 30000 });
    return true;
  } catch {
    return false;
  }
}

/** A workspace whose `torchsanity` package leaves a marker file when it is imported. */
function hostileWorkspace(): { dir: string; marker: string } {
  const dir = mkdtempSync(join(tmpdir(), "torchsanity-hostile-ws-"));
  const marker = join(dir, "imported-from-the-workspace");
  const plant = `open(${JSON.stringify(marker)}, "w").close()\n`;
  mkdirSync(join(dir, "torchsanity", "server"), { recursive: true });
  writeFileSync(join(dir, "torchsanity", "__init__.py"), plant);
  writeFileSync(join(dir, "torchsanity", "server", "__init__.py"), plant);
  writeFileSync(join(dir, "torchsanity", "server", "__main__.py"), plant);
  return { dir, marker };
}

/** Starts `launch`, waits for its answer to `initialize` (or its exit), then stops it. */
async function initializeAnswer(launch: PythonLaunch, env: NodeJS.ProcessEnv): Promise<unknown> {
  const child = spawn(launch.command, launch.args, { cwd: launch.cwd, env, stdio: ["pipe", "pipe", "pipe"] });
  try {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { processId: null, rootUri: null, capabilities: {} } });
    child.stdin.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    let out = "";
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 60000);
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString("utf8");
        const start = out.indexOf("\r\n\r\n");
        if (start >= 0 && out.includes('"id"')) {
          clearTimeout(timer);
          try {
            resolve(JSON.parse(out.slice(start + 4)));
          } catch {
            resolve(out);
          }
        }
      });
      child.on("exit", () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

const skip = !existsSync(PYTHON) ? `no interpreter at ${PYTHON}` : !hasTorchsanity(PYTHON) ? `${PYTHON} has no torchsanity` : false;

test("the server from the interpreter's environment never imports the workspace's torchsanity", { skip, timeout: 150000 }, async () => {
  const { dir, marker } = hostileWorkspace();
  const storage = mkdtempSync(join(tmpdir(), "torchsanity-storage-"));
  const env = { ...process.env, PYTHONPATH: dir };
  try {
    const launch = serverLaunch({ python: PYTHON, useBundled: false, launcher: join(storage, "absent.py"), cwd: isolatedCwd([storage, tmpdir()], [dir]) });
    const answer = (await initializeAnswer(launch, env)) as { result?: { serverInfo?: { name?: string } } } | undefined;
    assert.ok(answer?.result, `the real server answered initialize: ${JSON.stringify(answer)}`);
    assert.equal(existsSync(marker), false, "the workspace's torchsanity package was imported");

    // the launch this replaces (no -I, from the workspace folder) does import it: the test sees the defect
    const unsafe: PythonLaunch = { ...launch, args: launch.args.filter((a) => a !== "-I"), cwd: dir };
    await initializeAnswer(unsafe, env);
    assert.equal(existsSync(marker), true, "control: without -I, from the workspace, the workspace package is imported");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(storage, { recursive: true, force: true });
  }
});
