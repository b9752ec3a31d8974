/**
 * The eight scenarios. Each starts a fresh server for the system under test (pinned
 * to SERVER_CPUS; the load generator runs on LOADGEN_CPUS), runs bounded in count
 * and time, stops everything, and returns plain result rows.
 */
import { connectMany, DeliveryTracker, openLoop, payloadFactory } from "./loadgen.mjs";
import { freePort, sleep } from "./net.mjs";
import { RoomcastProbe } from "./roomcast-probe.mjs";
import { delta, sample, selfSample, tcpQueues } from "./sampler.mjs";
import { summarize, histogram } from "./stats.mjs";
import { pathToFileURL } from "node:url";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { BENCH_SECRET } from "./roomcast-client.mjs";

export const SERVER_CPUS = "1";
export const LOADGEN_CPUS = "0";
const MEASURED_KEY = 1_000_000;
const P99_TARGET_MS = 8;

async function withServer(adapter, log, fn) {
  const server = await startOnFreePort(adapter, log);
  const opened = [];
  try {
    return await fn(server, opened);
  } finally {
    for (const c of opened) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await server.stop();
  }
}

/**
 * Starts the server on a free port; if another process took the port between our
 * check and the server's bind (it happens), tries again on a fresh one (3 times).
 */
async function startOnFreePort(adapter, log) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await adapter.start({ port, cpus: SERVER_CPUS, log });
    } catch (err) {
      if (attempt >= 3 || !/address already in use|EADDRINUSE/i.test(String(err?.stack ?? err))) throw err;
      log(`  port ${port} was taken before the server bound it; trying another`);
    }
  }
}

