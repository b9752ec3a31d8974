#!/usr/bin/env node
// Where a Durable Object system's memory per idle connection goes: the system's workerd
// is started with its inspector open (BENCH_WORKERD_INSPECTOR), a V8 heap snapshot is
// taken over the Chrome DevTools protocol before and after N idle connections
// (rooms of 100), and the difference is summed by constructor (JS heap), next to the
// process's RSS difference (JS heap + everything native: sockets, buffers, kj state).
//
//   node bench/heap-snapshot.mjs [system=roomcast-direct] [connections=1000] [--per-room 100] [--settle 3]
//     [--broadcast] [--deflate] [--out file.json]
// --broadcast: one message into each room after connecting, so every socket has been sent a
// frame (Roomcast sends each a welcome anyway; partyserver sends nothing until a broadcast).
// --deflate: every client offers permessage-deflate, as browsers do.
//   (systems: roomcast-direct, roomcast-direct-baseline, partyserver-direct, bare-do-direct)
//
// The snapshot is of the one isolate that runs every object of the Worker; workerd runs
// V8 collects garbage before each snapshot, so the numbers are live objects only.
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { connectMany } from "./lib/loadgen.mjs";
import { freePort, sleep } from "./lib/net.mjs";
import { sample } from "./lib/sampler.mjs";

const { positionals, values } = parseArgs({ allowPositionals: true, options: { out: { type: "string" }, settle: { type: "string" }, "per-room": { type: "string" }, broadcast: { type: "boolean" }, deflate: { type: "boolean" } } });
const system = positionals[0] ?? "roomcast-direct";
const connections = Number(positionals[1] ?? 1000);
const settleMs = Number(values.settle ?? 3) * 1000;
const log = (line) => console.error(line);

const inspectorPort = await freePort();
process.env.BENCH_WORKERD_INSPECTOR = `127.0.0.1:${inspectorPort}`;
// A path (containing "/") names an adapter module outside bench/adapters/.
const adapter = (await import(system.includes("/") ? pathToFileURL(system).href : `./adapters/${system}.mjs`)).default;
const server = await adapter.start({ port: await freePort(), cpus: "1", log });
const opened = [];
try {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
  const target = targets[0];
  if (!target?.webSocketDebuggerUrl) throw new Error(`no inspector target: ${JSON.stringify(targets)}`);
  log(`inspector target: ${target.title ?? target.id} (${targets.length} targets)`);
  const cdp = await devtools(target.webSocketDebuggerUrl.replace("localhost", "127.0.0.1"));

  const before = await snapshot(cdp);
  const rssBefore = sample(server.pids()).rssBytes;
  const perRoom = Number(values["per-room"] ?? 100);
  const rooms = Array.from({ length: Math.ceil(connections / perRoom) }, (_, r) => `heap-${r}-${Date.now().toString(36)}`);
  const specs = Array.from({ length: connections }, (_, i) => ({ room: rooms[Math.floor(i / perRoom)], user: `idle-${i}` }));
  let received = 0;
  const conn = await connectMany(adapter, server.url, specs, { concurrency: 100, onMessage: () => received++, connectOptions: { deflate: values.deflate ?? false } });
  opened.push(...conn.connections);
  if (values.broadcast) {
    for (let r = 0; r < rooms.length; r++) conn.bySpec[r * perRoom]?.publish({ t: 0, i: r, r, text: "hello, room" });
    const deadline = Date.now() + 10_000;
    while (received < conn.connections.length && Date.now() < deadline) await sleep(50);
    log(`one broadcast per room: ${received} deliveries`);
  }
  log(`${conn.connections.length} idle connections (${conn.failures} failed); settling ${settleMs / 1000} s`);
  await sleep(settleMs);
  const after = await snapshot(cdp);
  const rssAfter = sample(server.pids()).rssBytes;
  const held = conn.connections.length;

  const keys = new Set([...after.groups.keys(), ...before.groups.keys()]);
  const diff = [...keys]
    .map((k) => {
      const a = after.groups.get(k) ?? { count: 0, bytes: 0 };
      const b = before.groups.get(k) ?? { count: 0, bytes: 0 };
      return { group: k, count: a.count - b.count, bytes: a.bytes - b.bytes };
    })
    .sort((x, y) => y.bytes - x.bytes);
  const heapDelta = after.total - before.total;
  const result = {
    system,
    connections: held,
    perRoom,
    broadcast: values.broadcast ?? false,
    deflate: values.deflate ?? false,
    rssBytesPerConnection: Math.round((rssAfter - rssBefore) / held),
    jsHeapBytesPerConnection: Math.round(heapDelta / held),
    jsHeapUsed: { beforeBytes: before.total, afterBytes: after.total, usage: after.usage },
    nativeAndOtherBytesPerConnection: Math.round((rssAfter - rssBefore - heapDelta) / held),
    top: diff.slice(0, 25).map((d) => ({ ...d, perConnection: Math.round((d.bytes / held) * 10) / 10, countPerConnection: Math.round((d.count / held) * 100) / 100 })),
  };
  console.log(JSON.stringify(result, null, 2));
  if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2));
  cdp.close();
} finally {
  for (const c of opened) {
    try {
      c.close();
    } catch {
      // closed already
    }
  }
  await server.stop();
}

/** A minimal Chrome DevTools protocol client: `send(method, params)` and event listeners. */
async function devtools(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 2 ** 31 });
  await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
  let id = 0;
  const pending = new Map();
  const listeners = new Map();
  ws.on("message", (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.id && pending.has(m.id)) {
      const { resolve, reject } = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) reject(new Error(`${m.error.message} (${m.error.code})`));
      else resolve(m.result);
    } else if (m.method) listeners.get(m.method)?.(m.params);
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const n = ++id;
        pending.set(n, { resolve, reject });
        ws.send(JSON.stringify({ id: n, method, params }));
      }),
    on: (method, fn) => listeners.set(method, fn),
    close: () => ws.close(),
  };
}

/** Takes a heap snapshot and sums self sizes by group (object constructor, or node type). */
async function snapshot(cdp) {
  const chunks = [];
  cdp.on("HeapProfiler.addHeapSnapshotChunk", ({ chunk }) => chunks.push(chunk));
  await cdp.send("HeapProfiler.enable");
  // (workerd never answers HeapProfiler.collectGarbage; V8 collects garbage before a snapshot anyway.)
  await cdp.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  const usage = await cdp.send("Runtime.getHeapUsage").catch(() => null);
  const snap = JSON.parse(chunks.join(""));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [T, N, S] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
  const groups = new Map();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + T]];
    const name = snap.strings[snap.nodes[i + N]];
    const size = snap.nodes[i + S];
    total += size;
    const key = type === "object" || type === "native" ? `${type}: ${name}` : type === "closure" ? "closure" : type;
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    groups.set(key, g);
  }
  return { groups, total, usage };
}
