/**
 * State migration from REAL old state (issue #14 §2): the previous release's server
 * (scripts/previous-release.json, checked out of git by scripts/lib/previous-release.mjs)
 * makes the state with its own code — messages in several rooms, an epoch to resume
 * from, a presence grace row, a ban, metrics — then it is killed and this checkout is
 * started on the same storage (a deploy), which migrates it (src/room/migrate-room.ts).
 * Everything is checked through the public and admin APIs, as an operator would.
 * A second test rolls back to the old release on the migrated database and forward again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { mintToken, startServer, uniqueRoom, waitFor, type TestServer } from "./server.js";

type Release = { tag: string; commit: string; root: string };
// A computed specifier: the helper is plain JavaScript without types (scripts/lib/).
const helper = new URL("../../../../scripts/lib/previous-release.mjs", import.meta.url).href;
const { previousRelease, repoRoot } = (await import(helper)) as { previousRelease: () => Promise<Release>; repoRoot: string };

type StoredMessage = { seq: number; id: string; from: string; ts: number; data: unknown };
type HistoryAnswer = { epoch: string; head: number; hasMore: boolean; messages: StoredMessage[] };

let server: TestServer;
let release: Release;
const admin = () => mintToken({ sub: "ops", cap: { "*": ["admin", "subscribe", "publish"] } });

async function api(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

const publish = async (room: string, sub: string, id: string, data: unknown) => {
  const r = await api("POST", `/v1/rooms/${encodeURIComponent(room)}/messages`, await mintToken({ sub }), { id, data });
  if (r.status !== 201 && r.status !== 200) throw new Error(`publish ${room}/${id}: ${r.status} ${r.text}`);
  return r.json as { seq: number; duplicate: boolean };
};

async function history(room: string): Promise<HistoryAnswer> {
  const all: StoredMessage[] = [];
  let after = 0;
  for (;;) {
    const r = await api("GET", `/v1/rooms/${encodeURIComponent(room)}/messages?after=${after}`, await admin());
    if (r.status !== 200) throw new Error(`history ${room}: ${r.status} ${r.text}`);
    const page = r.json as HistoryAnswer;
    all.push(...page.messages);
    if (!page.hasMore) return { ...page, messages: all };
    after = page.messages.at(-1)!.seq;
  }
}

const presenceUsers = async (room: string) =>
  ((await api("GET", `/v1/rooms/${encodeURIComponent(room)}/presence`, await admin())).json as { members: { userId: string }[] }).members
    .map((m) => m.userId)
    .sort();

/** One series of the admin Prometheus text, e.g. roomcast_publishes_total for a room. */
async function metricValue(name: string, room: string, extra = ""): Promise<number | undefined> {
  const r = await api("GET", "/v1/admin/metrics", await admin());
  for (const line of r.text.split("\n")) {
    if (!line.startsWith(`${name}{`) || !line.includes(`room="${room}"`) || !line.includes(extra)) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

/** A raw v1 socket (docs/protocol.md §12), the token in the Authorization header. */
async function openSocket(room: string, sub: string, query = "") {
  const token = await mintToken({ sub });
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/rooms/${encodeURIComponent(room)}/ws${query}`, ["roomcast.v1"], {
    headers: { Authorization: `Bearer ${token}` },
  });
  const frames: any[] = [];
  ws.on("message", (data) => frames.push(JSON.parse(String(data))));
  ws.on("error", () => {}); // a refused upgrade also closes; the close code says what happened
  let closeCode: number | undefined;
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve((closeCode = code))));
  await waitFor(`${sub}'s welcome in ${room}`, () => {
    if (closeCode !== undefined) throw new Error(`${sub}'s socket closed (${closeCode}) before its welcome: ${JSON.stringify(frames)}`);
    return frames.some((f) => f.type === "welcome");
  });
  return { ws, frames, closed };
}

const utf8 = (value: unknown) => Buffer.byteLength(JSON.stringify(value), "utf8");

