// The smoke run's plan split (bench/lib/smoke.mjs): every job runs once, in lanes of about
// the same length, and jobs that share a server really share one.
import assert from "node:assert/strict";
import { test } from "node:test";
import { sharedServer, smokeLanes } from "../bench/lib/smoke.mjs";

const SCENARIOS = ["fanout", "rooms", "ramp", "memory", "wake", "storm", "presence", "slow", "ephemeral", "compression"];
const OTHERS = ["roomcast", "partyserver", "partyserver-direct", "bare-do-direct", "socketio", "ws"];
const plan = [
  ...OTHERS.slice(0, 1).map((system) => ({ system, job: { name: "fanout" } })),
  ...SCENARIOS.map((name) => ({ system: "roomcast-direct", job: { name } })),
  ...OTHERS.slice(1).map((system) => ({ system, job: { name: "fanout" } })),
];

test("every job of the plan is in exactly one lane, once", () => {
  for (const count of [1, 2, 3, 5, 40]) {
    const lanes = smokeLanes(plan, count);
    assert.ok(lanes.length >= 1 && lanes.length <= count);
    const seen = lanes.flat().filter(Boolean);
    assert.equal(seen.length, plan.length);
    assert.deepEqual(new Set(seen), new Set(plan));
  }
});

test("one lane runs each system's jobs together, in the plan's order, on one server each", () => {
  const [lane] = smokeLanes(plan, 1);
  assert.deepEqual(lane.filter((e) => e?.system === "roomcast-direct").map((e) => e.job.name), SCENARIOS);
  assert.equal(lane.filter((e) => e === null).length, OTHERS.length); // one marker between two systems
});

test("three lanes split roomcast-direct's long chain and keep each run on one system", () => {
  const lanes = smokeLanes(plan, 3);
  assert.equal(lanes.length, 3);
  const withDirect = lanes.filter((lane) => lane.some((e) => e?.system === "roomcast-direct"));
  assert.ok(withDirect.length >= 2, "roomcast-direct's jobs are in more than one lane");
  for (const lane of lanes) {
    // Between two markers, one system only (one server).
    const runs = [[]];
    for (const e of lane) e ? runs.at(-1).push(e.system) : runs.push([]);
    for (const r of runs) assert.equal(new Set(r).size, 1, `a run mixes systems: ${r.join(",")}`);
  }
  // Jobs of one system keep their relative order across the split.
  for (const lane of lanes) {
    const mine = lane.filter((e) => e?.system === "roomcast-direct").map((e) => SCENARIOS.indexOf(e.job.name));
    assert.deepEqual(mine, [...mine].sort((a, b) => a - b));
  }
});

test("a shared server starts once, survives the scenarios' stop and stops once", async () => {
  let starts = 0;
  let stops = 0;
  const adapter = {
    name: "fake",
    presence: true,
    start: async () => ({ url: `http://127.0.0.1:${++starts}`, pids: () => [starts], stop: async () => void stops++ }),
  };
  const shared = sharedServer(adapter);
  assert.equal(shared.adapter.name, "fake");
  assert.equal(shared.adapter.presence, true);
  const a = await shared.adapter.start({});
  await a.stop();
  const b = await shared.adapter.start({});
  await b.stop();
  assert.equal(starts, 1);
  assert.equal(stops, 0);
  assert.equal(a.url, b.url);
  await shared.stop();
  assert.equal(stops, 1);
  await shared.stop();
  assert.equal(stops, 1);
  const c = await shared.adapter.start({});
  assert.equal(starts, 2);
  assert.notEqual(c.url, a.url);
});
