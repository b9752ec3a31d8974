/**
 * Debug mode (src/room/trace.ts, src/http/admin-trace.ts; docs/operations.md "Debug mode
 * (tracing one room)"): an admin traces one room for a bounded time; every frame in and
 * out is one `trace` log line and a ring-buffer event; tokens never appear; payloads only
 * when asked; it switches itself off; it survives a wake.
 */
import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AppEnv } from "../src/env.js";
import { adminTrace } from "../src/http/admin-trace.js";
import { notFound, onError } from "../src/http/errors.js";
import { NO_TRACE, TRACE_CAPACITY, Tracer, redact, type TraceEvent } from "../src/room/trace.js";
import { BASE, connect, fetchWorker, publish, token, uniqueRoom } from "./helpers.js";

/** The router as admin.ts mounts it, without admin.ts's own check: adminTrace must check by itself. */
const standalone = new Hono<AppEnv>().route("/v1/admin", adminTrace);
standalone.onError(onError);
standalone.notFound(notFound);

const ADMIN_CAP = { "*": ["subscribe", "publish", "presence", "admin"] };

type TraceAnswer = { enabled: boolean; until: number | null; events: TraceEvent[] };

async function call(method: string, path: string, options: { jwt?: string | null; body?: string } = {}): Promise<Response> {
  const jwt = options.jwt === undefined ? await token({ sub: "ops", cap: ADMIN_CAP }) : options.jwt;
  const headers: Record<string, string> = jwt === null ? {} : { Authorization: `Bearer ${jwt}` };
  const init: RequestInit = { method, headers, ...(options.body !== undefined ? { body: options.body } : {}) };
  return standalone.fetch(new Request(`${BASE}/v1/admin${path}`, init), env);
}

async function startTrace(room: string, body: object = {}): Promise<{ enabled: boolean; until: number | null }> {
  const res = await call("POST", `/rooms/${room}/trace`, { body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  return res.json();
}

async function events(room: string, after = 0): Promise<TraceAnswer> {
  const res = await call("GET", `/rooms/${room}/trace?after=${after}`);
  expect(res.status).toBe(200);
  return res.json();
}

/** Every `trace` line the room logs while `fn` runs (console.log is where info lines go). */
function captureLogs(): { lines: string[]; trace: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const original = console.log;
  vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
    lines.push(args.map(String).join(" "));
    if (process.env.ROOMCAST_TEST_LOGS === "1") original(...args);
  });
  return {
    lines,
    trace: () => lines.filter((l) => l.includes('"event":"trace"')).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("trace admin routes", () => {
  it("need admin on every room (*): no token, a room admin and a subscriber are refused", async () => {
    const room = uniqueRoom();
    expect((await call("POST", `/rooms/${room}/trace`, { jwt: null, body: "{}" })).status).toBe(401);
    // admin of this room only is not admin of the service
    const roomAdmin = await token({ sub: "ops", cap: { [room]: ["subscribe", "admin"] } });
    for (const method of ["POST", "GET", "DELETE"]) {
      const res = await call(method, `/rooms/${room}/trace`, { jwt: roomAdmin, ...(method === "POST" ? { body: "{}" } : {}) });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: "forbidden" } });
    }
    const subscriber = await token({ sub: "eve", cap: { "*": ["subscribe", "publish"] } });
    expect((await call("GET", `/rooms/${room}/trace`, { jwt: subscriber })).status).toBe(403);
    // Nothing was turned on by the refused calls.
    expect(await events(room)).toEqual({ enabled: false, until: null, events: [] });
  });

  it("validate the body, the room and `after`", async () => {
    const room = uniqueRoom();
    for (const body of ['{"seconds":0}', '{"seconds":601}', '{"seconds":1.5}', '{"seconds":"60"}', '{"payloads":"yes"}', '{"other":1}', "[]", "null", "7", "{not json", JSON.stringify({ seconds: 1, pad: "x".repeat(1100) })]) {
      const res = await call("POST", `/rooms/${room}/trace`, { body });
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
    expect((await call("POST", `/rooms/-bad-/trace`, { body: "{}" })).status).toBe(400);
    for (const after of ["-1", "abc", "1e3", "99999999999999999"]) expect((await call("GET", `/rooms/${room}/trace?after=${after}`)).status, after).toBe(400);
    expect((await events(room)).enabled).toBe(false);
  });

  it("turn tracing on for the default 60 s (or the seconds asked), report it, and turn it off", async () => {
    const room = uniqueRoom();
    const before = Date.now();
    const on = await startTrace(room);
    expect(on.enabled).toBe(true);
    expect(on.until! - before).toBeGreaterThanOrEqual(60_000);
    expect(on.until! - Date.now()).toBeLessThanOrEqual(60_000);
    const longer = await startTrace(room, { seconds: 600, payloads: false });
    expect(longer.until! - Date.now()).toBeGreaterThan(599_000);
    const off = await call("DELETE", `/rooms/${room}/trace`);
    expect(off.status).toBe(200);
    expect(await off.json()).toEqual({ enabled: false, until: null });
    expect(await events(room)).toMatchObject({ enabled: false, until: null });
  });
});