// The state the old release made, as it answered before the deploy.
const rooms = { chat: uniqueRoom("mig-chat"), notes: uniqueRoom("mig-notes"), one: uniqueRoom("mig-one"), readOnly: uniqueRoom("mig-read") };
const before: Record<string, HistoryAnswer> = {};
let publishesBefore: number | undefined;

beforeAll(async () => {
  release = await previousRelease();
  // A long grace, so the departed member is still held when the new code starts.
  server = await startServer({ PRESENCE_GRACE_SECONDS: "300" }, { root: release.root });
  expect(await fetch(`${server.url}/healthz`).then((r) => r.json())).toMatchObject({ ok: true });

  // Messages in several rooms, from two users, some multi-byte (the backfilled sizes are UTF-8).
  for (let i = 1; i <= 7; i++) await publish(rooms.chat, i % 2 ? "alice" : "bob", `c${i}`, { text: `hello ${i}`, n: i });
  await publish(rooms.notes, "alice", "n1", { text: "naïve café — ünïcödé" });
  await publish(rooms.notes, "bob", "n2", "😀 emoji 😀");
  await publish(rooms.notes, "alice", "n3", [1, 2, { deep: { er: null } }]);
  await publish(rooms.one, "carol", "o1", 42);
  for (const r of [rooms.chat, rooms.notes, rooms.one]) before[r] = await history(r);
  // Only read: a lazy room has no schema, before and after.
  before[rooms.readOnly] = await history(rooms.readOnly);

  // A presence grace row: ghost joins, leaves, and is held for PRESENCE_GRACE_SECONDS.
  const ghost = await openSocket(rooms.chat, "ghost");
  ghost.ws.close(1000, "bye");
  await ghost.closed;
  expect(await presenceUsers(rooms.chat)).toEqual(["ghost"]);

  // A ban from a kick with banSeconds.
  const kick = await api("DELETE", `/v1/rooms/${encodeURIComponent(rooms.notes)}/connections/mallory?banSeconds=3600`, await admin());
  expect(kick.status).toBe(200);
  expect((await api("POST", `/v1/rooms/${encodeURIComponent(rooms.notes)}/messages`, await mintToken({ sub: "mallory" }), { data: 1 })).status).toBe(403);

  // Metrics: the room writes its totals row within ~1 s of activity (metrics.ts). The scrape
  // reaches the rooms the directory lists as active: one with a connection.
  const watcher = await openSocket(rooms.chat, "watcher");
  await new Promise((r) => setTimeout(r, 2_000));
  publishesBefore = await metricValue("roomcast_publishes_total", rooms.chat, 'outcome="accepted"');
  expect(publishesBefore).toBe(7);
  watcher.ws.close();
  await watcher.closed;

  // The deploy: the same storage, this checkout's code.
  await server.kill();
  await server.start({ root: repoRoot });
}, 240_000);

afterAll(async () => {
  await server?.dispose();
});

