#!/usr/bin/env node
// An A/B of two builds in one small room, interleaved finely enough that a shared,
// noisy machine loads both alike: both servers run at once (pinned to the same CPU), each
// with one room of N subscribers and a publisher, and short measured phases alternate
// between them (A B B A A B ...). Per phase: deliveries, the server's CPU seconds, p50/p99.
// The answer is deliveries per server CPU-second of each, summed over its phases, and B/A.
//
//   git worktree add /tmp/base <commit> && mkdir /tmp/base/node_modules /tmp/base/node_modules/@roomcast
//   for m in node_modules/* node_modules/.bin; do [ "$m" = node_modules/@roomcast ] || ln -s "$PWD/$m" /tmp/base/$m; done
//   for p in protocol client; do ln -s /tmp/base/packages/$p /tmp/base/node_modules/@roomcast/$p; done
// (a plain link to this checkout's node_modules would bundle this checkout's packages/protocol
// into the baseline too: its @roomcast/* entries point here.)
//   PATH=$PWD/node_modules/.bin:$PATH ROOMCAST_BASELINE_DIR=/tmp/base \
//     node bench/ab-interleaved.mjs --subscribers 10 --rate 200 --rounds 16
//
// A is roomcast-direct-baseline (built from $ROOMCAST_BASELINE_DIR), B roomcast-direct (this
// checkout), unless --a / --b name other adapters (bench/adapters/). The project's Node 22
// must come first on PATH (wrangler needs it). Keep the rate where the room does not fall
// behind (p50 of a few ms): a room that is behind batches, and then sends fewer frames per
// delivery the slower it is, which rewards the slower build.
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { connectMany, DeliveryTracker, openLoop, payloadFactory } from "./lib/loadgen.mjs";
import { freePort, sleep } from "./lib/net.mjs";
import { delta, sample } from "./lib/sampler.mjs";
import { LOADGEN_CPUS, SERVER_CPUS } from "./lib/scenarios.mjs";

const { values: o } = parseArgs({
  options: {
    a: { type: "string", default: "roomcast-direct-baseline" },
    b: { type: "string", default: "roomcast-direct" },
    subscribers: { type: "string", default: "10" },
    rate: { type: "string", default: "1000" },
    payload: { type: "string", default: "100" },
    phase: { type: "string", default: "3" },
    rounds: { type: "string", default: "6" },
  },
});
const subscribers = Number(o.subscribers);
const rate = Number(o.rate);
const phaseS = Number(o.phase);
const rounds = Number(o.rounds);
const log = (line) => console.error(line);
try {
  execFileSync("taskset", ["-p", "-c", LOADGEN_CPUS, String(process.pid)], { stdio: "ignore" });
} catch {
  log("taskset unavailable; running unpinned");
}

const sides = [];
for (const name of [o.a, o.b]) {
  const adapter = (await import(`./adapters/${name}.mjs`)).default;
  const server = await adapter.start({ port: await freePort(), cpus: SERVER_CPUS, log });
  const side = { name, adapter, server, tracker: new DeliveryTracker(), phases: [] };
  const room = `ab-${name}-${Date.now().toString(36)}`;
  const specs = Array.from({ length: subscribers }, (_, i) => ({ room, user: `sub-${i}` }));
  side.conn = await connectMany(adapter, server.url, specs, { onMessage: (data) => side.tracker.deliver(data.i), log });
  side.publisher = await adapter.connect({ url: server.url, room, user: "publisher", onMessage: () => {} });
  side.receivers = side.conn.connections.length;
  sides.push(side);
}
const make = payloadFactory(Number(o.payload));
let key = 0;
const phase = async (side, measured) => {
  side.tracker = new DeliveryTracker();
  side.tracker.recording = measured;
  const before = sample(side.server.pids());
  const loop = await openLoop({
    rate,
    durationMs: phaseS * 1000,
    publish: (_i, t) => {
      const k = key++;
      side.tracker.expect(k, t, side.receivers);
      side.publisher.publish(make(k, t));
    },
  });
  await side.tracker.drain(10_000);
  const used = delta(before, sample(side.server.pids()));
  const s = side.tracker.summary();
  return { published: loop.sent, delivered: s.delivered, lost: s.lost, cpuSeconds: used.cpuSeconds, p50: s.latencyMs.p50, p99: s.latencyMs.p99 };
};

try {
  for (const side of sides) await phase(side, false); // warm-up: JIT, first-message costs
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const p = await phase(side, true);
      side.phases.push(p);
      log(`round ${r + 1} ${side.name}: ${p.delivered} delivered (lost ${p.lost}) in ${p.cpuSeconds.toFixed(2)} CPU-s = ${Math.round(p.delivered / p.cpuSeconds)} per CPU-s, p50 ${p.p50} ms, p99 ${p.p99} ms`);
      await sleep(300);
    }
  }
  const total = (side) => {
    const delivered = side.phases.reduce((s, p) => s + p.delivered, 0);
    const cpu = side.phases.reduce((s, p) => s + p.cpuSeconds, 0);
    const lost = side.phases.reduce((s, p) => s + p.lost, 0);
    const sorted = (k) => side.phases.map((p) => p[k]).filter((x) => x !== null).sort((a, b) => a - b);
    const median = (xs) => xs[Math.floor(xs.length / 2)] ?? null;
    return { system: side.name, delivered, lost, cpuSeconds: Math.round(cpu * 100) / 100, perCpuSecond: Math.round(delivered / cpu), medianP50: median(sorted("p50")), medianP99: median(sorted("p99")) };
  };
  const [a, b] = sides.map(total);
  const perRound = sides[0].phases.map((pa, i) => {
    const pb = sides[1].phases[i];
    return Math.round((pb.delivered / pb.cpuSeconds / (pa.delivered / pa.cpuSeconds)) * 100) / 100;
  });
  const result = { subscribers, rate, payloadBytes: Number(o.payload), phaseSeconds: phaseS, rounds, a, b, ratioBOverA: Math.round((b.perCpuSecond / a.perCpuSecond) * 100) / 100, perRoundRatios: perRound };
  console.log(JSON.stringify(result, null, 2));
} finally {
  for (const side of sides) {
    for (const c of [...side.conn.connections, side.publisher]) {
      try {
        c.close();
      } catch {
        // gone
      }
    }
    await side.server.stop();
  }
}
