#!/usr/bin/env node
/**
 * A deploy under load, rehearsed locally and measured (docs/operations.md "Deploying",
 * docs/benchmarks.md "Deploy under load"):
 *
 *   1. the previous release's server (scripts/previous-release.json, v0.1.0) under
 *      `wrangler dev` with a persist dir;
 *   2. clients in several rooms, most of them the previous release's own
 *      `@roomcast/client` build (what a deploy meets), some this checkout's
 *      (packages/client/dist), each on a `ws` socket, publishing at a steady total rate
 *      with their own ids and reading everything;
 *   3. drain-all (`POST /v1/admin/drain`), then the server killed and THIS checkout
 *      started on the same port and storage: new code, same Durable Object state;
 *   4. every client resumes by itself; publishing goes on for a while, then stops and
 *      everything settles.
 *
 * Then, from every ack (id → seq, per room) and every message each client received:
 * acked messages lost (an acked message some client of its room never got), duplicates
 * (a seq or id delivered twice to one client, one id stored at two seqs), gaps (a resume
 * that did not recover), time from the drain until every client is back on the new
 * server, the reconnects' spread, peak connects per second, connection attempts,
 * publishes failed, and publishes sent more than once (retried after the outage).
 *
 *   npm run deploy:rehearse                    # 300 clients in 10 rooms (the documented run)
 *   npm run deploy:rehearse -- --short         # CI: 40 clients in 4 rooms, about 30 s
 *   options: --clients N --rooms N --new-clients N --rate MSGS_PER_S --window S
 *            --warmup S --after S --out FILE.json --server-log FILE (what wrangler printed)
 *            --fault no-resume: a check of the check — one client per room is closed at the
 *            drain and opened afresh (no resume position) once the others are back, as an
 *            app that forgets its position would; the run must then report losses and fail
 *
 * Exits 1 when anything acked was lost or duplicated, a resume had a gap, a client did
 * not come back, or a publish failed. Prints one summary line on stdout; progress on stderr.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import WebSocket from "ws";
import { mintToken, startServer, uniqueRoom } from "../packages/client/test/integration/server.ts";
import { checkDeliveries, peakRate, problemsOf } from "./lib/deploy-check.mjs";
import { previousRelease, repoRoot } from "./lib/previous-release.mjs";
import { privateCopy } from "./lib/private-copy.mjs";

const { values: args } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    clients: { type: "string" },
    rooms: { type: "string" },
    "new-clients": { type: "string" },
    rate: { type: "string" },
    window: { type: "string" },
    warmup: { type: "string" },
    after: { type: "string" },
    out: { type: "string" },
    "server-log": { type: "string" },
    fault: { type: "string" },
  },
});

const SIZES = {
  // CI: small enough for about 30 s of wall time with two wrangler starts.
  short: { clients: 40, rooms: 4, newClients: 8, rate: 40, windowS: 2, warmupS: 2, afterS: 2 },
  // The documented run (docs/benchmarks.md "Deploy under load").
  full: { clients: 300, rooms: 10, newClients: 30, rate: 60, windowS: 30, warmupS: 10, afterS: 5 },
};
const base = SIZES[args.short ? "short" : "full"];
const num = (v, d) => {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new TypeError(`not a number: ${v}`);
  return n;
};
const cfg = {
  clients: num(args.clients, base.clients),
  rooms: num(args.rooms, base.rooms),
  newClients: num(args["new-clients"], base.newClients),
  rate: num(args.rate, base.rate),
  windowS: num(args.window, base.windowS),
  warmupS: num(args.warmup, base.warmupS),
  afterS: num(args.after, base.afterS),
};
if (args.fault !== undefined && args.fault !== "no-resume") throw new TypeError(`unknown --fault ${args.fault} (known: no-resume)`);
if (cfg.newClients > cfg.clients) throw new TypeError("--new-clients cannot exceed --clients");
if (cfg.rooms < 1 || cfg.clients < cfg.rooms) throw new TypeError("need at least one client per room");
const SETTLE_DEADLINE_MS = args.short ? 15_000 : 30_000;
const BACK_DEADLINE_MS = 60_000 + cfg.windowS * 1000;
const CONNECT_BATCH = 25;

const t0 = performance.now();
const now = () => performance.now() - t0;
const say = (msg) => process.stderr.write(`[deploy ${(now() / 1000).toFixed(1).padStart(5)} s] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Newest mtime under `dir` (to tell a stale client build). */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

