import assert from "node:assert/strict";
import { test } from "node:test";
import { RestartScheduler } from "../../../extension/src/restart";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test("one restart at a time; requests during a restart coalesce into one follow-up", async () => {
  const runs: string[][] = [];
  let active = 0;
  let maxActive = 0;
  const gates = [deferred(), deferred()];
  const s = new RestartScheduler(async (reasons) => {
    active++;
    maxActive = Math.max(maxActive, active);
    runs.push(reasons);
    await gates[runs.length - 1]?.promise;
    active--;
  }, 10);
  const a = s.request("activation");
  const b = s.request("settings");
  const c = s.request("command");
  assert.equal(b, c, "queued requests share one promise");
  gates[0].resolve();
  await a;
  gates[1].resolve();
  await b;
  assert.deepEqual(runs, [["activation"], ["settings", "command"]]);
  assert.equal(maxActive, 1);
  assert.equal(s.busy, false);
});

test("a failing restart does not block the next", async () => {
  let n = 0;
  const s = new RestartScheduler(async () => {
    n++;
    if (n === 1) throw new Error("no interpreter");
  }, 10);
  await assert.rejects(s.request("first"));
  await s.request("second");
  assert.equal(n, 2);
});

test("debounced requests in a burst become one restart", async () => {
  const runs: string[][] = [];
  const s = new RestartScheduler(async (reasons) => {
    runs.push(reasons);
  }, 20);
  const ps = [s.requestDebounced("a"), s.requestDebounced("b"), s.requestDebounced("c")];
  await Promise.all(ps);
  assert.equal(runs.length, 1);
  assert.deepEqual(runs[0], ["a", "b", "c"]);
  s.dispose();
});