describe("tracing a room", () => {
  it("records every frame in and out: type, bytes, user, connection, seq and outcome, once per fan-out", async () => {
    const room = uniqueRoom();
    const logs = captureLogs();
    await startTrace(room);
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob", cap: { [room]: ["subscribe"] } }));
    const { connectionId } = await alice.next("welcome");
    await bob.next("welcome");
    expect(await publish(alice, "m1", { text: "hi" })).toMatchObject({ seq: 1 });
    await bob.next("message");
    bob.send({ type: "publish", id: "not-allowed", data: 1 });
    await bob.next("error");

    const { enabled, events: got } = await events(room);
    expect(enabled).toBe(true);
    const ids = got.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const publishIn = got.find((e) => e.dir === "in" && e.frameId === "m1")!;
    expect(publishIn).toMatchObject({ type: "publish", userId: "alice", connectionId, outcome: "accepted", seq: 1 });
    expect(publishIn.bytes).toBe(JSON.stringify({ type: "publish", id: "m1", data: { text: "hi" } }).length);
    expect(publishIn.data).toBeUndefined();
    const ack = got.find((e) => e.dir === "out" && e.type === "ack")!;
    expect(ack).toMatchObject({ userId: "alice", connectionId, seq: 1, frameId: "m1" });
    expect(ack.id).toBeGreaterThan(publishIn.id); // the answer comes after its frame
    // The live message went to both sockets: one event with its recipient count.
    const fanout = got.filter((e) => e.dir === "out" && e.type === "message" && e.recipients !== undefined);
    expect(fanout).toEqual([expect.objectContaining({ seq: 1, recipients: 2 })]);
    expect(fanout[0]!.userId).toBeUndefined();
    expect(got.filter((e) => e.type === "welcome").map((e) => e.userId).sort()).toEqual(["alice", "bob"]);
    // A refusal: the frame's outcome is the code the room answered with.
    expect(got.find((e) => e.dir === "in" && e.frameId === "not-allowed")).toMatchObject({ userId: "bob", outcome: "forbidden" });
    expect(got.find((e) => e.dir === "out" && e.type === "error")).toMatchObject({ userId: "bob", outcome: "forbidden", frameId: "not-allowed" });

    // One structured log line per event, with the room's name.
    const lines = logs.trace();
    expect(lines.map((l) => l.id).sort()).toEqual(ids.slice().sort());
    expect(lines.find((l) => l.frameId === "m1" && l.dir === "in")).toMatchObject({ level: "info", event: "trace", room, type: "publish", outcome: "accepted" });

    // `after` pages: only newer events.
    const last = ids.at(-1)!;
    expect((await events(room, last)).events).toEqual([]);
    alice.send({ type: "progress", seq: 1 });
    await publish(alice, "m2", 2);
    const newer = (await events(room, last)).events;
    expect(newer.length).toBeGreaterThan(0);
    expect(newer.every((e) => e.id > last)).toBe(true);
    expect(newer.find((e) => e.type === "progress")).toMatchObject({ dir: "in", seq: 1, outcome: "accepted" });
    alice.close();
    bob.close();
  });

  it("never lets a token through: a refresh frame's token is absent without payloads and redacted with them", async () => {
    for (const payloads of [false, true]) {
      const room = uniqueRoom();
      const logs = captureLogs();
      await startTrace(room, { payloads });
      const alice = await connect(room, await token({ sub: "alice" }));
      await alice.next("welcome");
      const fresh = await token({ sub: "alice", expiresIn: 600 });
      alice.send({ type: "refresh", id: "r1", token: fresh });
      await alice.next("refreshed");
      // A token where a payload may be: a publish whose data holds one, under any key.
      const another = await token({ sub: "alice", expiresIn: 900 });
      await publish(alice, "p1", { note: `mine is ${another}`, access_token: "opaque-secret-value", nested: { authorization: `Bearer ${fresh}` } });
      const { events: got } = await events(room);
      const everything = JSON.stringify(got) + logs.lines.join("\n");
      for (const secret of [fresh, another, "opaque-secret-value", fresh.split(".")[2]!, another.split(".")[1]!]) expect(everything).not.toContain(secret);
      const refresh = got.find((e) => e.type === "refresh")!;
      expect(refresh).toMatchObject({ dir: "in", frameId: "r1", outcome: "accepted" });
      if (payloads) {
        expect(refresh.data).toEqual({ type: "refresh", id: "r1", token: "[redacted]" });
        const data = got.find((e) => e.type === "publish")!.data as { data: Record<string, unknown> };
        expect(data.data).toEqual({ note: "mine is [redacted]", access_token: "[redacted]", nested: { authorization: "[redacted]" } });
      } else {
        expect(refresh.data).toBeUndefined();
      }
      alice.close();
      vi.restoreAllMocks();
    }
  });

  it("keeps payloads out by default and puts them in when asked", async () => {
    const marker = "payload-marker-7f3a";
    const seen: Record<string, TraceEvent[]> = {};
    for (const payloads of [false, true]) {
      const room = uniqueRoom();
      const logs = captureLogs();
      await startTrace(room, payloads ? { payloads: true } : {});
      const alice = await connect(room, await token({ sub: "alice" }));
      await alice.next("welcome");
      await publish(alice, "p1", { text: marker });
      alice.send({ type: "presence", state: { status: marker } });
      await alice.next("presence_diff");
      const got = (await events(room)).events;
      seen[String(payloads)] = got;
      const text = JSON.stringify(got) + logs.lines.join("\n");
      if (payloads) expect(text).toContain(marker);
      else expect(text).not.toContain(marker);
      alice.close();
      vi.restoreAllMocks();
    }
    expect(seen.false!.every((e) => e.data === undefined)).toBe(true);
    expect(seen.true!.find((e) => e.type === "publish")!.data).toEqual({ type: "publish", id: "p1", data: { text: marker } });
    expect(seen.true!.find((e) => e.type === "message")!.data).toMatchObject({ type: "message", seq: 1, data: { text: marker } });
  });

  it("switches itself off when its time is up: the next frame is not traced, and says so", async () => {
    const room = uniqueRoom();
    const logs = captureLogs();
    const { until } = await startTrace(room, { seconds: 1 });
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    await publish(alice, "before", 1);
    const during = (await events(room)).events;
    expect(during.some((e) => e.frameId === "before")).toBe(true);
    // No timer or alarm ends it; the clock passes `until`, then a frame arrives.
    while (Date.now() <= until!) await new Promise((r) => setTimeout(r, 100));
    await publish(alice, "after", 2);
    const after = await events(room);
    expect(after.enabled).toBe(false);
    expect(after.until).toBeNull();
    expect(after.events.some((e) => e.frameId === "after")).toBe(false);
    expect(after.events.length).toBe(during.length); // what was recorded stays readable
    expect(logs.lines.some((l) => l.includes('"event":"trace.off"') && l.includes('"reason":"expired"'))).toBe(true);
    expect(logs.trace().some((l) => l.frameId === "after")).toBe(false);
    alice.close();
  });

  it("stops at once when turned off, and a room never traced logs nothing", async () => {
    const room = uniqueRoom();
    const logs = captureLogs();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    await publish(alice, "untraced", 1);
    expect(logs.trace().filter((l) => l.room === room)).toEqual([]);
    await startTrace(room);
    await publish(alice, "traced", 2);
    await call("DELETE", `/rooms/${room}/trace`);
    await publish(alice, "after-off", 3);
    const got = (await events(room)).events;
    expect(got.some((e) => e.frameId === "traced")).toBe(true);
    expect(got.some((e) => e.frameId === "untraced" || e.frameId === "after-off")).toBe(false);
    expect(logs.trace().some((l) => l.frameId === "untraced" || l.frameId === "after-off")).toBe(false);
    alice.close();
  });

  it("survives a wake: the end time is stored, events after it keep increasing ids", { timeout: 40_000 }, async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    const { until } = await startTrace(room, { seconds: 120 });
    await publish(alice, "before", 1);
    const lastBefore = (await events(room)).events.at(-1)!.id;

    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });

    await publish(alice, "after-wake", 2);
    const after = await events(room, lastBefore);
    expect(after).toMatchObject({ enabled: true, until });
    // The buffer is memory only (emptied by the wake); what came after it is there.
    expect(after.events.find((e) => e.frameId === "after-wake" && e.dir === "in")).toMatchObject({ outcome: "accepted", seq: 2 });
    expect(after.events.every((e) => e.id > lastBefore)).toBe(true);

    // Turned off, it stays off across the next wake.
    await call("DELETE", `/rooms/${room}/trace`);
    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });
    await publish(alice, "after-off", 3);
    expect(await events(room)).toEqual({ enabled: false, until: null, events: [] });
    alice.close();
  });

  it("is served by the Worker under /v1/admin (admin.ts mounts it behind its admin check)", async () => {
    const room = uniqueRoom();
    const admin = { Authorization: `Bearer ${await token({ sub: "ops", cap: ADMIN_CAP })}` };
    const on = await fetchWorker(`/v1/admin/rooms/${room}/trace`, { method: "POST", headers: admin, body: '{"seconds":30}' });
    expect(on.status).toBe(200);
    expect(await on.json()).toMatchObject({ enabled: true });
    const res = await fetchWorker(`/v1/admin/rooms/${room}/trace`, { headers: admin });
    expect(await res.json()).toMatchObject({ enabled: true, events: [] });
    const roomAdmin = { Authorization: `Bearer ${await token({ sub: "ops", cap: { [room]: ["admin"] } })}` };
    expect((await fetchWorker(`/v1/admin/rooms/${room}/trace`, { method: "DELETE", headers: roomAdmin })).status).toBe(403);
    expect(await (await fetchWorker(`/v1/admin/rooms/${room}/trace`, { method: "DELETE", headers: admin })).json()).toEqual({ enabled: false, until: null });
  });
});