function npmRun(script, why) {
  say(`${why}: npm run ${script}`);
  const r = spawnSync("npm", ["run", script, "--silent"], { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) throw new Error(`npm run ${script} failed`);
}

/** This checkout's client build, rebuilt when its sources are newer; the demo assets wrangler dev serves. */
function ensureBuilt() {
  const dist = join(repoRoot, "packages/client/dist/index.js");
  const sources = Math.max(newest(join(repoRoot, "packages/client/src")), newest(join(repoRoot, "packages/protocol/src")));
  if (!existsSync(dist) || statSync(dist).mtimeMs < sources) npmRun("build:client", "packages/client/dist is missing or older than its sources");
  if (!existsSync(join(repoRoot, "demo/dist/index.html"))) npmRun("build:demo", "demo/dist is missing (wrangler dev serves it)");
  return dist;
}

// Private copies of the two releases to serve (scripts/lib/private-copy.mjs says why: a
// wrangler dev reload mid-run, from a file changed in this shared tree or a second wrangler dev
// in the release's checkout, resets every room once more; it happened for each of the two).
// A deploy ships one fixed build; so does this.
const COPIES = join(repoRoot, ".cache/roomcast-deploy", `${Date.now().toString(36)}-${process.pid}`);
process.on("exit", () => rmSync(COPIES, { recursive: true, force: true }));

const openFds = () => {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
};

// ---------------------------------------------------------------------------

const newDist = ensureBuilt();
const release = await previousRelease({ client: true });
const { createClient: createOldClient } = await import(pathToFileURL(release.clientDist).href);
const { createClient: createNewClient } = await import(pathToFileURL(newDist).href);
const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repoRoot, encoding: "utf8" }).stdout.trim();
const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: repoRoot, encoding: "utf8" }).stdout.trim() !== "";

const oldRoot = privateCopy(release.root, join(COPIES, "release"), repoRoot);
const snapshot = privateCopy(repoRoot, join(COPIES, "checkout"), repoRoot);
say(`config ${JSON.stringify(cfg)}; from ${release.tag} (${release.commit.slice(0, 10)}) to this checkout (${head}${dirty ? ", uncommitted changes" : ""})`);
// Production defaults but one: no recent history on a fresh join, so a client that joins
// without a resume position (--fault no-resume) cannot paper over what it missed.
// (Rooms are new and every client joins before the first publish: nobody else gets history.)
const vars = { HISTORY_ON_JOIN: "0" };
say(`starting ${release.tag}'s server (wrangler dev)`);
const server = await startServer(vars, { root: oldRoot });
// wrangler runs in its own process group (server.ts): an interrupted run must take it down.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    say(`${signal}: stopping the server`);
    server.dispose().finally(() => process.exit(130));
  });
}
say(`${release.tag} serving on ${server.url}`);

const roomNames = Array.from({ length: cfg.rooms }, (_, i) => uniqueRoom(`deploy${i}`));
/** Every socket any client opened: [time, clientIndex]. */
const attempts = [];
/** Per room: id → { seq, duplicate acks seen } from publish acks. */
const acked = roomNames.map(() => new Map());
const ackSeqs = roomNames.map(() => new Map()); // seq → id, to catch two ids at one seq
let ackConflicts = 0;
let published = 0;
let settled = 0;
const failures = [];
let duplicateAcks = 0;
let maxAckWaitMs = 0;
/** Publish frames written to sockets, by id: more than 1 = sent again (after a reconnect). */
const sends = new Map();

const clients = [];
const clientOpts = { pingIntervalMs: 15_000 };
for (let i = 0; i < cfg.clients; i++) {
  const isNew = i >= cfg.clients - cfg.newClients;
  const roomIndex = i % cfg.rooms;
  const c = {
    i,
    kind: isNew ? "new" : "old",
    roomIndex,
    received: [], // [seq, id]
    connects: [], // times of each → connected
    opened: [], // [time, selected subprotocol] of each socket that opened
    downs: [], // times of each connected → other
    gaps: [], // { reason, atMs, afterSeq: the last seq it had received }
    recovered: 0,
    errors: [],
    handle: undefined,
    room: undefined,
  };
  clients.push(c);
}

