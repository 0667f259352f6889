import assert from "node:assert/strict";
import { test } from "node:test";
import { initializationOptions, toRunProbeParams, type Getter } from "../../../extension/src/settings";

function getterOf(values: Record<string, unknown>): Getter {
  return <T>(key: string) => values[key] as T | undefined;
}

test("runProbe params: uri, interpreter, token, and the probe settings forwarded as they are", () => {
  const p = toRunProbeParams(
    "file:///w/train.py",
    "/usr/bin/python3",
    getterOf({ "probe.args": ["--lr", "0.1"], "probe.checks": [], "probe.timeout": 300, "probe.device": "auto", "probe.openReport": false }),
    "tok-1",
  );
  assert.deepEqual(p, {
    uri: "file:///w/train.py",
    python: "/usr/bin/python3",
    workDoneToken: "tok-1",
    args: ["--lr", "0.1"],
    checks: [],
    timeout: 300,
    device: "auto",
  });
});

test("runProbe params are not validated here: the server decides (and explains) what it refuses", () => {
  const p = toRunProbeParams("u", "p", getterOf({ "probe.device": "tpu", "probe.timeout": "soon", "probe.checks": ["nope"] }), "t");
  assert.equal(p.device, "tpu");
  assert.equal(p.timeout, "soon");
  assert.deepEqual(p.checks, ["nope"]);
  assert.deepEqual(Object.keys(toRunProbeParams("u", "p", getterOf({}), "t")), ["uri", "python", "workDoneToken"]);
});

test("initializationOptions carry the raw section and the workspace trust", () => {
  const section = { severity: { SAN504: "hint" }, probe: { timeout: 5 } };
  assert.deepEqual(initializationOptions(section, false), { settings: section, workspaceTrusted: false });
  assert.equal(initializationOptions({}, true).workspaceTrusted, true);
});
