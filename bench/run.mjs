#!/usr/bin/env node
// Roomcast benchmarks: the same open-loop load generator against Roomcast (through
// `wrangler dev` and directly on workerd), partyserver on workerd, Socket.IO 4.8 and
// a raw `ws` broadcast server. `npm run bench -- --help` for the options.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, totalmem, release } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { writeRun } from "./lib/report.mjs";
import * as scenarios from "./lib/scenarios.mjs";
import { sharedServer, smokeLanes } from "./lib/smoke.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const SYSTEMS = ["roomcast", "roomcast-direct", "roomcast-direct-unbatched", "roomcast-direct-delay", "roomcast-direct-presence0", "roomcast-direct-baseline", "roomcast-direct-fixed", "partyserver", "partyserver-direct", "bare-do-direct", "socketio", "ws"];
const SCENARIOS = ["fanout", "rooms", "ramp", "memory", "wake", "storm", "presence", "slow", "ephemeral", "compression"];

// What the single-purpose profiles (ab, hot, overload) use for the scenarios they are not about.
const SHORT = {
  memory: { sizes: [1_000], perRoom: 100, settleS: 3 },
  wake: { subscribers: 10, idleS: 15 },
  storm: { clients: 500, jitterMs: 2_000 },
  presence: { clients: 500 },
  slow: { subscribers: 10, rate: 100, payloadBytes: 1_024, prefill: 2_000, historyRequests: 30, beforeS: 2, stallS: 8, afterS: 2 },
  ephemeral: { subscribers: 100, payloadBytes: 100, rate: 200, durationS: 3, warmupS: 1 },
  compression: { subscribers: 50, rate: 100, durationS: 3, warmupS: 1, rounds: 2 },
};