const uniqueRoom = (label) => `bench-${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** Publishes into an already-connected room for a while and measures it. */
async function measure({ server, tracker, publishers, expectedPerMessage, rate, durationS, make, rooms = 1 }) {
  tracker.recording = true;
  const before = sample(server.pids());
  const selfBefore = selfSample();
  const loop = await openLoop({
    rate,
    durationMs: durationS * 1000,
    publish: (i, t) => {
      const key = MEASURED_KEY + i;
      const room = i % rooms;
      tracker.expect(key, t, typeof expectedPerMessage === "function" ? expectedPerMessage(room) : expectedPerMessage);
      publishers[room].publish(make(key, t, room));
    },
  });
  await tracker.drain(5_000);
  const used = delta(before, sample(server.pids()));
  const loadgen = delta(selfBefore, selfSample());
  tracker.recording = false;
  const s = tracker.summary();
  return {
    publishRate: rate,
    published: loop.sent,
    publishSeconds: Math.round(loop.seconds * 100) / 100,
    ...s,
    deliveredPerSecond: Math.round(s.delivered / loop.seconds),
    serverCpuSeconds: Math.round(used.cpuSeconds * 100) / 100,
    deliveredPerServerCpuSecond: used.cpuSeconds > 0 ? Math.round(s.delivered / used.cpuSeconds) : null,
    serverRssMb: Math.round(used.rssBytes / 2 ** 20),
    loadgenCpuSeconds: Math.round(loadgen.cpuSeconds * 100) / 100,
  };
}

/**
 * One room with `subscribers` connected clients and a separate publisher. Deliveries
 * go to `deliver(i)` (a function, so a scenario can swap trackers between steps).
 */
async function singleRoom(adapter, server, opened, { label, subscribers, deliver, log }) {
  const room = uniqueRoom(label);
  const specs = Array.from({ length: subscribers }, (_, i) => ({ room, user: `sub-${i}` }));
  const conn = await connectMany(adapter, server.url, specs, { onMessage: (data) => deliver(data.i), log });
  opened.push(...conn.connections);
  const publisher = await adapter.connect({ url: server.url, room, user: "publisher", onMessage: () => {} });
  opened.push(publisher);
  return { conn, publisher, receivers: conn.connections.length };
}

/** 1. Fan-out latency vs room size: one room, one publisher at a fixed rate. */
export async function fanout(adapter, { subscribers, payloadBytes, rate, durationS, warmupS, log }) {
  return withServer(adapter, log, async (server, opened) => {
    const tracker = new DeliveryTracker();
    const { conn, publisher } = await singleRoom(adapter, server, opened, { label: "fanout", subscribers, deliver: (i) => tracker.deliver(i), log });
    const make = payloadFactory(payloadBytes);
    log(`  ${conn.connections.length} subscribers (${conn.failures} failed); warming up ${warmupS} s at ${rate}/s`);
    await openLoop({ rate, durationMs: warmupS * 1000, publish: (i, t) => (tracker.expect(i, t, conn.connections.length), publisher.publish(make(i, t))) });
    await tracker.drain(3_000);
    const result = await measure({ server, tracker, publishers: [publisher], expectedPerMessage: conn.connections.length, rate, durationS, make });
    return { scenario: "fanout", subscribers, payloadBytes, connectFailures: conn.failures, ...result };
  });
}

/** 2. Many rooms: rooms × subscribers each, a steady trickle into every room. */
export async function rooms(adapter, { rooms: roomCount, perRoom, ratePerRoom, payloadBytes, durationS, log }) {
  return withServer(adapter, log, async (server, opened) => {
    const names = Array.from({ length: roomCount }, (_, r) => uniqueRoom(`r${r}`));
    const tracker = new DeliveryTracker();
    const specs = [];
    for (let r = 0; r < roomCount; r++) for (let s = 0; s < perRoom; s++) specs.push({ room: names[r], user: `u-${r}-${s}` });
    log(`  connecting ${specs.length} clients in ${roomCount} rooms`);
    const conn = await connectMany(adapter, server.url, specs, { onMessage: (data) => tracker.deliver(data.i), log, concurrency: 200 });
    opened.push(...conn.connections);
    // The first connected subscriber of each room publishes (and receives its own message too);
    // each room's message is expected by the subscribers of that room that did connect.
    const publishers = [];
    const members = [];
    for (let r = 0; r < roomCount; r++) {
      const inRoom = conn.bySpec.slice(r * perRoom, (r + 1) * perRoom).filter(Boolean);
      publishers.push(inRoom[0]);
      members.push(inRoom.length);
    }
    const live = publishers.map((p, r) => (p ? r : -1)).filter((r) => r >= 0);
    if (live.length === 0) throw new Error("no room has a connected subscriber");
    const make = payloadFactory(payloadBytes);
    await sleep(2_000);
    const result = await measure({
      server,
      tracker,
      publishers: live.map((r) => publishers[r]),
      expectedPerMessage: (room) => members[live[room]],
      rate: live.length * ratePerRoom,
      durationS,
      make,
      rooms: live.length,
    });
    return { scenario: "rooms", rooms: roomCount, perRoom, connections: conn.connections.length, connectFailures: conn.failures, connectSeconds: Math.round(conn.seconds * 10) / 10, ...result };
  });
}

/** 3. Throughput ramp: raise the publish rate until p99 passes the target. */
export async function ramp(adapter, { subscribers, payloadBytes, rates, stepS, warmupS = 2, log }) {
  return withServer(adapter, log, async (server, opened) => {
    let tracker = new DeliveryTracker();
    const { conn, publisher } = await singleRoom(adapter, server, opened, { label: "ramp", subscribers, deliver: (i) => tracker.deliver(i), log });
    const make = payloadFactory(payloadBytes);
    // Warm up (JIT on both sides, first-message costs) at the first rate; not measured.
    await openLoop({ rate: rates[0], durationMs: warmupS * 1000, publish: (i, t) => (tracker.expect(i, t, conn.connections.length), publisher.publish(make(i, t))) });
    await tracker.drain(3_000);
    const steps = [];
    let reached = null;
    let misses = 0;
    for (const rate of rates) {
      tracker = new DeliveryTracker();
      const step = await measure({ server, tracker, publishers: [publisher], expectedPerMessage: conn.connections.length, rate, durationS: stepS, make });
      steps.push({ rate, p99: step.latencyMs.p99, lost: step.lost, deliveredPerSecond: step.deliveredPerSecond });
      log(`  ${rate}/s: p99 ${step.latencyMs.p99} ms, ${step.deliveredPerSecond} deliveries/s, lost ${step.lost}`);
      const ok = step.latencyMs.p99 !== null && step.latencyMs.p99 <= P99_TARGET_MS && step.lost === 0;
      // One noisy step does not end the ramp; two misses in a row do.
      if (ok) {
        reached = rate;
        misses = 0;
      } else if (++misses >= 2) break;
      await sleep(500);
    }
    return { scenario: "ramp", subscribers, payloadBytes, targetP99Ms: P99_TARGET_MS, maxRateWithinTarget: reached, steps };
  });
}

/** 4. Memory per idle connection, and connect rate. */
export async function memory(adapter, { connections, perRoom, settleS = 5, idleS = 0, log }) {
  return withServer(adapter, log, async (server, opened) => {
    await sleep(1_000);
    const base = sample(server.pids());
    const roomsNeeded = Math.ceil(connections / perRoom);
    const names = Array.from({ length: roomsNeeded }, (_, r) => uniqueRoom(`m${r}`));
    const specs = Array.from({ length: connections }, (_, i) => ({ room: names[Math.floor(i / perRoom)], user: `idle-${i}` }));
    const conn = await connectMany(adapter, server.url, specs, { log, concurrency: 200 });
    opened.push(...conn.connections);
    await sleep(settleS * 1000); // settle
    const after = sample(server.pids());
    const held = conn.connections.length;
    // Then, optionally, long enough for idle Durable Objects to hibernate (~10 s on workerd).
    let idle = null;
    if (idleS > 0) {
      await sleep(idleS * 1000);
      idle = sample(server.pids());
      log(`  after ${settleS + idleS} s idle: RSS ${Math.round(idle.rssBytes / 2 ** 20)} MB (was ${Math.round(after.rssBytes / 2 ** 20)} MB)`);
    }
    return {
      scenario: "memory",
      connections,
      held,
      connectFailures: conn.failures,
      connectSeconds: Math.round(conn.seconds * 100) / 100,
      connectsPerSecond: Math.round(held / conn.seconds),
      baseRssMb: Math.round(base.rssBytes / 2 ** 20),
      rssMb: Math.round(after.rssBytes / 2 ** 20),
      bytesPerConnection: held > 0 ? Math.round((after.rssBytes - base.rssBytes) / held) : null,
      ...(idle && {
        idleSeconds: settleS + idleS,
        idleRssMb: Math.round(idle.rssBytes / 2 ** 20),
        idleBytesPerConnection: held > 0 ? Math.round((idle.rssBytes - base.rssBytes) / held) : null,
      }),
    };
  });
}

/** 5. Hibernation wake: the first message after the room sat idle, vs a warm one. */
export async function wake(adapter, { subscribers, idleS, log }) {
  return withServer(adapter, log, async (server, opened) => {
    let tracker = new DeliveryTracker();
    const { conn, publisher } = await singleRoom(adapter, server, opened, { label: "wake", subscribers, deliver: (i) => tracker.deliver(i), log });
    const make = payloadFactory(100);
    const one = async (key) => {
      tracker = new DeliveryTracker();
      tracker.recording = true;
      const t = performance.now();
      tracker.expect(key, t, conn.connections.length);
      publisher.publish(make(key, t));
      await tracker.drain(10_000);
      return tracker.summary().fanoutCompletionMs.max;
    };
    const warm = [];
    for (let i = 0; i < 5; i++) warm.push(await one(i));
    log(`  idle for ${idleS} s`);
    await sleep(idleS * 1000);
    const afterIdle = await one(100);
    const warmAgain = await one(101);
    return { scenario: "wake", subscribers, idleSeconds: idleS, warmMs: warm, firstAfterIdleMs: afterIdle, nextMs: warmAgain };
  });
}

/** 6. Reconnect storm: everyone loses the server at once; time until all are back. */
export async function storm(adapter, { clients, jitterMs, log }) {
  if (!adapter.start) throw new Error("no adapter");
  return withServer(adapter, log, async (server, opened) => {
    if (!server.kill || !server.restart) return { scenario: "storm", clients, skipped: "the adapter cannot kill and restart its server" };
    const room = uniqueRoom("storm");
    const specs = Array.from({ length: clients }, (_, i) => ({ room, user: `c-${i}` }));
    const first = await connectMany(adapter, server.url, specs, { log, concurrency: 200 });
    log(`  ${first.connections.length} connected; killing the server`);
    await server.kill();
    for (const c of first.connections) {
      try {
        c.close();
      } catch {
        // dead already
      }
    }
    await server.restart();
    const restartedAt = performance.now();
    const times = histogram();
    let failures = 0;
    const again = await Promise.all(
      specs.map(async (spec, i) => {
        // Each client waits a jittered delay, then retries with backoff (bounded).
        await sleep(Math.random() * jitterMs);
        for (let attempt = 0; attempt < 8; attempt++) {
          try {
            const c = await adapter.connect({ url: server.url, room: spec.room, user: spec.user, onMessage: () => {} });
            times.recordValue(Math.max(1, Math.round((performance.now() - restartedAt) * 1000)));
            return c;
          } catch {
            await sleep(Math.random() * Math.min(5_000, 250 * 2 ** attempt));
          }
        }
        failures++;
        return null;
      }),
    );
    opened.push(...again.filter(Boolean));
    const all = summarize(times);
    const row = { scenario: "storm", clients, jitterMs, reconnected: all.count, failures, allBackMs: all.max, p50Ms: all.p50, p99Ms: all.p99 };
    for (const c of again) {
      try {
        c?.close();
      } catch {
        // gone already
      }
    }
    if (!adapter.name?.startsWith("roomcast")) return row;
    // One row per scenario run: the client's numbers ride along under `client`.
    const client = await clientStorm(server, { clients, log });
    log(`  storm with @roomcast/client: ${JSON.stringify(client)}`);
    return { ...row, client };
  });
}

/**
 * 6b. The same storm with @roomcast/client's own reconnect loop (what apps get): the
 * server is killed, stays down `BENCH_STORM_OUTAGE_S` (default 5: a crash and restart,
 * long enough for backoff to grow), and is restarted; time from the server answering
 * its health check until every client is `connected` again, and the connection
 * attempts it took. `BENCH_CLIENT_MODULE` picks another build of the client (an A/B
 * of two commits); the default is the workspace's (`npm run build` first).
 * `BENCH_STORM_CLIENTS` changes the number of clients of this part.
 */
async function clientStorm(server, { clients: profileClients, log }) {
  const clients = Number(process.env.BENCH_STORM_CLIENTS ?? profileClients); // the issue measured 300
  const modulePath = process.env.BENCH_CLIENT_MODULE;
  let createClient;
  try {
    ({ createClient } = await import(modulePath ? pathToFileURL(modulePath).href : "@roomcast/client"));
  } catch (err) {
    return { skipped: `@roomcast/client not importable (run npm run build): ${err.message}` };
  }
  const outageS = Number(process.env.BENCH_STORM_OUTAGE_S ?? 5);
  const room = uniqueRoom("storm-client");
  let attempts = 0;
  const createSocket = (url, protocols, headers) => {
    attempts++;
    return new WebSocket(url, protocols, { headers, perMessageDeflate: false });
  };
  const key = new TextEncoder().encode(BENCH_SECRET);
  const rooms = [];
  const handles = [];
  for (let i = 0; i < clients; i++) {
    const jwt = await new SignJWT({ cap: { "*": ["subscribe", "publish"] } }).setProtectedHeader({ alg: "HS256" }).setSubject(`sc-${i}`).setExpirationTime("6h").sign(key);
    const client = createClient({ url: server.url, token: jwt, createSocket, transport: "header" });
    handles.push(client);
    rooms.push(client.room(room));
  }
  try {
    const connectedAll = () => rooms.every((r) => r.state === "connected");
    const deadline = Date.now() + 60_000;
    while (!connectedAll() && Date.now() < deadline) await sleep(50);
    if (!connectedAll()) return { skipped: "not every client connected before the outage" };
    log(`  ${clients} @roomcast/client rooms connected; killing the server for ${outageS} s`);
    const before = attempts;
    await server.kill();
    const downAt = performance.now();
    await sleep(outageS * 1000);
    await server.restart();
    const upAt = performance.now();
    const attemptsWhileDown = attempts - before;
    const times = histogram();
    const back = new Set();
    await new Promise((resolve) => {
      const check = () => {
        for (const r of rooms) {
          if (!back.has(r) && r.state === "connected") {
            back.add(r);
            times.recordValue(Math.max(1, Math.round((performance.now() - upAt) * 1000)));
          }
        }
        if (back.size === rooms.length || performance.now() - upAt > 60_000) resolve();
        else setTimeout(check, 5);
      };
      check();
    });
    const all = summarize(times);
    return {
      clients,
      outageMs: Math.round(upAt - downAt),
      reconnected: back.size,
      failures: rooms.length - back.size,
      attempts: attempts - before,
      attemptsWhileDown,
      allBackMs: all.max,
      p50Ms: all.p50,
      p99Ms: all.p99,
      client: modulePath ?? "@roomcast/client",
    };
  } finally {
    for (const c of handles) c.close();
  }
}

/**
 * 7. Presence storm: `clients` connections that are listed in presence join one room
 * as fast as the generator connects them, then all close at once. An observer in the
 * room keeps a member map from presence_state/presence_diff frames; each phase ends
 * when the observer's map is right (all joined; only itself left). Counts the diff
 * frames the observer received and the server CPU each phase cost.
 */
export async function presence(adapter, { clients, log }) {
  if (!adapter.presence) return { scenario: "presence", clients, skipped: "no built-in presence" };
  return withServer(adapter, log, async (server, opened) => {
    const room = uniqueRoom("presence");
    const members = new Set();
    let diffs = 0;
    const onPresence = (frame) => {
      if (frame.type === "presence_state") {
        members.clear();
        for (const m of frame.members) members.add(m.userId);
        return;
      }
      diffs++;
      for (const m of [...frame.joins, ...frame.updates]) members.add(m.userId);
      for (const id of frame.leaves) members.delete(id);
    };
    const until = async (done, timeoutMs) => {
      const deadline = performance.now() + timeoutMs;
      while (!done()) {
        if (performance.now() > deadline) return false;
        await sleep(5);
      }
      return true;
    };
    const observer = await adapter.connect({ url: server.url, room, user: "observer", presence: true, onPresence, onMessage: () => {} });
    opened.push(observer);
    await until(() => members.has("observer"), 5_000);

    const specs = Array.from({ length: clients }, (_, i) => ({ room, user: `p${i}` }));
    let before = sample(server.pids());
    let started = performance.now();
    diffs = 0;
    const conn = await connectMany(adapter, server.url, specs, { log, concurrency: 200, connectOptions: { presence: true } });
    opened.push(...conn.connections);
    const joined = await until(() => members.size === conn.connections.length + 1, 120_000);
    const join = { ms: Math.round(performance.now() - started), cpuSeconds: delta(before, sample(server.pids())).cpuSeconds, diffs };
    log(`  ${conn.connections.length} joined (${conn.failures} failed); observer saw them all after ${join.ms} ms in ${diffs} diffs`);

    before = sample(server.pids());
    started = performance.now();
    diffs = 0;
    for (const c of conn.connections) c.close();
    // Leaves are announced after the reconnect grace period (PRESENCE_GRACE_SECONDS).
    const left = await until(() => members.size === 1, 120_000);
    const leave = { ms: Math.round(performance.now() - started), cpuSeconds: delta(before, sample(server.pids())).cpuSeconds, diffs };
    log(`  all closed; observer saw them leave after ${leave.ms} ms in ${diffs} diffs`);
    const round2 = (v) => Math.round(v * 100) / 100;
    return {
      scenario: "presence",
      clients,
      held: conn.connections.length,
      connectFailures: conn.failures,
      consistent: joined && left,
      joinAllSeenMs: join.ms,
      joinServerCpuSeconds: round2(join.cpuSeconds),
      joinDiffFrames: join.diffs,
      leaveAllSeenMs: leave.ms,
      leaveServerCpuSeconds: round2(leave.cpuSeconds),
      leaveDiffFrames: leave.diffs,
    };
  });
}

/**
 * 8. A slow consumer: one room, `subscribers` clients that read and report progress,
 * a publisher at `rate` msg/s of `payloadBytes`, and one client that stops reading for
 * `stallS` seconds (its TCP socket paused, so the kernel buffers fill and the server
 * has to hold the rest) while it asks for `historyRequests` large history pages
 * (the room is pre-filled with `prefill` messages first). Then it reads again, and
 * if the room closed it (4005 slow_consumer, docs/protocol.md §6.9) it resumes from
 * the last seq it applied. Measures the server's RSS over the run, whether the other
 * subscribers kept receiving during the stall, and whether the slow client ended up
 * with every seq from its first to the head exactly once.
 */
export async function slow(adapter, { subscribers, rate, payloadBytes = 1_024, prefill, historyRequests = 30, warmupS = 1, beforeS, stallS, afterS, catchUpS = 20, log }) {
  if (!adapter.roomcastProtocol) return { scenario: "slow", subscribers, skipped: "no flow control (the scenario speaks Roomcast's protocol: progress, history, resume)" };
  return withServer(adapter, log, async (server, opened) => {
    const room = uniqueRoom("slow");
    const serverPort = Number(new URL(server.url).port);
    const rssMb = (bytes) => Math.round(bytes / 2 ** 20);
    const make = payloadFactory(payloadBytes);
    const publisher = new RoomcastProbe({ url: server.url, room, log });
    await publisher.connect();
    opened.push(publisher);

    // Pre-fill, so that each history answer is large (HISTORY_PAGE_MAX messages, or cut by size).
    const prefillStarted = performance.now();
    for (let i = 0; i < prefill; i++) {
      publisher.publish(make(-1, 0));
      if (i % 500 === 499) await sleep(20);
    }
    const until = async (done, timeoutMs) => {
      const deadline = performance.now() + timeoutMs;
      while (!done()) {
        if (performance.now() > deadline) return false;
        await sleep(10);
      }
      return true;
    };
    if (!(await until(() => publisher.acks >= prefill, 30_000))) throw new Error(`pre-fill: ${publisher.acks} of ${prefill} acks`);
    log(`  pre-filled ${prefill} messages in ${Math.round(performance.now() - prefillStarted)} ms`);

    // Phases, by the message's scheduled time: 0 warm-up, 1 before the stall, 2 stall, 3 after it.
    const PHASE = 1_000_000;
    const trackers = [0, 1, 2, 3].map(() => new DeliveryTracker());
    for (const t of trackers.slice(1)) t.recording = true;
    let normalClosed = 0;
    const specs = Array.from({ length: subscribers }, (_, i) => ({ room, user: `sub-${i}` }));
    const conn = await connectMany(adapter, server.url, specs, {
      onMessage: (data) => trackers[Math.floor(data.i / PHASE)]?.deliver(data.i),
      connectOptions: { onClose: () => normalClosed++ },
      log,
    });
    opened.push(...conn.connections);
    const receivers = conn.connections.length;
    const slowClient = new RoomcastProbe({ url: server.url, room, track: true, log });
    await slowClient.connect();
    opened.push(slowClient);
    await sleep(500);

    // RSS of the server over the whole run, every 200 ms; a timeline once a second. Most of
    // the growth from `start` is the live traffic itself (50 × 200 msg/s warms workerd up):
    // the stall is measured from its own start.
    const startSample = sample(server.pids());
    let peak = startSample.rssBytes;
    const timeline = [];
    const t0 = performance.now();
    let stallStart = null;
    let stallPeak = null;
    let stallEnd = null;
    const sampler = setInterval(() => {
      const s = sample(server.pids());
      if (s.rssBytes > peak) peak = s.rssBytes;
      if (stallStart !== null && stallEnd === null && s.rssBytes > stallPeak) stallPeak = s.rssBytes;
      const second = Math.floor((s.at - t0) / 1000);
      if (timeline.length <= second) timeline.push(rssMb(s.rssBytes));
    }, 200);

    const stallAt = (warmupS + beforeS) * 1000;
    const resumeAt = stallAt + stallS * 1000;
    const totalMs = resumeAt + afterS * 1000;
    const counts = [0, 0, 0, 0];
    const phaseOf = (offset) => (offset < warmupS * 1000 ? 0 : offset < stallAt ? 1 : offset < resumeAt ? 2 : 3);
    let resumedAt = null;
    let liveAgainMs = null;
    const timers = [];
    // Server CPU seconds at the phase boundaries (the warm-up is not reported).
    const cpuAt = { before: null, stall: null, resume: null, end: null };
    timers.push(setTimeout(() => (cpuAt.before = sample(server.pids()).cpuSeconds), warmupS * 1000));
    const loopStart = performance.now();
    timers.push(
      setTimeout(() => {
        log(`  slow client stops reading; ${historyRequests} history requests over ${stallS / 2} s`);
        const atStall = sample(server.pids());
        cpuAt.stall = atStall.cpuSeconds;
        stallStart = atStall.rssBytes;
        stallPeak = stallStart;
        slowClient.pause();
        const every = (stallS * 1000) / 2 / historyRequests;
        for (let i = 0; i < historyRequests; i++) timers.push(setTimeout(() => slowClient.send({ type: "history", id: `h${i}`, after: 0 }), i * every));
      }, stallAt),
      setTimeout(() => {
        const port = slowClient.localPort;
        const atResume = sample(server.pids());
        cpuAt.resume = atResume.cpuSeconds;
        stallEnd = { rss: atResume.rssBytes, ...(port ? tcpQueues(port, serverPort) : {}) };
        if (stallEnd.rss > stallPeak) stallPeak = stallEnd.rss;
        log(`  slow client reads again (server RSS ${rssMb(stallEnd.rss)} MB; kernel: ${stallEnd.clientUnreadBytes ?? "?"} B unread, ${stallEnd.serverUnsentBytes ?? "?"} B unsent)`);
        resumedAt = performance.now();
        slowClient.resume(publisher.headSeq);
        // Back to live: it has everything the publisher has had acknowledged (a message reaches
        // its subscribers before the publisher's ack), on a socket that is still open.
        const poll = setInterval(() => {
          if (slowClient.lastSeq >= publisher.headSeq && !slowClient.reconnecting && !slowClient.pendingReconnect) {
            liveAgainMs = Math.round(performance.now() - resumedAt);
            clearInterval(poll);
          }
        }, 5);
        timers.push(poll);
      }, resumeAt),
    );
    const loop = await openLoop({
      rate,
      durationMs: totalMs,
      publish: (n, t) => {
        const phase = phaseOf(t - loopStart);
        const key = phase * PHASE + counts[phase]++;
        trackers[phase].expect(key, t, receivers);
        publisher.publish(make(key, t));
      },
    });
    cpuAt.end = sample(server.pids()).cpuSeconds;
    const acked = await until(() => publisher.acks >= prefill + loop.sent, 10_000);
    const head = publisher.headSeq;
    await Promise.all(trackers.map((t) => t.drain(5_000)));
    const caughtUp = await until(() => slowClient.lastSeq >= head && !slowClient.reconnecting && !slowClient.pendingReconnect, catchUpS * 1000);
    for (const t of timers) clearTimeout(t); // clears intervals too
    log(`  head ${head}; slow client at ${slowClient.lastSeq} ${caughtUp ? "(caught up)" : "(behind)"}, ${slowClient.connections} connection(s)`);
    await sleep(2_000);
    clearInterval(sampler);
    const end = sample(server.pids());
    if (end.rssBytes > peak) peak = end.rssBytes;

    const audit = slowClient.audit(head);
    const phase = (t, seconds, cpuFrom, cpuTo) => {
      const s = t.summary();
      const cpu = cpuFrom === null || cpuTo === null ? null : Math.round((cpuTo - cpuFrom) * 100) / 100;
      return { delivered: s.delivered, expected: s.expected, lost: s.lost, deliveredPerSecond: Math.round(s.delivered / seconds), p50: s.latencyMs.p50, p99: s.latencyMs.p99, max: s.latencyMs.max, serverCpuSeconds: cpu };
    };
    const close = slowClient.slowClose;
    const budget = slowClient.budget;
    // With a budget, the room must close the client before it is much more than the budget
    // (plus one frame of at most ~1 MiB) behind.
    const backlog = slowClient.backlogChars;
    const flowControlHeld = budget === undefined ? null : backlog !== null && backlog <= budget + 1.5 * 2 ** 20;
    return {
      scenario: "slow",
      subscribers,
      receivers,
      connectFailures: conn.failures,
      publishRate: rate,
      payloadBytes,
      prefill,
      historyRequests,
      beforeSeconds: beforeS,
      stallSeconds: stallS,
      afterSeconds: afterS,
      published: loop.sent,
      acked,
      head,
      budgetBytes: budget ?? null,
      // start: before any traffic; the stall's own effect is stallStart → stallPeak/stallEnd.
      rssMb: {
        start: rssMb(startSample.rssBytes),
        stallStart: stallStart && rssMb(stallStart),
        stallPeak: stallPeak && rssMb(stallPeak),
        stallEnd: stallEnd && rssMb(stallEnd.rss),
        end: rssMb(end.rssBytes),
        peak: rssMb(peak),
      },
      rssTimelineMb: timeline,
      kernelAtStallEnd: stallEnd && { clientUnreadBytes: stallEnd.clientUnreadBytes ?? null, serverUnsentBytes: stallEnd.serverUnsentBytes ?? null },
      // Per phase: what the other subscribers got, and the server's CPU seconds over that phase.
      normal: {
        before: phase(trackers[1], beforeS, cpuAt.before, cpuAt.stall),
        stall: phase(trackers[2], stallS, cpuAt.stall, cpuAt.resume),
        after: phase(trackers[3], afterS, cpuAt.resume, cpuAt.end),
        closed: normalClosed,
      },
      slowClient: {
        closedSlow: close !== null,
        close,
        closes: slowClient.closes,
        connections: slowClient.connections,
        resume: slowClient.welcomes.slice(1).map((w) => w.resume),
        historyAnswers: slowClient.historyAnswers,
        historyChars: slowClient.historyChars,
        receivedChars: slowClient.receivedChars,
        backlogChars: backlog,
        progressSent: slowClient.progressSent,
        firstSeq: slowClient.firstSeq,
        lastSeq: slowClient.lastSeq,
        caughtUp,
        liveAgainMs,
        ...audit,
      },
      flowControlHeld,
      consistent: acked && caughtUp && audit.missed === 0 && audit.duplicates === 0 && audit.outOfOrder === 0 && normalClosed === 0 && flowControlHeld !== false,
    };
  });
}

/**
 * 9. Ephemeral broadcasts against stored publishes (docs/protocol.md §6.4): the same
 * room, subscribers, payloads and rate, first as `publish` (stored, acked, seq) and
 * then as `broadcast` (relayed to the live connections, never stored); deliveries per
 * server CPU-second of each. Speaks Roomcast's protocol with its own small clients
 * (the adapters' clients only deliver `message` frames).
 */
export async function ephemeral(adapter, { subscribers, payloadBytes, rate, durationS, warmupS, log }) {
  if (!adapter.roomcastProtocol) return { scenario: "ephemeral", subscribers, skipped: "no ephemeral broadcasts (Roomcast's protocol only)" };
  return withServer(adapter, log, async (server, opened) => {
    const room = uniqueRoom("ephemeral");
    let tracker = new DeliveryTracker();
    const client = { connect: (o) => connectBroadcastClient(o) };
    const specs = Array.from({ length: subscribers }, (_, i) => ({ room, user: `sub-${i}` }));
    const conn = await connectMany(client, server.url, specs, { onMessage: (data) => tracker.deliver(data.i), log, connectOptions: { log } });
    opened.push(...conn.connections);
    const publisher = await connectBroadcastClient({ url: server.url, room, user: "publisher", onMessage: () => {}, log });
    opened.push(publisher);
    const receivers = conn.connections.length;
    const make = payloadFactory(payloadBytes);
    const phases = {};
    for (const [kind, send] of [["stored", publisher.publish], ["ephemeral", publisher.broadcast]]) {
      tracker = new DeliveryTracker();
      // The publisher is not counted: it gets its own stored messages, and no broadcast of its own.
      await openLoop({ rate, durationMs: warmupS * 1000, publish: (i, t) => (tracker.expect(i, t, receivers), send(make(i, t))) });
      await tracker.drain(3_000);
      const result = await measure({ server, tracker, publishers: [{ publish: send }], expectedPerMessage: receivers, rate, durationS, make });
      log(`  ${kind}: ${result.deliveredPerSecond} deliveries/s, ${result.deliveredPerServerCpuSecond} per server CPU-second, p99 ${result.latencyMs.p99} ms, lost ${result.lost}`);
      phases[kind] = result;
      await sleep(500);
    }
    const ratio = phases.stored.deliveredPerServerCpuSecond && phases.ephemeral.deliveredPerServerCpuSecond
      ? Math.round((phases.ephemeral.deliveredPerServerCpuSecond / phases.stored.deliveredPerServerCpuSecond) * 100) / 100
      : null;
    return { scenario: "ephemeral", subscribers: receivers, payloadBytes, publishRate: rate, connectFailures: conn.failures, ephemeralOverStoredPerCpuSecond: ratio, stored: phases.stored, ephemeral: phases.ephemeral };
  });
}

/**
 * A bare Roomcast client for the ephemeral scenario: `message`, `messages` and
 * `broadcast` frames are deliveries; progress is reported as docs/protocol.md §6.9
 * asks (every quarter of the budget, broadcasts counted like every other frame).
 */
async function connectBroadcastClient({ url, room, user, localAddress, onMessage, log }) {
  const jwt = await new SignJWT({ cap: { "*": ["subscribe", "publish"] } })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(user)
    .setExpirationTime("6h")
    .sign(new TextEncoder().encode(BENCH_SECRET));
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/rooms/${encodeURIComponent(room)}/ws`, ["roomcast.v1"], {
    localAddress,
    perMessageDeflate: false,
    headers: { Authorization: `Bearer ${jwt}` },
  });
  let reportEvery = Infinity;
  let unreported = 0;
  let lastSeq = 0;
  await new Promise((resolve, reject) => {
    let welcomed = false;
    ws.on("message", (raw, isBinary) => {
      if (isBinary) return;
      const text = raw.toString();
      unreported += text.length;
      if (text.startsWith('{"type":"broadcast"')) onMessage(JSON.parse(text).data);
      else if (text.startsWith('{"type":"message",')) {
        const m = JSON.parse(text);
        lastSeq = m.seq;
        onMessage(m.data);
      } else if (text.startsWith('{"type":"messages"')) {
        const { messages } = JSON.parse(text);
        for (const m of messages) onMessage(m.data);
        lastSeq = messages[messages.length - 1].seq;
      } else if (!welcomed && text.startsWith('{"type":"welcome"')) {
        const welcome = JSON.parse(text);
        if (typeof welcome.limits?.maxUnconfirmedBytes === "number") reportEvery = welcome.limits.maxUnconfirmedBytes / 4;
        lastSeq = welcome.seq - welcome.replay;
        welcomed = true;
        resolve(undefined);
      } else if (text.startsWith('{"type":"error"')) log(`  ephemeral client ${user}: ${text.slice(0, 200)}`);
      if (unreported >= reportEvery) {
        unreported = 0;
        ws.send(`{"type":"progress","seq":${lastSeq}}`);
      }
    });
    ws.on("error", (err) => {
      if (!welcomed) reject(err);
    });
    ws.once("close", (code, reason) => {
      if (!welcomed) reject(new Error(`closed before welcome: ${code} ${reason}`));
    });
  });
  const prefix = `e${Math.random().toString(36).slice(2, 8)}-`;
  let n = 0;
  return {
    publish: (data) => ws.send(JSON.stringify({ type: "publish", id: prefix + (n++).toString(36), data })),
    broadcast: (data) => ws.send(JSON.stringify({ type: "broadcast", data })),
    close: () => ws.close(),
  };
}

