import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ServerFrame } from "@roomcast/protocol";
import { connect, editSessions, fetchWorker, publish, token, uniqueRoom, upgrade } from "./helpers.js";
import { expectRefused } from "./refusals.js";

const stub = (room: string) => env.ROOMS.getByName(room);
type Diff = Extract<ServerFrame, { type: "presence_diff" }>;

async function admin(method: string, path: string, body?: unknown, jwt?: string) {
  return fetchWorker(path, {
    method,
    headers: { Authorization: `Bearer ${jwt ?? (await token({ sub: "ops", cap: { "*": ["admin"] } }))}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

describe("token expiry", () => {
  it("closes a session whose token expired with 4001 token_expired, from the alarm, even if the client only pings", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    alice.send('{"type":"ping"}');
    await alice.next("pong");
    // Expired 10 s ago (beyond the 5 s clock tolerance).
    await editSessions(room, (s) => ({ ...s, expiresAt: Math.floor(Date.now() / 1000) - 10 })); // and hibernates
    expect(await runDurableObjectAlarm(stub(room))).toBe(true);
    expect(await alice.closed).toMatchObject({ code: 4001, reason: "token_expired" });
  });

  it("closes an expired session on its next frame too", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    await alice.next("welcome");
    await editSessions(room, (s) => ({ ...s, expiresAt: Math.floor(Date.now() / 1000) - 10 }));
    alice.send({ type: "publish", id: "late", data: 1 });
    expect(await alice.closed).toMatchObject({ code: 4001 });
  });

  it("extends the session in-band with a refresh frame, without reconnecting", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice", expiresIn: 60 }));
    const welcome = await alice.next("welcome");
    alice.send({ type: "refresh", id: "r1", token: await token({ sub: "alice", expiresIn: 7_200 }) });
    const refreshed = await alice.next("refreshed");
    expect(refreshed).toMatchObject({ id: "r1", permissions: ["subscribe", "publish", "presence"] });
    expect(refreshed.expiresAt).toBeGreaterThan(welcome.expiresAt + 7_000);
    // The session itself now carries the new expiry (it survives hibernation)...
    const stored = await runInDurableObject(stub(room), (_i, state) =>
      state.getWebSockets().map((ws) => (ws.deserializeAttachment() as { rc: { expiresAt: number } }).rc.expiresAt),
    );
    expect(stored).toEqual([refreshed.expiresAt]);
    // ...so the alarm, evicted or not, leaves it open past the old token's expiry.
    await evictDurableObject(stub(room), { webSockets: "hibernate" });
    await runDurableObjectAlarm(stub(room));
    expect(await publish(alice, "still-here", 1)).toMatchObject({ seq: 1 });
    alice.close();
  });

  it("refuses a refresh token for another user, an expired one, or one without subscribe, and keeps the session", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    alice.send({ type: "refresh", id: "other", token: await token({ sub: "mallory" }) });
    expect(await alice.next("error")).toMatchObject({ code: "forbidden", id: "other" });
    alice.send({ type: "refresh", id: "old", token: await token({ sub: "alice", expiresIn: -60 }) });
    expect(await alice.next("error")).toMatchObject({ code: "token_expired", id: "old" });
    alice.send({ type: "refresh", id: "bad", token: "not-a-jwt" });
    expect(await alice.next("error")).toMatchObject({ code: "unauthorized", id: "bad" });
    alice.send({ type: "refresh", id: "narrow", token: await token({ sub: "alice", cap: { "elsewhere:*": ["subscribe"] } }) });
    expect(await alice.next("error")).toMatchObject({ code: "forbidden", id: "narrow" });
    expect(await publish(alice, "still-works", 1)).toMatchObject({ seq: 1 });
    alice.close();
  });
});

describe("drain", () => {
  it("hints every connection to reconnect after a delay spread over the window, then closes them retryably", async () => {
    const room = uniqueRoom();
    const sockets = [];
    for (const sub of ["a", "b", "c", "d"]) sockets.push(await connect(room, await token({ sub })));
    const res = await admin("POST", `/v1/rooms/${room}/drain`, { windowSeconds: 10 });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ connections: 4, windowMs: 10_000 });
    const hints = await Promise.all(sockets.map((s) => s.next("reconnect")));
    const delays = hints.map((h) => h.delayMs);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(0), expect(d).toBeLessThan(10_000);
    // Spread, not a stampede: four uniform draws over 10 s are all equal with negligible probability.
    expect(new Set(delays).size).toBeGreaterThan(1);
    for (const s of sockets) expect(await s.closed).toMatchObject({ code: 4000, reason: "going_away" });
  });

  it("keeps drained members in presence while they reconnect, and they resume without loss", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const welcome = await alice.next("welcome");
    await publish(alice, "before", 1);
    await admin("POST", `/v1/rooms/${room}/drain`, { windowSeconds: 0 });
    await alice.closed;
    const back = await connect(room, await token({ sub: "alice" }), { resume: { epoch: welcome.epoch, after: 0 } });
    const again = await back.next("welcome");
    expect(again.resume).toEqual({ recovered: true });
    expect((await back.next("message")).id).toBe("before");
    const members = (await back.next("presence_state")).members;
    expect(members.map((m) => [m.userId, m.connections.length])).toEqual([["alice", 1]]);
    back.close();
  });

  it("uses DRAIN_WINDOW_SECONDS when no window is given and rejects a bad one", async () => {
    const room = uniqueRoom();
    const res = await admin("POST", `/v1/rooms/${room}/drain`);
    expect(await res.json()).toEqual({ connections: 0, windowMs: 10_000 });
    const bad = await admin("POST", `/v1/rooms/${room}/drain`, { windowSeconds: -1 });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_request" } });
  });

  it("refuses any body but {} or {windowSeconds}: arrays, other values, unknown fields", async () => {
    const room = uniqueRoom();
    for (const body of [[5], [], "5", 5, null, { windowSeconds: 1, extra: true }, { window: 3 }]) {
      const res = await admin("POST", `/v1/rooms/${room}/drain`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
    expect((await admin("POST", `/v1/rooms/${room}/drain`, {})).status).toBe(200);
    expect((await admin("POST", `/v1/rooms/${room}/drain`, { windowSeconds: 0 })).status).toBe(200);
  });

  it("requires the admin permission", async () => {
    const room = uniqueRoom();
    const res = await admin("POST", `/v1/rooms/${room}/drain`, {}, await token({ sub: "alice" }));
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "forbidden" } });
  });
});

describe("kick", () => {
  it("disconnects every connection of a user with the terminal 4502 and announces the leave at once", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const m1 = await connect(room, await token({ sub: "mallory" }));
    const m2 = await connect(room, await token({ sub: "mallory" }));
    await watcher.take("presence_diff", 2);
    const res = await admin("DELETE", `/v1/rooms/${room}/connections/mallory`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ closed: 2 });
    expect(await m1.closed).toMatchObject({ code: 4502, reason: "kicked" });
    expect(await m2.closed).toMatchObject({ code: 4502 });
    expect(((await watcher.next("presence_diff")) as Diff).leaves).toEqual(["mallory"]);
    const presence = await fetchWorker(`/v1/rooms/${room}/presence`, { headers: { Authorization: `Bearer ${await token()}` } });
    expect(((await presence.json()) as { members: { userId: string }[] }).members.map((m) => m.userId)).toEqual(["watcher"]);
    watcher.close();
  });

  it("answers a kick of a user who is not there with closed: 0 and refuses non-admins", async () => {
    const room = uniqueRoom();
    expect(await (await admin("DELETE", `/v1/rooms/${room}/connections/nobody`)).json()).toEqual({ closed: 0 });
    const res = await admin("DELETE", `/v1/rooms/${room}/connections/nobody`, undefined, await token());
    expect(res.status).toBe(403);
  });
});

describe("kick with a ban", () => {
  it("keeps the user out of the room for banSeconds (403 kicked), not out of other rooms, and lets them back after", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "troll" });
    const troll = await connect(room, jwt);
    await troll.next("welcome");
    const res = await admin("DELETE", `/v1/rooms/${room}/connections/troll?banSeconds=60`);
    expect(await res.json()).toMatchObject({ closed: 1, bannedUntil: expect.any(Number) });
    expect((await troll.closed).code).toBe(4502);

    await expectRefused(await upgrade(room, jwt), "kicked");
    // Over HTTP too.
    const post = await fetchWorker(`/v1/rooms/${room}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
      body: JSON.stringify({ id: "sneak", data: 1 }),
    });
    expect(post.status).toBe(403);
    const elsewhere = await connect(uniqueRoom(), jwt);
    expect((await elsewhere.next("welcome")).userId).toBe("troll");
    elsewhere.close();

    // The ban survives an eviction, and ends when its time is up (the alarm deletes it).
    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });
    await expectRefused(await upgrade(room, jwt), "kicked");
    await runInDurableObject(env.ROOMS.getByName(room), (_i, state) => state.storage.sql.exec("UPDATE bans SET until = ?", Date.now() - 1));
    await runDurableObjectAlarm(env.ROOMS.getByName(room));
    const back = await connect(room, jwt);
    expect((await back.next("welcome")).userId).toBe("troll");
    back.close();
  });

  it("refuses a bad banSeconds and bans nobody without one", async () => {
    const room = uniqueRoom();
    for (const q of ["-1", "abc", String(31 * 24 * 3600)]) {
      const res = await admin("DELETE", `/v1/rooms/${room}/connections/x?banSeconds=${q}`);
      expect(res.status, q).toBe(400);
    }
    expect(await (await admin("DELETE", `/v1/rooms/${room}/connections/x`)).json()).toEqual({ closed: 0 });
    expect((await upgrade(room, await token({ sub: "x" }))).status).toBe(101);
  });
});