const PROFILES = {
  full: {
    // 9,000: the largest room one workerd process can hold under a 20,000 descriptor limit.
    fanout: { sizes: [10, 100, 1_000, 9_000, 10_000], payloads: [100, 1_024], durationS: 10, warmupS: 3, deliveriesPerSecond: 20_000 },
    rooms: [
      { rooms: 1_000, perRoom: 50, ratePerRoom: 1, payloadBytes: 100, durationS: 10 },
      { rooms: 170, perRoom: 50, ratePerRoom: 1, payloadBytes: 100, durationS: 10 }, // what workerd fits under a 20,000 fd limit
    ],
    ramp: { subscribers: 100, payloadBytes: 100, rates: [10, 20, 50, 100, 200, 400, 800, 1_600, 3_200, 6_400], stepS: 4 },
    memory: { sizes: [1_000, 9_000, 10_000, 50_000], perRoom: 100, idleS: 20 },
    wake: { subscribers: 10, idleS: 15 },
    storm: { clients: 1_000, jitterMs: 2_000 },
    presence: { clients: 1_000 },
    // ~1 KiB payloads; 5,000 pre-filled, so each history answer is HISTORY_PAGE_MAX (500) messages, ~0.55 MB.
    slow: { subscribers: 50, rate: 200, payloadBytes: 1_024, prefill: 5_000, historyRequests: 30, beforeS: 5, stallS: 20, afterS: 5 },
    ephemeral: { subscribers: 100, payloadBytes: 100, rate: 200, durationS: 10, warmupS: 2 },
    compression: { subscribers: 100, rate: 100, durationS: 5, warmupS: 2, rounds: 2 },
  },
  quick: {
    fanout: { sizes: [10, 100, 1_000], payloads: [100, 1_024], durationS: 5, warmupS: 2, deliveriesPerSecond: 20_000 },
    rooms: [{ rooms: 100, perRoom: 50, ratePerRoom: 2, payloadBytes: 100, durationS: 5 }],
    ramp: { subscribers: 100, payloadBytes: 100, rates: [50, 100, 200, 400, 800, 1_600, 3_200], stepS: 3 },
    memory: { sizes: [1_000, 10_000], perRoom: 100 },
    wake: { subscribers: 10, idleS: 15 },
    storm: { clients: 500, jitterMs: 2_000 },
    presence: { clients: 500 },
    slow: { subscribers: 50, rate: 200, payloadBytes: 1_024, prefill: 5_000, historyRequests: 30, beforeS: 3, stallS: 10, afterS: 3 },
    ephemeral: { subscribers: 100, payloadBytes: 100, rate: 200, durationS: 5, warmupS: 2 },
    compression: { subscribers: 50, rate: 100, durationS: 4, warmupS: 1, rounds: 2 },
  },
  // A/B of one change: fan-out and the ramp only, shorter.
  ab: {
    ...SHORT,
    fanout: { sizes: [10, 100, 1_000], payloads: [100], durationS: 5, warmupS: 2, deliveriesPerSecond: 20_000 },
    rooms: [{ rooms: 100, perRoom: 50, ratePerRoom: 2, payloadBytes: 100, durationS: 5 }],
    ramp: { subscribers: 100, payloadBytes: 100, rates: [50, 100, 200, 400, 800, 1_600, 3_200], stepS: 3 },
  },
  // One long 1,000-subscriber fan-out (and a 4,000-client presence storm): something
  // steady to attach a profiler to (see docs/benchmarks.md, "Where the time goes").
  hot: {
    ...SHORT,
    fanout: { sizes: [1_000], payloads: [100], durationS: 30, warmupS: 2, deliveriesPerSecond: 20_000 },
    rooms: [{ rooms: 100, perRoom: 50, ratePerRoom: 20, payloadBytes: 100, durationS: 30 }],
    ramp: { subscribers: 100, payloadBytes: 100, rates: [800], stepS: 30 },
    presence: { clients: 4_000 },
  },
  // The small-room path: one 10-subscriber room at 1,000 msg/s for 30 s, where the
  // per-message work (decode, validation, SQLite append, ack) weighs most (docs/benchmarks.md,
  // "The small-room path"). Attach perf or the inspector to it.
  "hot-small": {
    ...SHORT,
    fanout: { sizes: [10], payloads: [100], durationS: 30, warmupS: 2, deliveriesPerSecond: 10_000 },
  },
  // More than the server can send: 1,000 subscribers × 40 msg/s (twice the usual offered
  // load). Shows whether a room falls behind or batches its way through.
  overload: {
    ...SHORT,
    fanout: { sizes: [1_000], payloads: [100], durationS: 10, warmupS: 2, deliveriesPerSecond: 40_000 },
    rooms: [{ rooms: 100, perRoom: 50, ratePerRoom: 40, payloadBytes: 100, durationS: 10 }],
    ramp: { subscribers: 1_000, payloadBytes: 100, rates: [10, 20, 40, 80], stepS: 4 },
  },
  smoke: {
    fanout: { sizes: [10], payloads: [100], durationS: 1, warmupS: 0.5, deliveriesPerSecond: 500 },
    rooms: [{ rooms: 4, perRoom: 5, ratePerRoom: 5, payloadBytes: 100, durationS: 1 }],
    ramp: { subscribers: 10, payloadBytes: 100, rates: [20, 40], stepS: 1, warmupS: 0.5 },
    memory: { sizes: [50], perRoom: 25, settleS: 1 },
    wake: { subscribers: 3, idleS: 1 },
    storm: { clients: 20, jitterMs: 200 },
    presence: { clients: 20 },
    // 400 pre-filled: 30 answers of ~0.45 MB pass the 8 MiB budget even in 3 s.
    slow: { subscribers: 5, rate: 50, payloadBytes: 1_024, prefill: 400, historyRequests: 30, warmupS: 0.5, beforeS: 1, stallS: 3, afterS: 1, catchUpS: 10 },
    // Tiny: two phases of 0.5 s (plus the server's start).
    ephemeral: { subscribers: 5, payloadBytes: 100, rate: 50, durationS: 0.5, warmupS: 0.2 },
    // Four phases of 0.3 s (one round, both payloads, both modes).
    compression: { subscribers: 3, rate: 50, durationS: 0.3, warmupS: 0.1, rounds: 1 },
  },
};