/**
 * 10. Compression: what permessage-deflate costs and saves on realistic payloads
 * (bench/lib/payloads.mjs: chat lines of 100-300 B, JSON state of 2-4 KB). One server,
 * two rooms of the same size: in one every client (subscribers and publisher) offers
 * permessage-deflate as browsers do, in the other none does. Phases alternate between
 * the two rooms (off, deflate, then deflate, off in the next round...), so both modes
 * see the same machine load; the payload sequence is the same in both. Per payload
 * and mode: server CPU per delivery, bytes on the wire per delivery (what the
 * subscribers' TCP sockets read: frames with their headers, after compression),
 * latency, and the extension the server accepted.
 */
export async function compression(adapter, { subscribers, rate, durationS, warmupS = 1, rounds = 2, payloads = ["chat", "state"], log }) {
  const { PAYLOADS } = await import("./payloads.mjs");
  return withServer(adapter, log, async (server, opened) => {
    const modes = ["off", "deflate"];
    /** @type {Record<string, any>} */
    const rooms = {};
    for (const mode of modes) {
      const holder = { tracker: new DeliveryTracker() };
      const room = uniqueRoom(`z${mode}`);
      const specs = Array.from({ length: subscribers }, (_, i) => ({ room, user: `z${mode}-${i}` }));
      const deflate = mode === "deflate";
      const conn = await connectMany(adapter, server.url, specs, { onMessage: (data) => holder.tracker.deliver(data.i), log, connectOptions: { deflate } });
      opened.push(...conn.connections);
      const publisher = await adapter.connect({ url: server.url, room, user: `zpub-${mode}`, onMessage: () => {}, deflate });
      opened.push(publisher);
      const extensions = conn.connections[0]?.extensions?.() ?? null;
      log(`  ${mode}: ${conn.connections.length} subscribers (${conn.failures} failed); server accepted extensions: ${JSON.stringify(extensions)}`);
      rooms[mode] = { holder, conn, publisher, receivers: conn.connections.length, extensions };
    }
    const wire = (r) => r.conn.connections.reduce((sum, c) => sum + (c.bytesRead?.() ?? 0), 0);
    const cells = new Map();
    for (let round = 0; round < rounds; round++) {
      for (const kind of payloads) {
        const order = round % 2 === 0 ? modes : [...modes].reverse();
        for (const mode of order) {
          const r = rooms[mode];
          // The same seed for both modes: identical payloads, different framing.
          const make = PAYLOADS[kind](round + 1);
          r.holder.tracker = new DeliveryTracker();
          await openLoop({ rate, durationMs: warmupS * 1000, publish: (i, t) => (r.holder.tracker.expect(i, t, r.receivers), r.publisher.publish(make(i, t))) });
          await r.holder.tracker.drain(3_000);
          let payloadChars = 0;
          let payloadCount = 0;
          const sized = (key, t, room) => {
            const p = make(key, t, room);
            payloadChars += JSON.stringify(p).length;
            payloadCount++;
            return p;
          };
          const bytesBefore = wire(r);
          const result = await measure({ server, tracker: r.holder.tracker, publishers: [r.publisher], expectedPerMessage: r.receivers, rate, durationS, make: sized });
          const bytes = wire(r) - bytesBefore;
          const key = `${kind}/${mode}`;
          const cell = cells.get(key) ?? { payload: kind, mode, extensions: r.extensions, latency: histogram(), delivered: 0, expected: 0, lost: 0, serverCpuSeconds: 0, loadgenCpuSeconds: 0, wireBytes: 0, payloadChars: 0, payloadCount: 0, rounds: [] };
          cell.latency.add(r.holder.tracker.latency);
          cell.delivered += result.delivered;
          cell.expected += result.expected;
          cell.lost += result.lost;
          cell.serverCpuSeconds += result.serverCpuSeconds;
          cell.loadgenCpuSeconds += result.loadgenCpuSeconds;
          cell.wireBytes += bytes;
          cell.payloadChars += payloadChars;
          cell.payloadCount += payloadCount;
          const perDelivery = (v) => (result.delivered > 0 ? Math.round((v / result.delivered) * 10) / 10 : null);
          cell.rounds.push({ round, serverCpuUsPerDelivery: perDelivery(result.serverCpuSeconds * 1e6), wireBytesPerDelivery: perDelivery(bytes), p50: result.latencyMs.p50, p99: result.latencyMs.p99, lost: result.lost });
          cells.set(key, cell);
          log(`  round ${round + 1} ${kind} ${mode}: ${perDelivery(result.serverCpuSeconds * 1e6)} µs server CPU and ${perDelivery(bytes)} wire bytes per delivery, p50 ${result.latencyMs.p50} / p99 ${result.latencyMs.p99} ms, lost ${result.lost}`);
          await sleep(300);
        }
      }
    }
    const rows = [...cells.values()].map(({ latency, ...c }) => {
      const per = (v) => (c.delivered > 0 ? Math.round((v / c.delivered) * 10) / 10 : null);
      return {
        ...c,
        payloadBytesMean: c.payloadCount ? Math.round(c.payloadChars / c.payloadCount) : null,
        serverCpuUsPerDelivery: per(c.serverCpuSeconds * 1e6),
        deliveredPerServerCpuSecond: c.serverCpuSeconds > 0 ? Math.round(c.delivered / c.serverCpuSeconds) : null,
        wireBytesPerDelivery: per(c.wireBytes),
        loadgenCpuUsPerDelivery: per(c.loadgenCpuSeconds * 1e6),
        latencyMs: summarize(latency),
      };
    });
    // deflate ÷ off per payload: below 1 means deflate is cheaper / smaller / faster.
    const ratios = payloads.map((kind) => {
      const off = rows.find((c) => c.payload === kind && c.mode === "off");
      const on = rows.find((c) => c.payload === kind && c.mode === "deflate");
      const q = (a, b) => (a && b ? Math.round((a / b) * 100) / 100 : null);
      return {
        payload: kind,
        serverCpuPerDelivery: q(on?.serverCpuUsPerDelivery, off?.serverCpuUsPerDelivery),
        wireBytesPerDelivery: q(on?.wireBytesPerDelivery, off?.wireBytesPerDelivery),
        p50: q(on?.latencyMs.p50, off?.latencyMs.p50),
        p99: q(on?.latencyMs.p99, off?.latencyMs.p99),
      };
    });
    return {
      scenario: "compression",
      subscribers,
      publishRate: rate,
      durationS,
      rounds,
      extensions: { off: rooms.off.extensions, deflate: rooms.deflate.extensions },
      negotiated: /permessage-deflate/.test(rooms.deflate.extensions ?? ""),
      cells: rows,
      deflateOverOff: ratios,
    };
  });
}
