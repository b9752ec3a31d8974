/**
 * Black-box concurrency test of a busy room, written from docs/protocol.md alone
 * (§6.2 Joining, §6.3 Resuming, §6.4, §7 frames), over real sockets under `wrangler dev`.
 *
 * One room. Three raw publishers send bursts of publishes back to back with small random
 * pauses; meanwhile raw readers keep joining (fresh, resuming from a position some reader
 * applied, resuming from an older position, with a wrong epoch, "ahead"), stay a short random
 * time and reconnect; and three `@roomcast/client` readers stay subscribed through the run,
 * one of them forced to reconnect several times by closing its socket.
 *
 * Every frame of every raw connection (and of every socket the clients open) is recorded in
 * order and checked afterwards:
 * - the first frame is `welcome`, the second `presence_state`, each exactly once (§6.2 1–2);
 * - `message` seqs (flattening `messages`) are strictly increasing, contiguous, no duplicate,
 *   and none arrives before `welcome` (§6.2);
 * - the first seq is `after + 1` after a recovered resume, `welcome.seq - welcome.replay + 1`
 *   otherwise; `welcome.replay` is `seq - after` (recovered) or `min(HISTORY_ON_JOIN, seq)`
 *   (§6.2 3, §6.3); the resume verdict is the one §6.3 gives for the position asked;
 * - a message has the same content on every connection (§6.4 ordering), one epoch throughout;
 * - every publish gets exactly one `ack`, not a duplicate, after its own `message` (§6.4);
 *   the acked seqs are exactly 1..N;
 * - connections kept to the end reach seq N; no server-initiated close, no unexpected error
 *   (an `invalid_frame` answering our `progress` frame is tolerated: older servers lack it);
 * - every client reader delivered every acked seq exactly once, in order, without a `gap`.
 *
 * All violations are collected and printed (connection, what, the frames around it). The
 * schedule is drawn from a seeded PRNG; the seed is printed, and CONCURRENCY_SEED=<n> reuses it
 * (socket timing still varies). "the §6.2 checker" runs the checks on hand-made streams first,
 * without a server, so that a pass of the scenario means something.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type Message, type Room, type RoomcastClient, type SocketLike } from "../../src/index.js";
import { mintToken, startServer, uniqueRoom, waitFor, type TestServer } from "./server.js";

const HISTORY_ON_JOIN = 50;
const BASE_VARS = {
  // Rate limits out of the way: the publishers send bursts back to back.
  PUBLISH_RATE_PER_SECOND: "10000",
  PUBLISH_BURST: "100000",
  HISTORY_ON_JOIN: String(HISTORY_ON_JOIN),
};
const PUBLISHERS = 3;
const BURSTS = 10; // per publisher
const BURST_MIN = 8;
const BURST_MAX = 20;
const PAUSE_MS: [number, number] = [60, 450];
const READER_SLOTS = 6; // raw reader sockets open at once
const MAX_READER_JOINS = 36;
const READER_LIFETIME_MS: [number, number] = [40, 450];
const CLIENT_READERS = 3;
const FORCED_RECONNECTS = 4;
const PROGRESS_EVERY = 50;

// ---- a small seeded PRNG, so a failing schedule can be told apart ------------------------

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- recording connections -------------------------------------------------------------

type Frame = { type: string; [k: string]: unknown };
type ResumeKind = "fresh" | "own" | "older" | "wrong_epoch" | "ahead";

interface Conn {
  name: string;
  kind: "publisher" | "reader" | "client";
  resumeKind: ResumeKind;
  resume?: { epoch: string; after: number };
  frames: { t: number; f: Frame }[];
  welcome?: Frame;
  /** Highest seq applied in order after the welcome (what a client would resume from). */
  applied: number;
  sinceProgress: number;
  /** Characters of message frames read since the last `progress`. */
  unconfirmedChars: number;
  /** A message skipped ahead of `applied + 1`: this connection will not catch up by waiting. */
  broken: boolean;
  /** Must have received every message up to the final head before it was closed. */
  final: boolean;
  closedByUs: boolean;
  close?: { code: number; reason: string };
  openError?: string;
  ws?: WebSocket;
  /** Publisher: ids sent, in order. */
  sent: string[];
}