const usage = `Usage: npm run bench -- [options]

Runs the scenarios against each system, one server at a time, and writes
results.json, results.md and chart.svg to the output folder.

Scenarios (--scenarios, comma-separated; default: all):
  fanout   fan-out latency vs room size: 10, 100, 1,000, 10,000 subscribers, 100 B and 1 KiB
  rooms    many rooms: 1,000 rooms × 50 subscribers = 50,000 connections, a trickle into each
  ramp     throughput ramp: raise the publish rate until p99 passes 8 ms
  memory   memory per idle connection at 1K, 10K, 50K connections, and connect rate
  wake     latency of the first message after a room sat idle long enough to hibernate
  storm    reconnect storm: the server is killed and restarted; time until all are back
  presence presence storm: N listed clients join one room at once, then all leave
           (systems with built-in presence only)
  slow     slow consumer: one subscriber stops reading (TCP paused) and asks for large
           history pages while the others read on; server RSS, the others' latency, and
           whether it comes back (4005 + resume) with every message once (Roomcast only;
           $BENCH_SLOW_HISTORY_REQUESTS changes the number of history requests, default 30)
  ephemeral  the same room and rate as stored publishes, then as ephemeral broadcasts (never
           stored): deliveries per server CPU-second of each (Roomcast only; 100 subscribers
           × 200 msg/s in full, quick and ab)
  compression  permessage-deflate offered (as browsers do) vs not, on chat lines (100-300 B)
           and JSON state (2-4 KB): server CPU and wire bytes per delivery, p50/p99; two
           rooms on one server, phases interleaved. BENCH_DEFLATE=1 makes every client of
           every scenario offer permessage-deflate.

Systems (--systems, comma-separated; default: all):
  roomcast         Roomcast through wrangler dev (with its dev proxy)
  roomcast-direct  Roomcast on workerd directly, no dev proxy (closest to production)
  roomcast-direct-unbatched  the same with live batching off (BROADCAST_BATCHING=off)
  roomcast-direct-delay      the same with BROADCAST_MAX_DELAY_MS=5 (or $BENCH_MAX_DELAY_MS)
  roomcast-direct-presence0  the same with presence coalescing off (PRESENCE_MAX_DELAY_MS=0)
  roomcast-direct-fixed      the same with adaptive batching off (flag adaptive_batching off: the
                             fixed window rules); A/B only, not in the default list
  roomcast-direct-baseline   the same, built from $ROOMCAST_BASELINE_DIR (A/B of two commits)
  partyserver      partyserver (Durable Object peer) on workerd via wrangler dev
  partyserver-direct  partyserver on workerd directly, no dev proxy (compare with roomcast-direct)
  bare-do-direct   a bare Durable Object that only loops send() over its sockets, on workerd
                   directly: the platform's floor (Roomcast's overhead is its distance from it)
  socketio         Socket.IO 4.8, websocket transport, rooms, on Node
  ws               a raw ws broadcast server (the floor)

Options:
  --profile NAME   full (default; the issue's sizes), quick (smaller), ab (quick fan-out
                   and ramp, for comparing two builds), hot (one long 1,000-subscriber
                   fan-out, to attach a profiler to), hot-small (the same for a 10-subscriber
                   room at 1,000 msg/s), overload (1,000 subscribers at twice
                   what the server can send), smoke (tiny, for CI, under a minute: every
                   scenario on roomcast-direct, one fan-out on each other adapter; a
                   system's jobs share one server, $BENCH_SMOKE_LANES (3) lanes at once)
  --smoke          same as --profile smoke
  --out DIR        output folder (default: bench/results/<timestamp>)
  -h, --help       this text

The load generator pins itself to CPU ${scenarios.LOADGEN_CPUS} and every server to CPU ${scenarios.SERVER_CPUS} (taskset).
All traffic stays on loopback; every run is bounded in count and time.`;

