import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { shardName, shardOf } from "../src/directory/shard.js";
import { connect, fetchWorker, publish, token, uniqueRoom, type TestSocket } from "./helpers.js";

const adminToken = () => token({ sub: "ops", cap: { "*": ["admin"] } });

async function admin(method: string, path: string, options: { body?: string; jwt?: string; headers?: Record<string, string> } = {}) {
  return fetchWorker(path, {
    method,
    headers: { Authorization: `Bearer ${options.jwt ?? (await adminToken())}`, "Content-Type": "application/json", ...options.headers },
    ...(options.body === undefined ? {} : { body: options.body }),
  });
}

/** Polls until `check` passes (rooms report to the directory fire-and-forget). */
async function eventually(check: () => Promise<boolean>, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isListed = async (room: string) => (await env.DIRECTORY!.getByName(shardName(shardOf(room))).list(null, 500)).rooms.some((r) => r.room === room);

async function openRoom(room: string, users: string[]): Promise<TestSocket[]> {
  const sockets: TestSocket[] = [];
  for (const sub of users) {
    const s = await connect(room, await token({ sub }));
    await s.next("welcome");
    sockets.push(s);
  }
  await eventually(() => isListed(room), `${room} is listed`);
  return sockets;
}

type Listing = { room: string; connections: number; users: number; headSeq: number; firstSeq: number; epoch: string; firstSeenAt: number; error?: string };

/** Every page of GET /v1/admin/rooms. */
async function listAll(limit: number): Promise<{ rooms: Listing[]; pages: number }> {
  const rooms: Listing[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const res = await admin("GET", `/v1/admin/rooms?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rooms: Listing[]; cursor?: string };
    expect(body.rooms.length).toBeLessThanOrEqual(limit);
    rooms.push(...body.rooms);
    cursor = body.cursor;
    pages++;
  } while (cursor && pages < 100);
  return { rooms, pages };
}

describe("admin auth", () => {
  const routes: [string, string, string?][] = [
    ["GET", "/v1/admin/rooms"],
    ["GET", "/v1/admin/rooms/some-room"],
    ["POST", "/v1/admin/drain", "{}"],
    ["GET", "/v1/admin/metrics"],
  ];

  it("requires a token with admin on * (401 without one, 403 for subscribers or admins of some rooms only)", async () => {
    for (const [method, path, body] of routes) {
      const none = await fetchWorker(path, { method, ...(body ? { body } : {}) });
      expect(none.status, `${method} ${path}`).toBe(401);
      expect(await none.json()).toMatchObject({ error: { code: "unauthorized" } });
      const caps: Record<string, string[]>[] = [{ "*": ["subscribe", "publish", "presence"] }, { "team-1:*": ["admin"] }, { "some-room": ["admin"] }];
      for (const cap of caps) {
        const res = await admin(method, path, { jwt: await token({ sub: "eve", cap }), ...(body ? { body } : {}) });
        expect(res.status, `${method} ${path} ${JSON.stringify(cap)}`).toBe(403);
        expect(await res.json()).toMatchObject({ error: { code: "forbidden" } });
      }
    }
  });

  it("refuses a browser Origin that is not allowed, like the per-room admin routes", async () => {
    const res = await admin("GET", "/v1/admin/rooms", { headers: { Origin: "https://evil.example" } });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "origin_not_allowed" } });
  });
});

describe("GET /v1/admin/rooms", () => {
  it("pages through every shard and lists each active room with its live summary", async () => {
    const mine = Array.from({ length: 5 }, () => uniqueRoom("adm"));
    const sockets: TestSocket[] = [];
    for (const [i, room] of mine.entries()) sockets.push(...(await openRoom(room, i === 0 ? ["alice", "bob"] : ["alice"])));
    await publish(sockets[0]!, "m1", { hello: 1 });

    const { rooms, pages } = await listAll(2);
    expect(pages).toBeGreaterThanOrEqual(3);
    const names = rooms.map((r) => r.room);
    expect(new Set(names).size).toBe(names.length); // nobody twice
    for (const room of mine) expect(names).toContain(room);
    const first = rooms.find((r) => r.room === mine[0])!;
    expect(first).toMatchObject({ connections: 2, users: 2, headSeq: 1, firstSeq: 1 });
    expect(first.error).toBeUndefined();
    expect(typeof first.epoch).toBe("string");
    expect(first.firstSeenAt).toBeLessThanOrEqual(Date.now());
    for (const s of sockets) s.ws.close(1000);
  });

  it("forgets a room once empty", async () => {
    const room = uniqueRoom("adm");
    const [s] = await openRoom(room, ["alice"]);
    s!.ws.close(1000);
    await s!.closed;
    await eventually(async () => !(await isListed(room)), "the room is forgotten");
    expect((await listAll(100)).rooms.map((r) => r.room)).not.toContain(room);
  });

  it("lists a room whose summary fails with an error instead of failing the page", async () => {
    const room = uniqueRoom("adm");
    // Listed by the directory (a report), but its summary cannot be read: a name the room refuses at once.
    const shard = env.DIRECTORY!.getByName(shardName(shardOf(room)));
    await shard.report({ kind: "joined-first", room, connections: 3, at: Date.now() });
    const broken = { ...env, ROOMS: { getByName: (name: string) => (name === room ? { summary: () => Promise.reject(new Error("evicted")) } : env.ROOMS.getByName(name)) } };
    const { app } = await import("../src/index.js");
    const res = await app.request(`/v1/admin/rooms?limit=100`, { headers: { Authorization: `Bearer ${await adminToken()}` } }, broken);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { rooms: Listing[]; cursor?: string };
    // The room may be on a later page: page until found.
    let found = body.rooms.find((r) => r.room === room);
    let cursor = body.cursor;
    while (!found && cursor) {
      const next = (await (await app.request(`/v1/admin/rooms?limit=100&cursor=${cursor}`, { headers: { Authorization: `Bearer ${await adminToken()}` } }, broken)).json()) as { rooms: Listing[]; cursor?: string };
      found = next.rooms.find((r) => r.room === room);
      cursor = next.cursor;
    }
    expect(found).toMatchObject({ room, connections: 3, error: expect.any(String) });
    await shard.report({ kind: "empty", room, connections: 0, at: Date.now() });
  });

  it("validates limit and cursor", async () => {
    for (const q of ["limit=0", "limit=101", "limit=abc", "limit=-1", "cursor=%%%", "cursor=bm9wZQ", `cursor=${btoa(JSON.stringify({ s: 16, a: null }))}`, `cursor=${btoa(JSON.stringify({ s: 0, a: "bad room" }))}`]) {
      const res = await admin("GET", `/v1/admin/rooms?${q}`);
      expect(res.status, q).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
  });
});

describe("GET /v1/admin/rooms/:room", () => {
  it("shows one room's connections and presence", async () => {
    const room = uniqueRoom("adm");
    const [a, b] = await openRoom(room, ["alice", "bob"]);
    await publish(a!, "m1", { x: 1 });
    a!.send('{"type":"ping"}');
    await a!.next("pong");
    const res = await admin("GET", `/v1/admin/rooms/${room}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { room: string; connections: number; users: number; headSeq: number; lastActivityAt: number; connectionList: { userId: string; lagBehindHead: number; protocol: string; lastPingAt: number | null; joinedAt: number }[]; presence: { userId: string }[] };
    expect(body).toMatchObject({ room, connections: 2, users: 2, headSeq: 1 });
    expect(body.lastActivityAt).toBeGreaterThan(0);
    expect(body.connectionList.map((c) => c.userId).sort()).toEqual(["alice", "bob"]);
    for (const c of body.connectionList) expect(c).toMatchObject({ protocol: "roomcast.v1", lagBehindHead: 0 });
    expect(body.presence.map((m) => m.userId).sort()).toEqual(["alice", "bob"]);
    a!.ws.close(1000);
    b!.ws.close(1000);
  });

  it("refuses an invalid room name", async () => {
    const res = await admin("GET", `/v1/admin/rooms/${encodeURIComponent("no spaces")}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_room" } });
  });
});

describe("POST /v1/admin/drain", () => {
  it("reaches every active room: each connection gets a reconnect hint inside the window, then going_away", async () => {
    const mine = Array.from({ length: 4 }, () => uniqueRoom("drain"));
    const sockets: TestSocket[] = [];
    for (const room of mine) sockets.push(...(await openRoom(room, ["alice", "bob"])));
    const res = await admin("POST", "/v1/admin/drain", { body: JSON.stringify({ windowSeconds: 5 }) });
    expect(res.status).toBe(200);
    const result = (await res.json()) as { rooms: number; drained: number; failed: number; connections: number; windowMs: number };
    expect(result.rooms).toBeGreaterThanOrEqual(mine.length);
    expect(result.failed).toBe(0);
    expect(result.drained).toBe(result.rooms);
    expect(result.connections).toBeGreaterThanOrEqual(sockets.length);
    expect(result.windowMs).toBe(5_000);
    for (const s of sockets) {
      const hint = await s.next("reconnect");
      expect(hint.delayMs).toBeGreaterThanOrEqual(0);
      expect(hint.delayMs).toBeLessThan(5_000);
      expect(await s.closed).toMatchObject({ code: 4000, reason: "going_away" });
    }
    // Drained rooms are empty, so the directory forgets them.
    for (const room of mine) await eventually(async () => !(await isListed(room)), `${room} is forgotten`);
  });

  it("refuses any body but empty, {} or {windowSeconds} (strict, like the per-room drain)", async () => {
    for (const body of ["[5]", "[]", '"5"', "5", "null", '{"windowSeconds":1,"extra":true}', '{"window":3}', '{"windowSeconds":-1}', '{"windowSeconds":601}', "{", "x".repeat(2_000)]) {
      const res = await admin("POST", "/v1/admin/drain", { body });
      expect(res.status, body.slice(0, 40)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
  });
});

describe("GET /v1/admin/metrics", () => {
  type Parsed = { name: string; metrics: { value: string; labels?: Record<string, string> }[] }[];
  const sample = (parsed: Parsed, name: string, labels: Record<string, string>) =>
    parsed
      .find((f) => f.name === name)
      ?.metrics.find((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === JSON.stringify(Object.entries(labels).sort()))?.value;

  it("scrapes every active room into Prometheus text a parser reads: per-room series and service totals", async () => {
    const room = uniqueRoom("scrape");
    const sockets = await openRoom(room, ["alice", "bob"]);
    await publish(sockets[0]!, "s-1", { n: 1 });
    await publish(sockets[0]!, "s-2", { n: 2 });
    const res = await admin("GET", "/v1/admin/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const parsed = parsePrometheusTextFormat(await res.text()) as Parsed;
    expect(Number(sample(parsed, "roomcast_connections", { room }))).toBe(2);
    expect(Number(sample(parsed, "roomcast_publishes_total", { room, outcome: "accepted" }))).toBe(2);
    expect(Number(sample(parsed, "roomcast_connections", {}))).toBeGreaterThanOrEqual(2); // the service total
    expect(Number(sample(parsed, "roomcast_scrape_rooms", {}))).toBeGreaterThanOrEqual(1);
    expect(Number(sample(parsed, "roomcast_scrape_failed_rooms", {}))).toBe(0);

    const totalsOnly = parsePrometheusTextFormat(await (await admin("GET", "/v1/admin/metrics?perRoom=false")).text()) as Parsed;
    expect(sample(totalsOnly, "roomcast_connections", { room })).toBeUndefined();
    expect(Number(sample(totalsOnly, "roomcast_connections", {}))).toBeGreaterThanOrEqual(2);
    expect((await admin("GET", "/v1/admin/metrics?perRoom=maybe")).status).toBe(400);
    for (const s of sockets) s.close();
  });
});