interface Violation {
  conn: string;
  what: string;
  /** The connection's frames around the spot, summarised. */
  frames?: string;
}

/** 3,4,5,9 → "3..5,9" */
function ranges(seqs: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < seqs.length; ) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
    out.push(j > i ? `${seqs[i]}..${seqs[j]}` : String(seqs[i]));
    i = j + 1;
  }
  return out.length > 8 ? `${out.slice(0, 8).join(",")},…` : out.join(",");
}

function summarize(f: Frame): string {
  switch (f.type) {
    case "welcome": {
      const r = f.resume as { recovered: boolean; reason?: string } | undefined;
      return `welcome(seq=${f.seq},replay=${f.replay}${r ? `,resume=${r.recovered ? "ok" : r.reason}` : ""})`;
    }
    case "message":
      return `m${f.seq}`;
    case "messages": {
      const s = (f.messages as { seq: number }[]).map((m) => m.seq);
      const contiguous = s.every((x, i) => i === 0 || x === s[i - 1]! + 1);
      return contiguous && s.length > 1 ? `m[${s[0]}..${s[s.length - 1]}]` : `m[${s.join(",")}]`;
    }
    case "ack":
      return `ack(${f.id}→${f.seq}${f.duplicate ? ",dup" : ""})`;
    case "error":
      return `error(${f.code}${f.id !== undefined ? `,${f.id}` : ""})`;
    case "presence_state":
      return "pstate";
    case "presence_diff":
      return "pdiff";
    default:
      return String(f.type);
  }
}

function excerpt(c: Conn, at?: number): string {
  const s = c.frames.map((x) => summarize(x.f));
  if (at === undefined || at < 8) {
    const n = Math.max(8, (at ?? 0) + 5);
    return `[${s.slice(0, n).join(" ")}${s.length > n ? " …" : ""}]`;
  }
  return `[${s.slice(0, 4).join(" ")} … #${at - 3}: ${s.slice(at - 3, at + 4).join(" ")}${s.length > at + 4 ? " …" : ""}]`;
}

function resumeLabel(c: Conn): string {
  return c.resume ? `${c.resumeKind} after=${c.resume.after}` : "fresh";
}

/** Messages in arrival order, with the index of the frame that carried them. */
function flatten(c: Conn): { seq: number; id: string; from: string; data: unknown; at: number }[] {
  const out: { seq: number; id: string; from: string; data: unknown; at: number }[] = [];
  c.frames.forEach(({ f }, at) => {
    if (f.type === "message") out.push({ seq: f.seq as number, id: f.id as string, from: f.from as string, data: f.data, at });
    else if (f.type === "messages") for (const m of f.messages as Frame[]) out.push({ seq: m.seq as number, id: m.id as string, from: m.from as string, data: m.data, at });
  });
  return out;
}

/** What a client applies: after the welcome, the next seq in order. */
function onFrame(c: Conn, f: Frame, chars = 0): void {
  if (f.type === "welcome") {
    c.welcome = f;
    const r = f.resume as { recovered: boolean } | undefined;
    c.applied = r?.recovered && c.resume ? c.resume.after : (f.seq as number) - (f.replay as number);
    return;
  }
  if (!c.welcome) return;
  const msgs = f.type === "message" ? [f] : f.type === "messages" ? (f.messages as Frame[]) : [];
  if (msgs.length > 0) c.unconfirmedChars += chars;
  for (const m of msgs) {
    if ((m.seq as number) > c.applied + 1) c.broken = true;
    if (m.seq === c.applied + 1) {
      c.applied++;
      c.sinceProgress++;
    }
  }
  // Flow control (newer servers): confirm how far we have read, every PROGRESS_EVERY
  // messages or a quarter of welcome.limits.maxUnconfirmedBytes, whichever comes first.
  // Not on the client library's sockets: that is the library's business.
  const limit = (c.welcome.limits as { maxUnconfirmedBytes?: number } | undefined)?.maxUnconfirmedBytes;
  if (c.sinceProgress > 0 && (c.sinceProgress >= PROGRESS_EVERY || (limit !== undefined && c.unconfirmedChars >= limit / 4))) {
    c.sinceProgress = 0;
    c.unconfirmedChars = 0;
    if (c.kind !== "client" && c.ws?.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify({ type: "progress", seq: c.applied }));
  }
}