const createSocket = (c) => (url, protocols, headers) => {
  attempts.push([now(), c.i]);
  const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
  // The subprotocol each opened socket got, before and after the deploy.
  ws.once("open", () => c.opened.push([now(), ws.protocol]));
  const send = ws.send.bind(ws);
  ws.send = (data, ...rest) => {
    if (typeof data === "string" && data.startsWith('{"type":"publish"')) {
      const id = JSON.parse(data).id;
      sends.set(id, (sends.get(id) ?? 0) + 1);
    }
    return send(data, ...rest);
  };
  return ws;
};

async function connect(c) {
  const token = await mintToken({ sub: `u${c.i}`, cap: { "*": ["subscribe", "publish"] }, expiresInSeconds: 3600 });
  const create = c.kind === "new" ? createNewClient : createOldClient;
  c.handle = create({ url: server.url, token, createSocket: createSocket(c), transport: "header", ...clientOpts });
  c.room = c.handle.room(roomNames[c.roomIndex]);
  c.room.on("state", ({ oldState, newState, error }) => {
    if (newState === "connected") c.connects.push(now());
    else if (oldState === "connected") c.downs.push(now());
    if (error) c.errors.push(`${newState}: ${error.code}${error.code === "going_away" ? "" : ` ${error.message}`}`.slice(0, 200));
  });
  c.room.on("message", (m) => c.received.push([m.seq, m.id]));
  c.room.on("gap", (g) => c.gaps.push({ reason: g.reason, atMs: Math.round(now()), afterSeq: c.received.at(-1)?.[0] ?? 0 }));
  c.room.on("recovered", () => c.recovered++);
  c.room.on("error", (e) => c.errors.push(e.code ?? String(e)));
  c.room.on("publish_failed", () => {}); // counted through the promises
}

