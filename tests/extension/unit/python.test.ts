import assert from "node:assert/strict";
import { test } from "node:test";
import {
  NoInterpreterError,
  checkInterpreterInfo,
  expandPath,
  interpreterCheckLaunch,
  isolatedCwd,
  resolveInterpreter,
  serverLaunch,
  whichSync,
  type InterpreterInputs,
} from "../../../extension/src/python";

function inputs(over: Partial<InterpreterInputs>): InterpreterInputs {
  return {
    setting: "",
    trusted: true,
    pythonExtensionInstalled: false,
    pythonExtensionInterpreter: async () => undefined,
    which: (name) => (name === "python3" ? "/usr/bin/python3" : undefined),
    platform: "linux",
    env: {},
    homedir: "/home/u",
    ...over,
  };
}

test("the setting wins over the Python extension and PATH", async () => {
  let asked = false;
  const r = await resolveInterpreter(
    inputs({
      setting: "~/venvs/t/bin/python",
      pythonExtensionInstalled: true,
      pythonExtensionInterpreter: async () => {
        asked = true;
        return "/ext/python";
      },
    }),
  );
  assert.deepEqual(r, { path: "/home/u/venvs/t/bin/python", source: "setting" });
  assert.equal(asked, false);
});

test("the Python extension's interpreter comes second", async () => {
  const r = await resolveInterpreter(inputs({ pythonExtensionInstalled: true, pythonExtensionInterpreter: async () => "/ext/python" }));
  assert.equal(r.path, "/ext/python");
  assert.equal(r.source, "python-extension");
  assert.equal(r.note, undefined);
});

test("without the Python extension: python3 on PATH, with a note to say once", async () => {
  const r = await resolveInterpreter(inputs({}));
  assert.equal(r.path, "/usr/bin/python3");
  assert.equal(r.source, "path");
  assert.match(r.note!, /Python extension is not installed.*python3 on PATH/);
});

test("the Python extension failing or having no interpreter falls back to PATH", async () => {
  const failing = await resolveInterpreter(
    inputs({ pythonExtensionInstalled: true, pythonExtensionInterpreter: async () => Promise.reject(new Error("boom")) }),
  );
  assert.equal(failing.source, "path");
  assert.match(failing.note!, /did not answer \(boom\)/);
  const none = await resolveInterpreter(inputs({ pythonExtensionInstalled: true }));
  assert.equal(none.source, "path");
  assert.match(none.note!, /no interpreter selected/);
});

test("in Restricted Mode the Python extension (workspace-chosen) interpreter is never asked", async () => {
  let asked = false;
  const r = await resolveInterpreter(
    inputs({
      trusted: false,
      pythonExtensionInstalled: true,
      pythonExtensionInterpreter: async () => {
        asked = true;
        return "/ws/.venv/bin/python";
      },
    }),
  );
  assert.equal(asked, false);
  assert.equal(r.path, "/usr/bin/python3");
  assert.match(r.note!, /Restricted Mode/);
});

test("python is tried after python3, and nothing at all is a clear error", async () => {
  const r = await resolveInterpreter(inputs({ which: (n) => (n === "python" ? "/opt/python" : undefined) }));
  assert.equal(r.path, "/opt/python");
  await assert.rejects(resolveInterpreter(inputs({ which: () => undefined })), (e: unknown) => {
    assert.ok(e instanceof NoInterpreterError);
    assert.match((e as Error).message, /torchsanity\.interpreter/);
    return true;
  });
});

test("expandPath expands ~, ${userHome} and ${env:X}", () => {
  assert.equal(expandPath("~/py", {}, "/h"), "/h/py");
  assert.equal(expandPath("${userHome}/py", {}, "/h"), "/h/py");
  assert.equal(expandPath("${env:VENV}/bin/python", { VENV: "/v" }, "/h"), "/v/bin/python");
  assert.equal(expandPath("  /abs/python  ", {}, "/h"), "/abs/python");
});

test("whichSync walks PATH in order", () => {
  const exe = new Set(["/b/python3", "/c/python3"]);
  assert.equal(whichSync("python3", { PATH: "/a:/b:/c" }, "linux", (p) => exe.has(p)), "/b/python3");
  assert.equal(whichSync("python3", { PATH: "" }, "linux", () => true), undefined);
});

test("interpreter versions outside 3.10–3.13 are refused with a message", () => {
  assert.equal(checkInterpreterInfo('{"version":[3,11,7],"executable":"/p"}').error, undefined);
  assert.match(checkInterpreterInfo('{"version":[3,9,1],"executable":"/p"}').error!, /3\.9 is not supported/);
  assert.match(checkInterpreterInfo('{"version":[3,14,0],"executable":"/p"}').error!, /not supported/);
  assert.match(checkInterpreterInfo("garbage").error!, /could not read/);
});

// ------------------------------------------------------------------------------------------------ how Python starts

const WS = ["/home/u/project"];
const LAUNCHER = "/ext/extension/bundled/launch.py";

test("every way of starting Python is isolated (-I) and runs outside the workspace", () => {
  const cwd = isolatedCwd(["/home/u/.config/Code/User/globalStorage/torchsanity.torchsanity", "/tmp"], WS);
  const launches = [
    serverLaunch({ python: "/py", useBundled: true, launcher: LAUNCHER, cwd, exists: () => true }),
    serverLaunch({ python: "/py", useBundled: true, launcher: LAUNCHER, cwd, exists: () => false }), // launcher missing
    serverLaunch({ python: "/py", useBundled: false, launcher: LAUNCHER, cwd, exists: () => true }),
    interpreterCheckLaunch("/py", cwd),
  ];
  for (const launch of launches) {
    assert.equal(launch.command, "/py");
    assert.equal(launch.args[0], "-I", `${launch.description}: ${launch.args.join(" ")}`);
    assert.ok(!launch.cwd.startsWith("/home/u/project"), launch.cwd);
  }
  assert.deepEqual(launches[0].args, ["-I", LAUNCHER, "server"]);
  assert.deepEqual(launches[1].args, ["-I", "-m", "torchsanity.server", "server"]);
  assert.match(launches[1].note!, /No bundled server/);
  assert.deepEqual(launches[2].args, ["-I", "-m", "torchsanity.server", "server"]);
  assert.equal(launches[2].note, undefined);
});

test("the working directory is the first candidate outside every workspace folder", () => {
  const storage = "/home/u/.config/Code/User/globalStorage/torchsanity.torchsanity";
  assert.equal(isolatedCwd([storage, "/tmp"], WS), storage);
  // a workspace that contains the storage (the home folder opened as a workspace): the temp directory
  assert.equal(isolatedCwd([storage, "/tmp", "/"], ["/srv/a", "/home/u"]), "/tmp");
  assert.equal(isolatedCwd([storage, "/tmp/x", "/"], ["/home", "/tmp"]), "/");
  // a sibling whose name starts like the folder is outside it
  assert.equal(isolatedCwd(["/home/u/project-tools"], WS), "/home/u/project-tools");
});