function record(c: Conn, ws: WebSocket): void {
  c.ws = ws;
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? "<binary>" : data.toString();
    let f: Frame;
    try {
      f = JSON.parse(text) as Frame;
    } catch {
      f = { type: "<unparseable>", raw: text.slice(0, 80) };
    }
    c.frames.push({ t: Date.now(), f });
    onFrame(c, f, text.length);
  });
  ws.on("close", (code, reason) => {
    c.close = { code, reason: reason.toString() };
  });
  ws.on("error", (err) => {
    c.openError ??= String(err.message ?? err);
  });
}

// ---- the checks (§6.2, §6.3, §6.4) --------------------------------------------------------

interface Truth {
  epoch: string;
  head: number;
  /** seq → "from/id" as first seen; every connection must agree. */
  content: Map<number, string>;
}

function checkConn(c: Conn, truth: Truth, out: Violation[]): void {
  const v = (what: string, at?: number): void => void out.push({ conn: `${c.name} (${resumeLabel(c)})`, what, frames: excerpt(c, at) });
  if (c.openError && c.frames.length === 0) return v(`connection failed: ${c.openError}`);
  if (c.frames.length === 0) return v("no frame received");
  const types = c.frames.map((x) => x.f.type);
  const wi = types.indexOf("welcome");
  if (wi !== 0) v(`first frame is ${types[0]}, not welcome${wi > 0 ? ` (welcome is frame #${wi})` : " (no welcome at all)"}`, 0);
  if (types.filter((t) => t === "welcome").length > 1) v("more than one welcome", types.lastIndexOf("welcome"));
  if (wi < 0) return;
  if (types[wi + 1] !== "presence_state") v(`frame after welcome is ${types[wi + 1]}, not presence_state`, wi + 1);
  if (types.filter((t) => t === "presence_state").length !== 1) v(`${types.filter((t) => t === "presence_state").length} presence_state frames`);

  const w = c.welcome!;
  const wseq = w.seq as number;
  const replay = w.replay as number;
  const resume = w.resume as { recovered: boolean; reason?: string } | undefined;
  if (w.epoch !== truth.epoch) v(`welcome.epoch ${String(w.epoch)} differs from the room's ${truth.epoch}`, wi);

  // The resume verdict §6.3 gives for what we asked (nothing is ever trimmed here).
  if (!c.resume) {
    if (resume !== undefined) v(`welcome.resume present without a resume query: ${JSON.stringify(resume)}`, wi);
  } else if (c.resumeKind === "wrong_epoch") {
    if (resume?.recovered !== false || resume.reason !== "epoch_changed") v(`resume with a foreign epoch got ${JSON.stringify(resume)}, expected epoch_changed`, wi);
  } else if (c.resume.after > wseq) {
    if (resume?.recovered !== false || resume.reason !== "ahead") v(`resume after=${c.resume.after} > seq ${wseq} got ${JSON.stringify(resume)}, expected ahead`, wi);
  } else if (resume?.recovered !== true) {
    v(`resume from a retained position in this epoch got ${JSON.stringify(resume)}, expected recovered`, wi);
  }

  const recovered = resume?.recovered === true && c.resume !== undefined;
  const expectedReplay = recovered ? wseq - c.resume!.after : Math.min(HISTORY_ON_JOIN, wseq);
  if (replay !== expectedReplay) v(`welcome.replay ${replay}, expected ${expectedReplay} (${recovered ? "seq - after" : "min(HISTORY_ON_JOIN, seq)"})`, wi);
  const expectedFirst = recovered ? c.resume!.after + 1 : wseq - replay + 1;

  const msgs = flatten(c);
  const early = msgs.filter((m) => m.at < wi);
  if (early.length > 0) v(`${early.length} message(s) before welcome: seq ${ranges(early.map((m) => m.seq))}`, early[0]!.at);
  if (msgs.length > 0) {
    if (msgs[0]!.seq !== expectedFirst) v(`first message seq ${msgs[0]!.seq}, expected ${expectedFirst}`, msgs[0]!.at);
    let breaks = 0;
    for (let i = 1; i < msgs.length; i++) {
      const prev = msgs[i - 1]!.seq;
      const cur = msgs[i]!.seq;
      if (cur === prev + 1) continue;
      if (breaks++ < 2) v(`${cur <= prev ? (msgs.slice(0, i).some((m) => m.seq === cur) ? "duplicate" : "out of order") : "gap"}: seq ${cur} after ${prev}`, msgs[i]!.at);
    }
    if (breaks > 2) v(`${breaks - 2} more order breaks`);
    const seen = new Set<number>();
    const dups: number[] = [];
    for (const m of msgs) {
      if (seen.has(m.seq)) dups.push(m.seq);
      seen.add(m.seq);
    }
    if (dups.length > 0) v(`${dups.length} seq(s) received twice: ${ranges([...new Set(dups)].sort((a, b) => a - b))}`);
  }
  for (const m of msgs) {
    const key = `${m.from}/${m.id}/${JSON.stringify(m.data)}`;
    const known = truth.content.get(m.seq);
    if (known === undefined) truth.content.set(m.seq, key);
    else if (known !== key) v(`seq ${m.seq} is ${key} here but ${known} elsewhere`, m.at);
  }
  const last = msgs.length > 0 ? msgs[msgs.length - 1]!.seq : expectedFirst - 1;
  if (last < wseq) v(`replay incomplete: last seq ${last} < welcome.seq ${wseq}`);
  if (c.final && last !== truth.head) v(`kept to the end but last seq is ${last}, head is ${truth.head}`);

  // Errors and closes: none expected, except the answer an older server gives `progress`.
  c.frames.forEach(({ f }, at) => {
    if (f.type === "error" && !(f.code === "invalid_frame" && f.id === undefined)) v(`unexpected error frame ${JSON.stringify(f)}`, at);
    if (f.type === "reconnect" || f.type === "<unparseable>") v(`unexpected frame ${JSON.stringify(f)}`, at);
  });
  if (!c.closedByUs && c.kind !== "client") v(`closed by the server: ${c.close ? `${c.close.code} ${c.close.reason}` : "still open"}`);

  if (c.kind === "publisher") {
    // §6.4: one ack per publish, after the publisher's own message (its replay was over before it published).
    const acks = new Map<string, number>();
    const seen = new Map<number, { id: string; from: string; at: number }>();
    for (const m of msgs) if (!seen.has(m.seq)) seen.set(m.seq, m);
    c.frames.forEach(({ f }, at) => {
      if (f.type !== "ack") return;
      const id = f.id as string;
      const seq = f.seq as number;
      if (acks.has(id)) v(`second ack for ${id}`, at);
      acks.set(id, seq);
      if (f.duplicate !== false) v(`ack for ${id} says duplicate`, at);
      const m = seen.get(seq);
      if (!m || m.at > at) v(`ack ${id}→${seq} before its message${m ? ` (message at frame #${m.at})` : " (never received)"}`, at);
      else if (m.id !== id || m.from !== c.welcome!.userId) v(`ack ${id}→${seq} but message ${seq} is ${m.from}/${m.id}`, at);
    });
    for (const id of c.sent) if (!acks.has(id)) v(`publish ${id} never acked`);
  }
}

// ---- the scenario ------------------------------------------------------------------------

interface Outcome {
  violations: Violation[];
  stats: string;
}

async function runScenario(server: TestServer, seed: number): Promise<Outcome> {
  const rnd = prng(seed);
  const between = ([lo, hi]: [number, number]) => Math.floor(lo + rnd() * (hi - lo + 1));
  const room = uniqueRoom("conc");
  const wsUrl = `${server.url.replace(/^http/, "ws")}/v1/rooms/${room}/ws`;
  const conns: Conn[] = [];
  const violations: Violation[] = [];
  const clients: RoomcastClient[] = [];
  let epoch: string | undefined;

  const newConn = (name: string, kind: Conn["kind"], resumeKind: ResumeKind, resume?: Conn["resume"]): Conn => {
    const c: Conn = { name, kind, resumeKind, resume, frames: [], applied: 0, sinceProgress: 0, unconfirmedChars: 0, broken: false, final: false, closedByUs: false, sent: [] };
    conns.push(c);
    return c;
  };

  const open = async (c: Conn, sub: string, cap: string[]): Promise<void> => {
    const token = await mintToken({ sub, cap: { [room]: cap } });
    const url = c.resume ? `${wsUrl}?epoch=${encodeURIComponent(c.resume.epoch)}&after=${c.resume.after}` : wsUrl;
    const ws = new WebSocket(url, ["roomcast.v1"], { headers: { Authorization: `Bearer ${token}` } });
    record(c, ws);
    await waitFor(`${c.name} welcomed`, () => c.welcome !== undefined || c.close !== undefined || (c.openError !== undefined && ws.readyState === WebSocket.CLOSED), 10_000).catch(() => {});
  };

  const closeConn = async (c: Conn): Promise<void> => {
    const ws = c.ws!;
    // Only a socket still open is closed by us; one already closing was closed by the server.
    if (ws.readyState === WebSocket.OPEN) {
      c.closedByUs = true;
      ws.close(1000);
    }
    await waitFor(`${c.name} closed`, () => ws.readyState === WebSocket.CLOSED, 3_000).catch(() => ws.terminate());
  };

  const replayDone = (c: Conn) => c.welcome !== undefined && c.applied >= (c.welcome.seq as number);
  const stuck = (c: Conn) => c.broken || c.close !== undefined;

  // 1. The client readers, subscribed before anything is published.
  const clientRooms: { room: Room; name: string; delivered: Message[]; gaps: string[]; recovered: number; sockets: WebSocket[] }[] = [];
  for (let i = 0; i < CLIENT_READERS; i++) {
    const name = `client-${i}`;
    const entry = { room: undefined as unknown as Room, name, delivered: [] as Message[], gaps: [] as string[], recovered: 0, sockets: [] as WebSocket[] };
    const client = createClient({
      url: server.url,
      token: () => mintToken({ sub: name, cap: { [room]: ["subscribe", "presence"] } }),
      backoff: { minMs: 50, maxMs: 200 },
      connectTimeoutMs: 5_000,
      messageBuffer: 0,
      // The client's sockets are recorded and checked like the raw ones.
      createSocket: (url, protocols, headers) => {
        const ws = new WebSocket(url, protocols, { headers });
        const q = new URL(url).searchParams;
        const resume = q.has("epoch") ? { epoch: q.get("epoch")!, after: Number(q.get("after")) } : undefined;
        const c = newConn(`${name}#${entry.sockets.length}`, "client", resume ? "own" : "fresh", resume);
        record(c, ws);
        entry.sockets.push(ws);
        return ws as unknown as SocketLike;
      },
    });
    clients.push(client);
    entry.room = client.room(room);
    entry.room.on("message", (m) => entry.delivered.push(m));
    entry.room.on("gap", (g) => entry.gaps.push(g.reason));
    entry.room.on("recovered", () => entry.recovered++);
    clientRooms.push(entry);
  }
  await waitFor("client readers connected", () => clientRooms.every((e) => e.room.state === "connected"), 15_000);

  // 2. The publishers join; they publish only once all are in and their replays are over.
  const publishers: Conn[] = [];
  for (let p = 0; p < PUBLISHERS; p++) publishers.push(newConn(`publisher-${p}`, "publisher", "fresh"));
  await Promise.all(publishers.map((c, p) => open(c, `pub-${p}`, ["subscribe", "publish", "presence"])));
  await waitFor("publishers ready", () => publishers.every(replayDone), 10_000);
  epoch = publishers[0]!.welcome!.epoch as string;

  let publishing = true;
  let totalPublishes = 0;
  // Joins timed to land inside a burst (the room busy, batches open) are the interesting ones.
  let burstWaiters: (() => void)[] = [];
  const nextBurst = () => new Promise<void>((r) => burstWaiters.push(r));
  const publishingDone = Promise.all(
    publishers.map(async (c, p) => {
      for (let b = 0; b < BURSTS; b++) {
        const n = between([BURST_MIN, BURST_MAX]);
        const waiters = burstWaiters;
        burstWaiters = [];
        for (const w of waiters) setTimeout(w, between([0, 12]));
        for (let i = 0; i < n; i++) {
          const id = `p${p}-b${b}-${i}`;
          c.sent.push(id);
          totalPublishes++;
          c.ws!.send(JSON.stringify({ type: "publish", id, data: { p, b, i } }));
        }
        await sleep(between(PAUSE_MS));
      }
      await waitFor(`${c.name} acked`, () => c.frames.filter((x) => x.f.type === "ack" || (x.f.type === "error" && x.f.id !== undefined)).length >= c.sent.length, 15_000).catch(() => {});
    }),
  ).then(() => {
    publishing = false;
  });

  // 3. Raw readers keep joining, resuming and leaving while the publishers run.
  let joins = 0;
  const positions: number[] = []; // positions some reader applied (all in this epoch)
  const knownHead = () => Math.max(0, ...publishers.map((c) => c.applied));
  const readerSlot = async (slot: number) => {
    let prev: Conn | undefined;
    let gen = 0;
    while (true) {
      let kind: ResumeKind = "fresh";
      let resume: Conn["resume"];
      if (prev) {
        const r = rnd();
        if (r < 0.6) kind = "own";
        else if (r < 0.75) kind = "older";
        else if (r < 0.85) kind = "fresh";
        else if (r < 0.93) kind = "wrong_epoch";
        else kind = "ahead";
      }
      if (kind === "own") resume = { epoch: epoch!, after: prev!.applied };
      else if (kind === "older") resume = { epoch: epoch!, after: rnd() < 0.3 ? 0 : positions[Math.floor(rnd() * positions.length)] ?? 0 };
      else if (kind === "wrong_epoch") resume = { epoch: "0000-not-this-epoch", after: prev!.applied };
      else if (kind === "ahead") resume = { epoch: epoch!, after: knownHead() + 1_000 };
      const c = newConn(`reader-${slot}.${gen++}`, "reader", kind, resume);
      joins++;
      await open(c, `reader-${slot}`, ["subscribe", "presence"]);
      await waitFor(`${c.name} replay`, () => replayDone(c) || stuck(c), 5_000).catch(() => {});
      const until = Date.now() + between(READER_LIFETIME_MS);
      while (Date.now() < until && publishing) await sleep(10);
      if (!publishing || joins >= MAX_READER_JOINS) {
        // Kept to the end: must catch up with the final head.
        while (publishing) await sleep(20);
        c.final = true;
        return c;
      }
      if (c.welcome) positions.push(c.applied);
      await closeConn(c);
      prev = c;
      if (rnd() < 0.5) await Promise.race([nextBurst(), sleep(600)]);
      else await sleep(between([0, 80]));
    }
  };
  const finalReaders = Promise.all(Array.from({ length: READER_SLOTS }, (_, s) => sleep(s * 40).then(() => readerSlot(s))));

  // 4. One client reader is forced to reconnect a few times (its socket closed under it, 4000 is retryable).
  const forced = clientRooms[0]!;
  let forcedCloses = 0;
  const forcing = (async () => {
    for (let k = 0; k < FORCED_RECONNECTS && publishing; k++) {
      await sleep(between([350, 650]));
      const ws = forced.sockets[forced.sockets.length - 1]!;
      const c = conns.find((x) => x.ws === ws)!;
      // Close it once its replay is over (so "replay incomplete" stays a real finding).
      await waitFor("forced client replayed", () => replayDone(c) || stuck(c) || ws.readyState !== WebSocket.OPEN, 5_000).catch(() => {});
      if (ws.readyState === WebSocket.OPEN && forced.room.state === "connected") {
        c.closedByUs = true;
        ws.close(4000, "test: forced reconnect");
        forcedCloses++;
      }
    }
  })();

  await publishingDone;
  await forcing;
  const readers = await finalReaders;

  // 5. Everything acked: the head is the number of publishes. Let everyone catch up.
  const head = totalPublishes;
  for (const c of [...publishers, ...readers]) c.final = true;
  await waitFor(
    "everyone caught up",
    () => [...publishers, ...readers].every((c) => c.applied >= head || stuck(c)) && clientRooms.every((e) => (e.delivered.at(-1)?.seq ?? 0) >= head),
    10_000,
  ).catch(() => {});
  await sleep(150); // anything extra (a stray duplicate) would show up here
  for (const e of clientRooms) for (const s of e.sockets) if (s.readyState === WebSocket.OPEN) conns.find((c) => c.ws === s)!.final = true;
  await Promise.all([...publishers, ...readers].map(closeConn));
  for (const client of clients) client.close();

  // 6. Check.
  const acked: number[] = [];
  for (const c of publishers) for (const { f } of c.frames) if (f.type === "ack") acked.push(f.seq as number);
  acked.sort((a, b) => a - b);
  const expected = Array.from({ length: head }, (_, i) => i + 1);
  if (acked.join(",") !== expected.join(",")) {
    const missing = expected.filter((s) => !acked.includes(s));
    violations.push({ conn: "publishers", what: `acked seqs are not exactly 1..${head}: ${acked.length} acks, missing ${missing.slice(0, 10).join(",")}` });
  }
  const truth: Truth = { epoch: epoch!, head, content: new Map() };
  // Publishers first: their acks define what each seq is.
  for (const c of [...publishers, ...conns.filter((x) => x.kind !== "publisher")]) checkConn(c, truth, violations);
  for (const e of clientRooms) {
    const seqs = e.delivered.map((m) => m.seq);
    if (seqs.join(",") !== expected.join(",")) {
      const dup = seqs.filter((s, i) => seqs.indexOf(s) !== i);
      const missing = expected.filter((s) => !seqs.includes(s));
      const breakAt = seqs.findIndex((s, i) => s !== i + 1);
      violations.push({
        conn: e.name,
        what: `delivered ${seqs.length} of ${head}: missing [${missing.slice(0, 12).join(",")}${missing.length > 12 ? ",…" : ""}] duplicates [${dup.slice(0, 6).join(",")}] first break at #${breakAt}: …${seqs.slice(Math.max(0, breakAt - 3), breakAt + 3).join(",")}…`,
      });
    }
    if (e.gaps.length > 0) violations.push({ conn: e.name, what: `gap events: ${e.gaps.join(",")}` });
  }
  if (forced.sockets.length < forcedCloses + 1) violations.push({ conn: forced.name, what: `${forcedCloses} forced reconnects but ${forced.sockets.length} sockets` });
  if (forced.recovered < forcedCloses) violations.push({ conn: forced.name, what: `${forcedCloses} forced reconnects but ${forced.recovered} recovered events` });

  const resumeKinds = conns.filter((c) => c.kind === "reader").reduce<Record<string, number>>((acc, c) => ((acc[c.resumeKind] = (acc[c.resumeKind] ?? 0) + 1), acc), {});
  const batched = conns.reduce((n, c) => n + c.frames.filter((x) => x.f.type === "messages").length, 0);
  const stats =
    `seed ${seed}: ${head} messages, ${joins} raw reader joins ${JSON.stringify(resumeKinds)}, ` +
    `${clientRooms.reduce((n, e) => n + e.sockets.length, 0)} client sockets (${forcedCloses} forced reconnects), ` +
    `${conns.length} connections (${new Set(violations.map((x) => x.conn)).size} with violations), ${batched} \`messages\` frames, ${violations.length} violations`;
  return { violations, stats };
}

function report(o: Outcome): string {
  const byConn = new Map<string, Violation[]>();
  for (const x of o.violations) byConn.set(x.conn, [...(byConn.get(x.conn) ?? []), x]);
  const lines: string[] = [];
  for (const [conn, vs] of [...byConn].slice(0, 8)) {
    lines.push(`  - ${conn}:`);
    for (const x of vs) lines.push(`      ${x.what}`);
    const frames = vs.find((x) => x.frames)?.frames;
    if (frames) lines.push(`      frames: ${frames}`);
  }
  if (byConn.size > 8) lines.push(`  … and ${byConn.size - 8} more connections`);
  const byKind = new Map<string, number>();
  for (const x of o.violations) {
    const k = x.what.replace(/[\d.,…]*\d[\d.,…]*/g, "N");
    byKind.set(k, (byKind.get(k) ?? 0) + 1);
  }
  return [
    o.stats,
    ...(o.violations.length ? ["violations by connection:", ...lines, "violations by kind:", ...[...byKind].map(([k, n]) => `  ${n} × ${k}`)] : []),
  ].join("\n");
}

// ---- the checker on hand-made streams (no server), so a pass below means something -------

describe("the §6.2 checker", () => {
  const epoch = "e-1";
  const msg = (seq: number) => ({ type: "message", seq, id: `p0-${seq}`, from: "pub-0", ts: 0, data: seq });
  const batch = (a: number, b: number) => ({ type: "messages", messages: Array.from({ length: b - a + 1 }, (_, i) => msg(a + i)) });
  const welcome = (seq: number, replay: number, resume?: object) => ({ type: "welcome", userId: "r", epoch, seq, replay, ...(resume ? { resume } : {}) });
  const check = (frames: Frame[], resume?: { after: number }, kind: ResumeKind = resume ? "own" : "fresh") => {
    const c: Conn = {
      name: "r", kind: "reader", resumeKind: kind, resume: resume && { epoch, after: resume.after }, frames: [], applied: 0, sinceProgress: 0, unconfirmedChars: 0,
      broken: false, final: true, closedByUs: true, sent: [],
    };
    for (const f of frames) {
      c.frames.push({ t: 0, f });
      onFrame(c, f);
    }
    const out: Violation[] = [];
    checkConn(c, { epoch, head: 12, content: new Map() }, out);
    return out.map((x) => x.what);
  };
  const pstate = { type: "presence_state", members: [] };

  it("accepts good streams", () => {
    expect(check([welcome(10, 10), pstate, batch(1, 10), msg(11), batch(12, 12)])).toEqual([]);
    expect(check([welcome(10, 4, { recovered: true }), pstate, { type: "pdiff" }, batch(7, 9), msg(10), batch(11, 12)], { after: 6 })).toEqual([]);
    // A replay that carries on past welcome.seq, and an older server's answer to `progress`.
    expect(check([welcome(8, 2, { recovered: true }), pstate, batch(7, 10), { type: "error", code: "invalid_frame", message: "x" }, batch(11, 12)], { after: 6 })).toEqual([]);
    expect(check([welcome(10, 10, { recovered: false, reason: "epoch_changed" }), pstate, batch(1, 12)], { after: 3 }, "wrong_epoch")).toEqual([]);
  });

  it("flags a live message before the welcome that comes again in the replay", () => {
    const found = check([batch(7, 10), welcome(10, 4, { recovered: true }), pstate, batch(7, 12)], { after: 6 });
    expect(found).toContain("first frame is messages, not welcome (welcome is frame #1)");
    expect(found).toContain("4 message(s) before welcome: seq 7..10");
    expect(found).toContain("4 seq(s) received twice: 7..10");
  });

  it("flags duplicates, gaps, a wrong first seq, a wrong replay count and an unfinished stream", () => {
    expect(check([welcome(10, 10), pstate, batch(1, 10), msg(10), batch(11, 12)])).toContain("duplicate: seq 10 after 10");
    expect(check([welcome(10, 10), pstate, batch(1, 10), batch(12, 12)])).toContain("gap: seq 12 after 10");
    expect(check([welcome(10, 4, { recovered: true }), pstate, batch(8, 12)], { after: 6 })).toContain("first message seq 8, expected 7");
    expect(check([welcome(10, 3, { recovered: true }), pstate, batch(7, 12)], { after: 6 })).toContain("welcome.replay 3, expected 4 (seq - after)");
    expect(check([welcome(10, 10), pstate, batch(1, 11)])).toContain("kept to the end but last seq is 11, head is 12");
    expect(check([welcome(10, 10), batch(1, 12)])).toContain("frame after welcome is messages, not presence_state");
  });
});

// ---- the variants ------------------------------------------------------------------------

const variants: { name: string; vars: Record<string, string> }[] = [
  { name: "default batching", vars: {} },
  // Batching windows open often, and replays of a long gap span several turns.
  { name: "BROADCAST_MAX_DELAY_MS=20, REPLAY_PAGE_SIZE=16", vars: { BROADCAST_MAX_DELAY_MS: "20", REPLAY_PAGE_SIZE: "16" } },
];

for (const variant of variants) {
  describe(`a busy room under concurrent joins and resumes (${variant.name})`, () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer({ ...BASE_VARS, ...variant.vars });
    });
    afterAll(async () => {
      await server?.dispose();
    });

    it("keeps every connection's frames in the order §6.2 promises, and every client reader complete", async () => {
      const seed = Number(process.env.CONCURRENCY_SEED ?? Math.floor(Math.random() * 2 ** 31));
      const outcome = await runScenario(server, seed);
      const text = report(outcome);
      console.log(`[${variant.name}] ${text}`);
      expect(outcome.violations.length, text).toBe(0);
    }, 45_000);
  });
}