const connected = (c) => c.room?.state === "connected";
async function until(what, check, timeoutMs) {
  const deadline = now() + timeoutMs;
  while (!check()) {
    if (now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

let exitCode = 1;
let result;
try {
  // --- connect, in batches (a real service's clients did not all arrive in one instant)
  for (let b = 0; b < clients.length; b += CONNECT_BATCH) {
    const batch = clients.slice(b, b + CONNECT_BATCH);
    await Promise.all(batch.map(connect));
    if (!(await until("batch connected", () => batch.every(connected), 30_000))) {
      throw new Error(`clients ${b}-${b + batch.length - 1} did not connect to ${release.tag} within 30 s`);
    }
  }
  const attemptsBefore = attempts.length;
  say(`${clients.length} clients connected (${cfg.clients - cfg.newClients} ${release.tag} client, ${cfg.newClients} this checkout's) in ${cfg.rooms} rooms`);

  // --- publish at a steady total rate, round-robin over clients, until told to stop
  let publishing = true;
  let nextClient = 0;
  const counters = new Map();
  const publishLoop = (async () => {
    const start = now();
    let due = 0;
    while (publishing) {
      const target = Math.floor(((now() - start) / 1000) * cfg.rate);
      for (; due < target; due++) {
        const c = clients[nextClient];
        nextClient = (nextClient + 1) % clients.length;
        const n = counters.get(c.i) ?? 0;
        counters.set(c.i, n + 1);
        const id = `c${c.i}-${n}`;
        const at = now();
        published++;
        c.room.publish({ n, from: c.i, at: Date.now() }, { id }).then(
          (ack) => {
            settled++;
            maxAckWaitMs = Math.max(maxAckWaitMs, now() - at);
            if (ack.duplicate) duplicateAcks++;
            const byId = acked[c.roomIndex];
            const prev = byId.get(id);
            if (prev !== undefined && prev !== ack.seq) ackConflicts++;
            byId.set(id, ack.seq);
            const other = ackSeqs[c.roomIndex].get(ack.seq);
            if (other !== undefined && other !== id) ackConflicts++;
            ackSeqs[c.roomIndex].set(ack.seq, id);
          },
          (err) => {
            settled++;
            failures.push({ id, code: err?.code ?? String(err) });
          },
        );
      }
      await sleep(10);
    }
  })();

  await sleep(cfg.warmupS * 1000);
  say(`published ${published} (${settled} settled); draining every room over ${cfg.windowS} s`);

  // --- the deploy: drain-all on the old server, kill it, start this checkout on the same storage
  const admin = await mintToken({ sub: "ops", cap: { "*": ["admin"] }, expiresInSeconds: 900 });
  const drainAt = now();
  const res = await fetch(`${server.url}/v1/admin/drain`, {
    method: "POST",
    headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
    body: JSON.stringify({ windowSeconds: cfg.windowS }),
  });
  const drain = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`POST /v1/admin/drain answered ${res.status} ${JSON.stringify(drain)}`);
  const drainAnsweredMs = now() - drainAt;
  say(`drain answered in ${drainAnsweredMs.toFixed(0)} ms: ${JSON.stringify(drain)}; killing ${release.tag}'s server`);
  // The fault: these clients drop their handle (and with it their resume position).
  const faulty = args.fault === "no-resume" ? clients.slice(0, cfg.rooms) : [];
  for (const c of faulty) c.handle.close();
  await server.kill();
  const killAt = now();
  say(`starting this checkout (${snapshot.replace(repoRoot, "")}) on the same port and storage`);
  await server.start({ root: snapshot });
  const upAt = now();
  say(`this checkout is up (${((upAt - killAt) / 1000).toFixed(1)} s after the kill); waiting for every client`);

  // "Back" = connected again after the kill: nothing can connect between the kill and the
  // new server's start, so every such connection is to the new code.
  const backAt = (c) => c.connects.find((t) => t > killAt);
  const isBack = (c) => connected(c) && backAt(c) !== undefined;
  let allBack = await until("every client back", () => clients.every((c) => faulty.includes(c) || isBack(c)), BACK_DEADLINE_MS);
  if (faulty.length) {
    // Reopened only once the others are back and publishing again, so they surely miss some.
    await sleep(1000);
    for (const c of faulty) await connect(c);
    allBack = await until("every client back", () => clients.every(isBack), BACK_DEADLINE_MS);
  }
  const backTimes = clients.map(backAt).filter((t) => t !== undefined);
  say(allBack ? `every client is back ${((Math.max(...backTimes) - drainAt) / 1000).toFixed(1)} s after the drain` : `only ${backTimes.length}/${clients.length} clients came back`);

  await sleep(cfg.afterS * 1000);
  publishing = false;
  await publishLoop;
  say(`stopped publishing after ${published}; settling`);

  // --- settle: every publish answered, every client holds its room's every acked seq
  const roomHead = (r) => Math.max(0, ...acked[r].values());
  const caughtUp = () =>
    settled === published && clients.every((c) => c.received.length >= acked[c.roomIndex].size && (c.received.at(-1)?.[0] ?? 0) >= roomHead(c.roomIndex));
  const settledOk = await until("settled", caughtUp, SETTLE_DEADLINE_MS);
  const fdsOpen = openFds();

  // --- compute
  const deliveries = checkDeliveries({ acked, clients, ackConflicts, roomNames });
  const sentTwice = [...sends.values()].filter((n) => n > 1).length;
  const after = attempts.filter(([t]) => t >= drainAt).map(([t]) => t);
  const perClient = new Map();
  for (const [t, i] of attempts) if (t >= drainAt) perClient.set(i, (perClient.get(i) ?? 0) + 1);
  const reconnects = clients.flatMap((c) => c.connects.filter((t) => t > drainAt)).sort((a, b) => a - b);
  const rel = (t) => (t === undefined ? null : Math.round(t - drainAt));
  const lastBack = backTimes.length ? Math.max(...backTimes) : undefined;
  const clientErrors = clients.flatMap((c) => c.errors);

  result = {
    date: new Date().toISOString(),
    command: ["npm run deploy:rehearse", ...(process.argv.length > 2 ? ["--", ...process.argv.slice(2)] : [])].join(" "),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    from: { release: release.tag, commit: release.commit.slice(0, 10), client: release.clientDist.replace(repoRoot, "") },
    to: { commit: head, dirty, client: newDist.replace(repoRoot, "") },
    config: cfg,
    ...(args.fault ? { fault: args.fault } : {}),
    drain: { ...drain, answeredMs: Math.round(drainAnsweredMs) },
    published,
    acked: acked.reduce((s, m) => s + m.size, 0),
    deliveriesChecked: deliveries.deliveriesChecked,
    lost: deliveries.lost,
    duplicates: deliveries.duplicates,
    unexpected: deliveries.unexpected,
    gaps: deliveries.gaps,
    emptyLogGaps: deliveries.emptyLogGaps,
    gapExamples: deliveries.gapExamples,
    recovered: clients.reduce((s, c) => s + c.recovered, 0),
    publishesFailed: failures.length,
    publishesSentAgain: sentTwice,
    duplicateAcks,
    maxAckWaitMs: Math.round(maxAckWaitMs),
    clientsBack: backTimes.length,
    allBack,
    settled: settledOk,
    // Times are ms after the drain request was sent.
    serverDownMs: Math.round(upAt - killAt),
    killAtMs: rel(killAt),
    newServerUpAtMs: rel(upAt),
    allBackMs: rel(lastBack),
    reconnectSpread: { firstMs: rel(reconnects[0]), lastMs: rel(reconnects.at(-1)), firstOnNewMs: rel(backTimes.length ? Math.min(...backTimes) : undefined) },
    reconnects: reconnects.length,
    // Subprotocols the opened sockets got, per client kind, before the kill and after it.
    protocols: Object.fromEntries(
      ["old", "new"].flatMap((kind) =>
        [["before", (t) => t < killAt], ["after", (t) => t > killAt]].map(([when, inWindow]) => [
          `${kind}Clients${when === "before" ? "Before" : "After"}`,
          clients
            .filter((c) => c.kind === kind)
            .flatMap((c) => c.opened.filter(([t]) => inWindow(t)).map(([, p]) => p))
            .reduce((m, p) => ({ ...m, [p || "(none)"]: (m[p || "(none)"] ?? 0) + 1 }), {}),
        ]),
      ),
    ),
    peakConnectsPerSecond: peakRate(reconnects),
    attempts: { beforeDrain: attemptsBefore, afterDrain: after.length, maxPerClient: Math.max(0, ...perClient.values()), peakPerSecond: peakRate(after) },
    // Open descriptors of this process once settled, every client connected: one socket per client, none leaked by the failed attempts.
    fds: { open: fdsOpen, clients: clients.length },
    // Why connections ended or attempts failed, with counts (going_away is the drain).
    clientErrors: Object.fromEntries([...clientErrors.reduce((m, e) => m.set(e, (m.get(e) ?? 0) + 1), new Map())].sort((a, b) => b[1] - a[1]).slice(0, 12)),
    lostExamples: deliveries.lostExamples,
    failureExamples: failures.slice(0, 5),
  };
  const problems = problemsOf({
    ...deliveries,
    clientsBack: backTimes.length,
    clients: clients.length,
    settled: settledOk,
    unanswered: published - settled,
    publishesFailed: failures.length,
    drained: drain.drained,
    rooms: cfg.rooms,
    acked: result.acked,
    settleDeadlineMs: SETTLE_DEADLINE_MS,
  });
  result.ok = problems.length === 0;
  if (!result.ok) result.serverOutput = server.output().slice(-4000);
  result.problems = problems;
  exitCode = result.ok ? 0 : 1;
} catch (err) {
  result = { ok: false, error: String(err?.stack ?? err), serverOutput: server.output().slice(-3000) };
  process.stderr.write(`${result.error}\n`);
} finally {
  for (const c of clients) c.handle?.close();
  if (args["server-log"]) writeFileSync(resolve(args["server-log"]), server.output());
  await server.dispose();
}

if (args.out) {
  const out = resolve(args.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
}
if (result.error) {
  console.log(`deploy rehearsal FAILED: ${result.error.split("\n")[0]}`);
} else {
  const r = result;
  console.log(
    `deploy rehearsal ${r.ok ? "ok" : "FAILED"}: ${r.from.release} -> ${r.to.commit}, ${r.config.clients} clients in ${r.config.rooms} rooms; ` +
      `${r.acked} acked, ${r.deliveriesChecked} deliveries checked: ${r.lost} lost, ${r.duplicates} duplicates, ${r.gaps} gaps; ` +
      `all back ${r.allBackMs === null ? "never" : `${(r.allBackMs / 1000).toFixed(1)} s`} after the drain (server down ${(r.serverDownMs / 1000).toFixed(1)} s), ` +
      `reconnects ${r.reconnectSpread.firstMs}-${r.reconnectSpread.lastMs} ms, peak ${r.peakConnectsPerSecond} connects/s, ${r.attempts.afterDrain} attempts, ` +
      `${r.publishesFailed} publishes failed, ${r.publishesSentAgain} sent again` +
      (r.problems.length ? ` — ${r.problems.join("; ")}` : ""),
  );
}
process.exit(exitCode);