describe("Tracer", () => {
  const conn = { id: "c1", userId: "u1" };
  const frame = '{"type":"publish","id":"x","data":1}';

  it("is off, allocates nothing and records nothing until started; ends by the clock alone", () => {
    const t = new Tracer(undefined, () => "r", 0);
    expect(t.on).toBe(false);
    expect(t.start(1, false, 1_000)).toEqual({ enabled: true, until: 2_000 });
    expect(t.frameIn(conn, frame, 1_999)).toBeDefined();
    // At `until`, the next event switches it off instead of being recorded.
    expect(t.frameIn(conn, frame, 2_000)).toBeUndefined();
    expect(t.on).toBe(false);
    t.out(conn, '{"type":"ack","id":"x","seq":1,"duplicate":false}', 2_001);
    expect(t.events(0, 2_002)).toMatchObject({ enabled: false, until: null, events: [{ dir: "in", at: 1_999 }] });
    // The seconds are clamped to 1..600 for callers that skipped validation.
    expect(t.start(10_000, false, 0).until).toBe(600_000);
    expect(NO_TRACE.on).toBe(false);
  });

  it("keeps the last TRACE_CAPACITY events, oldest first", () => {
    const t = new Tracer(undefined, () => "r", 0);
    vi.spyOn(console, "log").mockImplementation(() => {});
    t.start(60, false, 0);
    for (let i = 0; i < TRACE_CAPACITY + 5; i++) t.out(conn, `{"type":"ack","id":"m${i}","seq":${i},"duplicate":false}`, 1);
    const { events: got } = t.events(0, 2);
    expect(got).toHaveLength(TRACE_CAPACITY);
    expect(got[0]!.frameId).toBe("m5");
    expect(got.at(-1)!.frameId).toBe(`m${TRACE_CAPACITY + 4}`);
    expect(t.events(got.at(-2)!.id, 2).events.map((e) => e.frameId)).toEqual([`m${TRACE_CAPACITY + 4}`]);
  });

  it("keeps no payload of a frame over 4 KiB, even with payloads", () => {
    const t = new Tracer(undefined, () => "r", 0);
    vi.spyOn(console, "log").mockImplementation(() => {});
    t.start(60, true, 0);
    t.out(conn, JSON.stringify({ type: "message", seq: 1, id: "a", from: "u", ts: 0, data: "x".repeat(5_000) }), 1);
    const [event] = t.events(0, 1).events;
    expect(event!.data).toMatch(/^\[omitted: \d+ bytes\]$/);
    expect(event!.bytes).toBeGreaterThan(5_000);
  });
});

describe("redact", () => {
  it("redacts any key naming a credential and any three-segment token, not only the exact names and eyJ headers", () => {
    const jwtWithSpacedHeader = `${btoa('{ "alg": "HS256" }').replace(/=+$/, "")}.${btoa('{"sub":"alice"}').replace(/=+$/, "")}.c2lnbmF0dXJlLWJ5dGVz`;
    expect(jwtWithSpacedHeader.startsWith("eyJ")).toBe(false);
    expect(
      redact({ authToken: "a", session_token: "b", "x-api-key": "c", userPassword: "d", text: `see ${jwtWithSpacedHeader} here`, plain: "hello.world" }, 0),
    ).toEqual({ authToken: "[redacted]", session_token: "[redacted]", "x-api-key": "[redacted]", userPassword: "[redacted]", text: "see [redacted] here", plain: "hello.world" });
  });
});
