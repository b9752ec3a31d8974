/**
 * roomcast.v1 and roomcast.v2 side by side (docs/protocol.md, "Versions"): the Worker
 * selects the first of SUPPORTED_PROTOCOLS the client offered, the room serves both
 * in one room at once, and v2's one difference is that a live publisher's own
 * message frame is its ack.
 */
import { describe, expect, it } from "vitest";
import { env } from "cloudflare:workers";
import { PROTOCOL_V1, PROTOCOL_V2, type ServerFrame } from "@roomcast/protocol";
import type { RoomMetrics } from "../src/room/metrics.js";
import { app } from "../src/index.js";
import { BASE, connect, editSessions, fetchWorker, httpPublish, publish, token, uniqueRoom, upgrade, type TestSocket } from "./helpers.js";

/** A refused upgrade (§5) that selected `protocol`: 101 with that subprotocol, one id-less error frame `code`, then its close. */
async function expectRefused(res: Response, code: string, protocol: string): Promise<void> {
  expect(res.status).toBe(101);
  expect(res.headers.get("Sec-WebSocket-Protocol")).toBe(protocol);
  const ws = res.webSocket!;
  const frames: unknown[] = [];
  ws.addEventListener("message", (event) => frames.push(JSON.parse(String(event.data))));
  const closed = new Promise<number>((resolve) => ws.addEventListener("close", (event) => resolve(event.code)));
  ws.accept();
  await closed;
  expect(frames).toEqual([{ type: "error", code, message: expect.any(String) }]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const acks = (s: TestSocket) => s.frames.filter((f): f is Extract<ServerFrame, { type: "ack" }> => f.type === "ack");
const messages = (s: TestSocket) => s.frames.filter((f): f is Extract<ServerFrame, { type: "message" }> => f.type === "message");

/** A frame the room answers at once (a refused history request), so that everything sent before it has arrived. */
async function sync(s: TestSocket, id: string): Promise<void> {
  s.send({ type: "history", id, after: 0, limit: 0 }); // limit 0 is invalid: an error frame with this id
  await s.until((frames) => frames.some((f) => f.type === "error" && f.id === id));
}

function counter(m: RoomMetrics, name: string, labels: Record<string, string>): number {
  return m.counters.filter((c) => c.name === name && JSON.stringify(c.labels ?? {}) === JSON.stringify(labels)).reduce((a, c) => a + c.value, 0);
}

describe("negotiation", () => {
  it("selects roomcast.v2 when both are offered, in either order, and names it in the header and the welcome", async () => {
    for (const protocols of [[PROTOCOL_V2, PROTOCOL_V1], [PROTOCOL_V1, PROTOCOL_V2], [PROTOCOL_V2]]) {
      const s = await connect(uniqueRoom(), await token(), { protocols });
      expect(s.response.headers.get("Sec-WebSocket-Protocol"), protocols.join(",")).toBe(PROTOCOL_V2);
      expect((await s.next("welcome")).protocol).toBe(PROTOCOL_V2);
      s.close();
    }
  });

  it("selects roomcast.v1 for a client that offers only v1", async () => {
    const s = await connect(uniqueRoom(), await token(), { protocols: [PROTOCOL_V1] });
    expect(s.response.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_V1);
    expect((await s.next("welcome")).protocol).toBe(PROTOCOL_V1);
    s.close();
  });

  it("never selects the bearer entry of a browser's offer", async () => {
    const s = await connect(uniqueRoom(), await token(), { protocols: [PROTOCOL_V2, PROTOCOL_V1], via: "subprotocol", origin: "https://app.example.com" });
    expect(s.response.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_V2);
    s.close();
  });

  it("refuses an offer of neither with 400 unsupported_protocol naming both versions", async () => {
    const res = await upgrade(uniqueRoom(), await token(), { protocols: ["roomcast.v3", "chat"] });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("unsupported_protocol");
    expect(body.error.message).toContain(PROTOCOL_V1);
    expect(body.error.message).toContain(PROTOCOL_V2);
  });

  it("a refused upgrade (Worker-side and room-side) selects the version the client offered", async () => {
    const v2 = await upgrade(uniqueRoom(), "not-a-token", { protocols: [PROTOCOL_V2] });
    expect(v2.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_V2);
    await expectRefused(v2, "unauthorized", PROTOCOL_V2);
    const v1 = await upgrade(uniqueRoom(), "not-a-token", { protocols: [PROTOCOL_V1] });
    await expectRefused(v1, "unauthorized", PROTOCOL_V1);
    // Refused by the room (too many connections of the room: MAX_CONNECTIONS_PER_ROOM is 4 in tests).
    const room = uniqueRoom();
    const held = await Promise.all([0, 1, 2, 3].map(async (i) => connect(room, await token({ sub: `u${i}` }), { protocols: [PROTOCOL_V1] })));
    await expectRefused(await upgrade(room, await token({ sub: "late" }), { protocols: [PROTOCOL_V2, PROTOCOL_V1] }), "room_full", PROTOCOL_V2);
    for (const s of held) s.close();
  });
});

/**
 * A room still on an older release (v0.1.0: it ignores X-Roomcast-Protocol and always
 * selects roomcast.v1), stubbed, since no old build runs in these tests. Returns the
 * Worker's answer to an upgrade offering `protocols`, and the room's socket end.
 */
async function upgradeViaOldRoom(protocols: string[]): Promise<{ res: Response; roomSide: WebSocket; roomClosed: Promise<number> }> {
  const { 0: client, 1: roomSide } = new WebSocketPair();
  roomSide.accept();
  const roomClosed = new Promise<number>((resolve) => roomSide.addEventListener("close", (event) => resolve(event.code)));
  const oldRoom = { fetch: async () => new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": PROTOCOL_V1 } }) };
  const rooms = { getByName: () => oldRoom };
  const res = await app.fetch(
    new Request(`${BASE}/v1/rooms/${uniqueRoom()}/ws`, {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${await token()}`, "Sec-WebSocket-Protocol": protocols.join(", ") },
    }),
    { ...env, ROOMS: rooms } as unknown as typeof env,
  );
  return { res, roomSide, roomClosed };
}

describe("a room on an older release (gradual deploy or rollback)", () => {
  it("an offer of roomcast.v2 only, answered roomcast.v1 by the room, is refused readably and retryably, never passed through", async () => {
    const { res, roomClosed } = await upgradeViaOldRoom([PROTOCOL_V2]);
    // The client gets the version it offered and a going_away (retry) frame, not a 101 selecting roomcast.v1.
    const frames: { type: string; code: string; message: string }[] = [];
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_V2);
    const ws = res.webSocket!;
    ws.addEventListener("message", (event) => {
      frames.push(JSON.parse(String(event.data)));
    });
    const closed = new Promise<number>((resolve) => ws.addEventListener("close", (event) => resolve(event.code)));
    ws.accept();
    expect(await closed).toBe(4000);
    expect(frames).toEqual([{ type: "error", code: "going_away", message: expect.stringContaining("older server release") }]);
    expect(frames[0]!.message).toContain(PROTOCOL_V1);
    // The room's socket is released, not left open.
    expect(await roomClosed).toBe(4000);
  });

  it("an offer of both, answered roomcast.v1 by the room, is passed through: the client accepts v1", async () => {
    const { res, roomSide } = await upgradeViaOldRoom([PROTOCOL_V2, PROTOCOL_V1]);
    expect(res.status).toBe(101);
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_V1);
    const ws = res.webSocket!;
    const got = new Promise<string>((resolve) => ws.addEventListener("message", (event) => resolve(String(event.data))));
    ws.accept();
    roomSide.send("from the room");
    expect(await got).toBe("from the room");
    ws.close(1000);
  });
});

describe("both versions in one room", () => {
  it("v2 gets its own message and no ack; v1 gets message then ack; each sees the other's messages", async () => {
    const room = uniqueRoom();
    const v1 = await connect(room, await token({ sub: "old" }), { protocols: [PROTOCOL_V1] });
    const v2 = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2, PROTOCOL_V1] });
    await Promise.all([v1.next("welcome"), v2.next("welcome")]);

    v2.send({ type: "publish", id: "n1", data: "from v2" });
    const echo = await v2.next("message");
    expect(echo).toMatchObject({ id: "n1", from: "new", seq: 1, data: "from v2" });
    expect(await v1.next("message")).toMatchObject({ id: "n1", from: "new", seq: 1 });

    const ack = await publish(v1, "o1", "from v1");
    expect(ack).toMatchObject({ id: "o1", seq: 2, duplicate: false });
    // v1: the message comes before its ack.
    const i = v1.frames.findIndex((f) => f.type === "message" && f.id === "o1");
    expect(i).toBeGreaterThanOrEqual(0);
    expect(i).toBeLessThan(v1.frames.indexOf(ack));
    expect(await v2.next("message")).toMatchObject({ id: "o1", from: "old", seq: 2 });

    await sync(v2, "s1");
    expect(acks(v2)).toEqual([]);
    expect(acks(v1).map((a) => a.id)).toEqual(["o1"]);
    for (const s of [v1, v2]) s.close();
  });

  it("a burst from a v2 publisher comes back as message frames (batched or not), every id once, with no ack", async () => {
    const room = uniqueRoom();
    const v2 = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2] });
    const v1 = await connect(room, await token({ sub: "old" }), { protocols: [PROTOCOL_V1] });
    await Promise.all([v1.next("welcome"), v2.next("welcome")]);
    const ids = Array.from({ length: 8 }, (_, i) => `b${i}`); // within PUBLISH_BURST (10)
    for (const id of ids) v2.send({ type: "publish", id, data: id });
    await v2.until(() => messages(v2).length === ids.length);
    await v1.until(() => messages(v1).length === ids.length);
    expect(messages(v2).map((m) => [m.id, m.from, m.seq])).toEqual(ids.map((id, i) => [id, "new", i + 1]));
    await sync(v2, "s2");
    expect(acks(v2)).toEqual([]);
    for (const s of [v1, v2]) s.close();
  });

  it("a v2 duplicate gets an explicit ack with duplicate:true and is not broadcast again", async () => {
    const room = uniqueRoom();
    const v2 = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2] });
    await v2.next("welcome");
    v2.send({ type: "publish", id: "d1", data: 1 });
    expect(await v2.next("message")).toMatchObject({ id: "d1", seq: 1 });
    v2.send({ type: "publish", id: "d1", data: 2 });
    expect(await v2.next("ack")).toEqual({ type: "ack", id: "d1", seq: 1, duplicate: true });
    await sync(v2, "s3");
    expect(messages(v2)).toHaveLength(1);
    v2.close();
  });

  it("a v2 publish while the connection is still joining (replaying) gets an explicit ack", async () => {
    const room = uniqueRoom();
    for (let i = 1; i <= 12; i++) await httpPublish(room, `m${i}`, i);
    const v2 = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2] });
    await v2.next("welcome");
    await v2.until(() => messages(v2).length === 5); // HISTORY_ON_JOIN
    // Mid-replay when the room hibernated (as in ephemeral.test.ts): after the wake it is
    // joining again, its replay a page (REPLAY_PAGE_SIZE 5) per turn; the publish wakes the room.
    await editSessions(room, (rc) => ({ ...rc, replayedTo: 0 }));
    v2.send({ type: "publish", id: "j1", data: "while joining" });
    const ack = await v2.next("ack");
    expect(ack).toEqual({ type: "ack", id: "j1", seq: 13, duplicate: false });
    // The replay still brings the message itself, once.
    await v2.until(() => messages(v2).some((m) => m.id === "j1"));
    expect(messages(v2).filter((m) => m.id === "j1")).toHaveLength(1);
    v2.close();
  });

  it("keeps the version in the session attachment: after hibernation a v2 connection still gets no ack, a v1 one does", async () => {
    const room = uniqueRoom();
    const v1 = await connect(room, await token({ sub: "old" }), { protocols: [PROTOCOL_V1] });
    const v2 = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2] });
    await Promise.all([v1.next("welcome"), v2.next("welcome")]);
    const seen: Record<string, unknown> = {};
    await editSessions(room, (rc) => {
      seen[String(rc.userId)] = rc.protocol;
      return undefined;
    });
    expect(seen).toEqual({ old: PROTOCOL_V1, new: PROTOCOL_V2 });
    v2.send({ type: "publish", id: "w1", data: "after the wake" });
    expect(await v2.next("message")).toMatchObject({ id: "w1", from: "new" });
    expect((await publish(v1, "w2", "v1 after the wake")).seq).toBe(2);
    await sync(v2, "s4");
    expect(acks(v2)).toEqual([]);
    for (const s of [v1, v2]) s.close();
  });

  it("HTTP publishes are unchanged: a v2 socket gets the message, the HTTP answer is the publisher's ack", async () => {
    const room = uniqueRoom();
    const v2 = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2] });
    await v2.next("welcome");
    const res = await fetchWorker(`/v1/rooms/${room}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${await token({ sub: "new" })}`, "Content-Type": "application/json" },
      body: JSON.stringify({ id: "h1", data: "over http" }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ seq: 1, id: "h1", duplicate: false });
    expect(await v2.next("message")).toMatchObject({ id: "h1", from: "new", seq: 1 });
    await sync(v2, "s5");
    expect(acks(v2)).toEqual([]);
    v2.close();
  });

  it("counts connections per protocol version, and publishes by outcome whatever the version", async () => {
    const room = uniqueRoom();
    const v1 = await connect(room, await token({ sub: "old" }), { protocols: [PROTOCOL_V1] });
    const v2a = await connect(room, await token({ sub: "new" }), { protocols: [PROTOCOL_V2, PROTOCOL_V1] });
    const v2b = await connect(room, await token({ sub: "new2" }), { protocols: [PROTOCOL_V1, PROTOCOL_V2] });
    await Promise.all([v1, v2a, v2b].map((s) => s.next("welcome")));
    v2a.send({ type: "publish", id: "c1", data: 1 });
    await v2a.next("message");
    await publish(v1, "c2", 2);
    await sleep(20);
    const m = await env.ROOMS.getByName(room).metrics();
    expect(counter(m, "connections_by_protocol_total", { protocol: PROTOCOL_V1 })).toBe(1);
    expect(counter(m, "connections_by_protocol_total", { protocol: PROTOCOL_V2 })).toBe(2);
    expect(counter(m, "publishes_total", { outcome: "accepted" })).toBe(2);
    for (const s of [v1, v2a, v2b]) s.close();
  });
});
