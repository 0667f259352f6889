import assert from "node:assert/strict";
import { test } from "node:test";
import { toRunProbeParams, toServerSettings, type Getter } from "../../../extension/src/settings";

function getterOf(values: Record<string, unknown>): Getter {
  return <T>(key: string) => values[key] as T | undefined;
}

test("defaults map to an empty, on-type configuration", () => {
  assert.deepEqual(toServerSettings(getterOf({})), {
    enable: true,
    select: [],
    ignore: [],
    severity: {},
    run: "onType",
    probe: { args: [], checks: [], timeout: 300, device: "auto" },
  });
});

test("codes are normalised, deduplicated and validated", () => {
  const s = toServerSettings(getterOf({ select: ["san1", "SAN601", "SAN601", "bogus", 3], ignore: [" san401 "] }));
  assert.deepEqual(s.select, ["SAN1", "SAN601"]);
  assert.deepEqual(s.ignore, ["SAN401"]);
});

test("severity overrides: aliases accepted, 'off' becomes ignore, junk dropped", () => {
  const s = toServerSettings(
    getterOf({ ignore: ["SAN101"], severity: { san504: "Error", SAN401: "info", SAN703: "off", SAN101: "off", SAN9: "loud", nope: "error" } }),
  );
  assert.deepEqual(s.severity, { SAN504: "error", SAN401: "information" });
  assert.deepEqual(s.ignore, ["SAN101", "SAN703"]);
});

test("run on save, probe settings clamped", () => {
  const s = toServerSettings(
    getterOf({ run: "onSave", "probe.timeout": 1, "probe.device": "cuda", "probe.checks": ["overfit-batch", "nope"], "probe.args": ["--epochs", 1] }),
  );
  assert.equal(s.run, "onSave");
  assert.deepEqual(s.probe, { args: ["--epochs"], checks: ["overfit-batch"], timeout: 5, device: "cuda" });
  assert.equal(toServerSettings(getterOf({ run: "whenever", "probe.device": "tpu" })).run, "onType");
  assert.equal(toServerSettings(getterOf({ "probe.device": "tpu" })).probe.device, "auto");
  assert.equal(toServerSettings(getterOf({ enable: false })).enable, false);
});

test("runProbe params follow the server contract {uri, checks?, args?, python?, timeout, device, workDoneToken}", () => {
  const p = toRunProbeParams("file:///w/train.py", "/usr/bin/python3", getterOf({ "probe.args": ["--lr", "0.1"] }), "tok-1");
  assert.deepEqual(p, {
    uri: "file:///w/train.py",
    python: "/usr/bin/python3",
    args: ["--lr", "0.1"],
    timeout: 300,
    device: "auto",
    workDoneToken: "tok-1",
  });
  assert.deepEqual(toRunProbeParams("u", "p", getterOf({ "probe.checks": ["lr-range"] })).checks, ["lr-range"]);
});