let args;
try {
  args = parseArgs({
    options: {
      systems: { type: "string" },
      scenarios: { type: "string" },
      profile: { type: "string" },
      smoke: { type: "boolean" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
} catch (err) {
  console.error(`bench: ${err.message}\n\n${usage}`);
  process.exit(2);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}
const pick = (value, all, what) => {
  const list = value ? value.split(",").map((s) => s.trim()).filter(Boolean) : all;
  for (const item of list) {
    if (!all.includes(item)) {
      console.error(`bench: unknown ${what} "${item}" (known: ${all.join(", ")})`);
      process.exit(2);
    }
  }
  return list;
};
// The baseline needs a second checkout: it runs only when asked for by name.
const systems = args.systems ? pick(args.systems, SYSTEMS, "system") : SYSTEMS.filter((s) => s !== "roomcast-direct-baseline" && s !== "roomcast-direct-fixed");
const chosen = pick(args.scenarios, SCENARIOS, "scenario");
const profileName = args.smoke ? "smoke" : (args.profile ?? "full");
const profile = PROFILES[profileName];
if (!profile) {
  console.error(`bench: unknown profile "${profileName}" (known: ${Object.keys(PROFILES).join(", ")})`);
  process.exit(2);
}

const log = (line) => console.error(line);
try {
  execFileSync("taskset", ["-p", "-c", scenarios.LOADGEN_CPUS, String(process.pid)], { stdio: "ignore" });
} catch {
  log("bench: taskset unavailable; running unpinned (results are noisier)");
}
const fdLimit = Number(/Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))?.[1] ?? 0);

/** The version Node would load from bench/ (its own node_modules first, then the root's). */
function version(pkg) {
  for (const base of [here, root]) {
    try {
      return JSON.parse(readFileSync(join(base, "node_modules", pkg, "package.json"), "utf8")).version;
    } catch {
      // try the next
    }
  }
  return "?";
}
function gitRev() {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

const run = {
  startedAt: new Date().toISOString(),
  command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
  profile: profileName,
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "?", memoryGb: Math.round(totalmem() / 2 ** 30), os: `Linux ${release()}`, fdLimit },
  versions: {
    roomcast: gitRev(),
    node: process.version,
    wrangler: version("wrangler"),
    workerd: version("@cloudflare/workerd-linux-64"),
    partyserver: version("partyserver"),
    "socket.io": version("socket.io"),
    ws: version("ws"),
  },
  pinning: { server: scenarios.SERVER_CPUS, loadgen: scenarios.LOADGEN_CPUS },
  results: [],
};

/** One line for the report: a server's own error line if it printed one, else the message. */
function briefError(err) {
  const message = String(err?.message ?? err);
  const [head, tail = ""] = message.split("--- output (tail) ---");
  const serverSaid = tail.split("\n").reverse().find((line) => /error/i.test(line));
  return (serverSaid ? `${head.split(":").slice(-1)[0].trim()}: ${serverSaid.trim()}` : head.trim()).slice(0, 240);
}

const jobs = [];
for (const name of chosen) {
  const p = profile[name];
  if (name === "fanout") {
    for (const subscribers of p.sizes) {
      for (const payloadBytes of p.payloads) {
        const rate = Math.max(1, Math.min(1_000, Math.round(p.deliveriesPerSecond / subscribers)));
        jobs.push({ name, label: `fanout ${subscribers} subs ${payloadBytes} B @ ${rate}/s`, options: { subscribers, payloadBytes, rate, durationS: p.durationS, warmupS: p.warmupS }, connections: subscribers });
      }
    }
  } else if (name === "memory") {
    for (const connections of p.sizes) jobs.push({ name, label: `memory ${connections} connections`, options: { connections, perRoom: p.perRoom, settleS: p.settleS, idleS: p.idleS }, connections });
  } else if (name === "rooms") {
    for (const config of p) jobs.push({ name, label: `rooms ${config.rooms} × ${config.perRoom}`, options: config, connections: config.rooms * config.perRoom });
  } else if (name === "compression") {
    jobs.push({ name, label: `compression 2 × ${p.subscribers} subs @ ${p.rate}/s`, options: p, connections: 2 * (p.subscribers + 1) });
  } else if (name === "slow") {
    // $BENCH_SLOW_HISTORY_REQUESTS: how many history requests the stalled client sends (the profile's by default).
    const historyRequests = process.env.BENCH_SLOW_HISTORY_REQUESTS ? Number(process.env.BENCH_SLOW_HISTORY_REQUESTS) : p.historyRequests;
    if (!Number.isInteger(historyRequests) || historyRequests < 0) {
      console.error(`bench: BENCH_SLOW_HISTORY_REQUESTS must be an integer ≥ 0 (got "${process.env.BENCH_SLOW_HISTORY_REQUESTS}")`);
      process.exit(2);
    }
    jobs.push({ name, label: `slow ${p.subscribers} subs, ${historyRequests} history requests`, options: { ...p, historyRequests }, connections: p.subscribers + 2 });
  } else {
    jobs.push({ name, label: name, options: p, connections: p.subscribers ?? p.clients ?? 0 });
  }
}

// The smoke run proves the harness works, quickly: every scenario against roomcast-direct and
// every other adapter through one short fan-out, not the whole cross product (which took over 6
// minutes of CI). The roomcast-direct-* variants are roomcast-direct with other vars: skipped.
// Naming --systems or --scenarios runs exactly the cross product asked for.
const sampled = profileName === "smoke" && !args.systems && !args.scenarios;
const inSmoke = (system, job) =>
  system === "roomcast-direct" || (!system.startsWith("roomcast-direct-") && job.name === "fanout");
const plan = [];
for (const system of systems) {
  for (const job of jobs) if (!sampled || inSmoke(system, job)) plan.push({ system, job });
}

const outDir = args.out ?? join(here, "results", run.startedAt.replace(/[:.]/g, "-"));
log(`bench: profile ${profileName}; ${systems.length} systems, ${plan.length} jobs; results in ${outDir}`);
const started = Date.now();
// The smoke profile (CI) proves the harness works in under a minute (bench/lib/smoke.mjs):
// each system's jobs share one server (started again after a job that failed), the work
// runs in $BENCH_SMOKE_LANES (default 3) lanes at once, and the client storm's outage is
// 1 s instead of 5 ($BENCH_STORM_OUTAGE_S still wins). Every other profile starts a fresh
// server per job and runs one job at a time.
const smoke = profileName === "smoke";
if (smoke) process.env.BENCH_STORM_OUTAGE_S ??= "1";
const adapters = new Map();
const lanes = smoke ? smokeLanes(plan, Number(process.env.BENCH_SMOKE_LANES ?? 3)) : [plan];
if (lanes.length > 1) {
  for (const [n, lane] of lanes.entries()) log(`bench: lane ${n + 1}: ${lane.map((e) => (e ? `${e.system} ${e.job.name}` : "|")).join(", ")}`);
}

/** Each result row's place in the plan (lanes finish in any order). */
const planIndex = new Map();
function record(row, job) {
  planIndex.set(row, plan.findIndex((e) => e.job === job && e.system === row.system));
  run.results.push(row);
}

async function runJob(system, job, adapter, jobLog) {
  // The load generator holds one descriptor per connection, workerd two (four through
  // wrangler dev), and every process is bound by the same per-process limit.
  const fds = Math.ceil(job.connections * Math.max(1, adapter.fdsPerConnection ?? 1)) + 500;
  if (fdLimit && fds > fdLimit) {
    const why = `needs about ${fds} file descriptors in one process (${job.connections} sockets × ${adapter.fdsPerConnection ?? 1}); the per-process limit here is ${fdLimit} and cannot be raised (ulimit -Hn)`;
    log(`bench: skipping ${system} ${job.label}: ${why}`);
    record({ system, scenario: job.name, label: job.label, error: why, notRun: true }, job);
    return true;
  }
  log(`bench: ${system} · ${job.label} (${Math.round((Date.now() - started) / 1000)} s elapsed)`);
  try {
    const result = await scenarios[job.name](adapter, { ...job.options, log: jobLog });
    record({ system, ...result }, job);
    writeRun(outDir, run); // keep partial results if a later job dies
    return true;
  } catch (err) {
    log(`bench: ${system} ${job.label} failed: ${err.stack ?? err}`);
    record({ system, scenario: job.name, label: job.label, error: briefError(err) }, job);
    return false;
  }
}

async function runLane(entries) {
  let shared = null;
  for (let i = 0; i < entries.length; i++) {
    if (!entries[i]) continue; // the end of a run of jobs on one server (smokeLanes)
    const { system, job } = entries[i];
    if (!adapters.has(system)) adapters.set(system, import(`./adapters/${system}.mjs`).then((m) => m.default));
    const adapter = await adapters.get(system);
    // Lanes write to one terminal: say whose line it is.
    const jobLog = lanes.length > 1 ? (line) => log(`[${system}] ${line}`) : log;
    if (smoke) shared ??= sharedServer(adapter);
    const ok = await runJob(system, job, shared?.adapter ?? adapter, jobLog);
    if (shared && (!ok || entries[i + 1]?.system !== system)) {
      await shared.stop().catch((err) => log(`bench: stopping ${system}: ${err.message}`));
      shared = null;
    }
  }
}

await Promise.all(lanes.map(runLane));
// The report lists results in the plan's order, whichever lane finished first.
run.results.sort((a, b) => planIndex.get(a) - planIndex.get(b));
run.finishedAt = new Date().toISOString();
const md = writeRun(outDir, run);
console.log(md);
log(`bench: done in ${Math.round((Date.now() - started) / 1000)} s; ${outDir}`);
// A run whose jobs failed (not the ones this machine cannot do) exits non-zero, so the
// CI smoke run notices a broken harness or server.
const failed = run.results.filter((r) => (r.error && !r.notRun) || r.consistent === false);
if (failed.length) {
  log(`bench: ${failed.length} job(s) failed: ${failed.map((r) => `${r.system} ${r.label ?? r.scenario}`).join("; ")}`);
  process.exitCode = 1;
}