describe(`a database written by the previous release, after a deploy of this code`, () => {
  it("keeps every message, the epoch and the sequence; a resume from the old epoch recovers", async () => {
    for (const room of [rooms.chat, rooms.notes, rooms.one]) {
      const after = await history(room);
      expect(after.epoch).toBe(before[room]!.epoch);
      expect(after.head).toBe(before[room]!.head);
      expect(after.messages).toEqual(before[room]!.messages);
    }
    // A client that applied up to seq 3 under the old code resumes with no gap and nothing twice.
    const reader = await openSocket(rooms.chat, "reader", `?epoch=${before[rooms.chat]!.epoch}&after=3`);
    const welcome = reader.frames.find((f) => f.type === "welcome");
    expect(welcome).toMatchObject({ epoch: before[rooms.chat]!.epoch, seq: 7, resume: { recovered: true } });
    await waitFor("replay 4..7", () => reader.frames.filter((f) => f.type === "message" || f.type === "messages").length > 0 && replayed(reader.frames).length >= 4);
    expect(replayed(reader.frames).map((m) => m.seq)).toEqual([4, 5, 6, 7]);
    // The next publish continues the sequence; an old id is still a duplicate (the dedupe index survived).
    expect(await publish(rooms.chat, "alice", "after-deploy", "next")).toMatchObject({ seq: 8, duplicate: false });
    expect(await publish(rooms.chat, "alice", "c1", { text: "hello 1", n: 1 })).toMatchObject({ seq: 1, duplicate: true });
    await waitFor("the live message", () => replayed(reader.frames).some((m) => m.seq === 8));
    expect(replayed(reader.frames).map((m) => m.seq)).toEqual([4, 5, 6, 7, 8]);
    reader.ws.close();
  });

  it("keeps the grace row (the departed member is still listed), the ban and the metric totals", async () => {
    expect(await presenceUsers(rooms.chat)).toContain("ghost");
    const banned = await api("POST", `/v1/rooms/${encodeURIComponent(rooms.notes)}/messages`, await mintToken({ sub: "mallory" }), { data: 1 });
    expect(banned.status).toBe(403);
    expect(banned.json).toMatchObject({ error: { code: "kicked" } });
    // 7 before the deploy (loaded from the metrics row), plus the two publishes of the test above.
    const watcher = await openSocket(rooms.chat, "watcher");
    expect(await metricValue("roomcast_publishes_total", rooms.chat, 'outcome="accepted"')).toBe(publishesBefore! + 2);
    watcher.ws.close();
  });

  it("is at schema version 4 with every message's UTF-8 size backfilled; a room that only read still has no schema", async () => {
    for (const room of [rooms.notes, rooms.one]) {
      const summary = await api("GET", `/v1/admin/rooms/${encodeURIComponent(room)}`, await admin());
      expect(summary.status).toBe(200);
      expect(summary.json).toMatchObject({ schemaVersion: 4, logBytes: before[room]!.messages.reduce((n, m) => n + utf8(m.data), 0) });
    }
    const lazy = await api("GET", `/v1/admin/rooms/${encodeURIComponent(rooms.readOnly)}`, await admin());
    expect(lazy.json).toMatchObject({ schemaVersion: null, headSeq: 0 });
    // One log line per room migrated (migrate-room.ts), from the old version to this one.
    const migrated = server.output().split("\n").filter((l) => l.includes('"event":"room.migrated"'));
    for (const room of [rooms.chat, rooms.notes, rooms.one]) {
      expect(migrated.filter((l) => l.includes(`"room":"${room}"`)).map((l) => JSON.parse(l.slice(l.indexOf("{")))), room).toEqual([
        expect.objectContaining({ schemaFrom: 3, schemaTo: 4 }),
      ]);
    }
    expect(migrated.some((l) => l.includes(rooms.readOnly))).toBe(false);
  });
});

describe("a rollback to the previous release on the migrated database, then forward again", () => {
  it("the old code serves it (and records its own version); the new code migrates again and counts what the old one wrote", async () => {
    await server.kill();
    await server.start({ root: release.root });
    const old = await history(rooms.notes);
    expect(old.messages).toEqual(before[rooms.notes]!.messages);
    // The old code writes rows without `bytes` (the column's default, 0).
    expect(await publish(rooms.notes, "bob", "during-rollback", { text: "written by the old code ✓" })).toMatchObject({ seq: 4 });

    await server.kill();
    await server.start({ root: repoRoot });
    const after = await history(rooms.notes);
    expect(after.messages.map((m) => m.id)).toEqual(["n1", "n2", "n3", "during-rollback"]);
    const summary = await api("GET", `/v1/admin/rooms/${encodeURIComponent(rooms.notes)}`, await admin());
    expect(summary.json).toMatchObject({ schemaVersion: 4, logBytes: after.messages.reduce((n, m) => n + utf8(m.data), 0) });
    expect(await publish(rooms.notes, "alice", "forward", 1)).toMatchObject({ seq: 5 });
  }, 180_000);
});

function replayed(frames: any[]): StoredMessage[] {
  return frames.flatMap((f) => (f.type === "message" ? [f] : f.type === "messages" ? f.messages : []));
}
