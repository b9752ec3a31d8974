import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Member, ServerFrame } from "@roomcast/protocol";
import { connect, editSessions, fetchWorker, token, uniqueRoom, type TestSocket } from "./helpers.js";

// vitest.config.ts: PRESENCE_GRACE_SECONDS=2, PRESENCE_STATE_MAX_BYTES=256, MAX_CONNECTIONS_PER_ROOM=4,
// PRESENCE_MAX_DELAY_MS=0 (every presence change in its own diff).

type Diff = Extract<ServerFrame, { type: "presence_diff" }>;
const summary = (members: Member[]) =>
  Object.fromEntries(members.map((m) => [m.userId, m.connections.length]).sort(([a], [b]) => String(a).localeCompare(String(b))));
const stub = (room: string) => env.ROOMS.getByName(room);

/** Pretends every grace period in the room has run out, then runs the alarm (after an eviction). */
async function endGracePeriods(room: string): Promise<void> {
  await evictDurableObject(stub(room), { webSockets: "hibernate" });
  await runInDurableObject(stub(room), (_instance, state) => {
    state.storage.sql.exec("UPDATE presence_grace SET grace_until = 0");
  });
  await evictDurableObject(stub(room), { webSockets: "hibernate" });
  expect(await runDurableObjectAlarm(stub(room))).toBe(true);
}

async function presenceOverHttp(room: string): Promise<Record<string, number>> {
  const res = await fetchWorker(`/v1/rooms/${room}/presence`, { headers: { Authorization: `Bearer ${await token()}` } });
  expect(res.status).toBe(200);
  return summary(((await res.json()) as { members: Member[] }).members);
}

/** No presence_diff arrives within `ms` (waits on real time, so keep it short). */
async function expectNoDiff(socket: TestSocket, ms = 150): Promise<void> {
  const before = socket.frames.filter((f) => f.type === "presence_diff").length;
  await new Promise((r) => setTimeout(r, ms));
  expect(socket.frames.filter((f) => f.type === "presence_diff").length).toBe(before);
}

describe("presence", () => {
  it("gives a joining client the state, grouped by user, and tells the others with diffs", async () => {
    const room = uniqueRoom();
    const alice1 = await connect(room, await token({ sub: "alice" }));
    const alice2 = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    expect(summary((await bob.next("presence_state")).members)).toEqual({ alice: 2, bob: 1 });

    // alice1 saw: alice's second device (update), then bob (join).
    const [second, bobJoin] = (await alice1.take("presence_diff", 2)) as Diff[];
    expect(second).toMatchObject({ joins: [], leaves: [] });
    expect(second!.updates.map((m) => [m.userId, m.connections.length])).toEqual([["alice", 2]]);
    expect(bobJoin!.joins.map((m) => m.userId)).toEqual(["bob"]);
    expect(await presenceOverHttp(room)).toEqual({ alice: 2, bob: 1 });

    // One of alice's tabs closes: an update, not a leave.
    alice2.close();
    const update = (await bob.next("presence_diff")) as Diff;
    expect(update.leaves).toEqual([]);
    expect(update.updates.map((m) => [m.userId, m.connections.length])).toEqual([["alice", 1]]);
    for (const s of [alice1, bob]) s.close();
  });

  it("broadcasts custom state updates as diffs and rejects oversized or unpermitted state", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    await alice.next("presence_diff"); // bob's join
    alice.send({ type: "presence", state: { status: "typing" } });
    const diff = (await bob.next("presence_diff")) as Diff;
    expect(diff.updates[0]).toMatchObject({ userId: "alice", connections: [{ state: { status: "typing" } }] });
    // The sender sees its own update too.
    expect(((await alice.next("presence_diff")) as Diff).updates[0]!.userId).toBe("alice");

    alice.send({ type: "presence", id: "big", state: "x".repeat(300) });
    expect(await alice.next("error")).toMatchObject({ code: "message_too_large", id: "big" });

    const reader = await connect(room, await token({ sub: "reader", cap: { [room]: ["subscribe"] } }));
    reader.send({ type: "presence", id: "p1", state: 1 });
    expect(await reader.next("error")).toMatchObject({ code: "forbidden", id: "p1" });
    // A subscriber without the presence permission is not listed, but does see presence.
    expect(summary((await reader.next("presence_state")).members)).toEqual({ alice: 1, bob: 1 });
    expect(await presenceOverHttp(room)).toEqual({ alice: 1, bob: 1 });
    for (const s of [alice, bob, reader]) s.close();
  });

  it("does not flap when a user reconnects within the grace period", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const alice = await connect(room, await token({ sub: "alice" }));
    expect(((await watcher.next("presence_diff")) as Diff).joins.map((m) => m.userId)).toEqual(["alice"]);
    alice.close();
    await alice.closed;
    await expectNoDiff(watcher);
    // Still listed while inside the grace period, even across an eviction.
    await evictDurableObject(stub(room), { webSockets: "hibernate" });
    expect(await presenceOverHttp(room)).toEqual({ alice: 1, watcher: 1 });

    const again = await connect(room, await token({ sub: "alice" }));
    const diff = (await watcher.next("presence_diff")) as Diff;
    expect(diff.joins).toEqual([]);
    expect(diff.leaves).toEqual([]);
    expect(diff.updates.map((m) => [m.userId, m.connections.length])).toEqual([["alice", 1]]);
    // The replaced connection is gone for good: ending grace periods announces nothing.
    await endGracePeriods(room);
    await expectNoDiff(watcher);
    expect(await presenceOverHttp(room)).toEqual({ alice: 1, watcher: 1 });
    for (const s of [watcher, again]) s.close();
  });

  it("announces the leave once the grace period runs out", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const alice = await connect(room, await token({ sub: "alice" }));
    await watcher.next("presence_diff");
    alice.close();
    await alice.closed;
    await endGracePeriods(room);
    expect(((await watcher.next("presence_diff")) as Diff).leaves).toEqual(["alice"]);
    expect(await presenceOverHttp(room)).toEqual({ watcher: 1 });
    watcher.close();
  });

  it("announces the leave of a user whose close is the first event after a wake", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const alice = await connect(room, await token({ sub: "alice" }));
    await watcher.next("presence_diff");
    await evictDurableObject(stub(room), { webSockets: "hibernate" });
    alice.close();
    await alice.closed;
    await endGracePeriods(room);
    expect(((await watcher.next("presence_diff")) as Diff).leaves).toEqual(["alice"]);
    expect(await presenceOverHttp(room)).toEqual({ watcher: 1 });
    watcher.close();
  });

  it("counts any frame as a sign of life, not only pings", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    await editSessions(room, (s) => ({ ...s, joinedAt: Date.now() - 61_000 }));
    alice.send({ type: "publish", id: "busy", data: 1 }); // no ping, but clearly alive
    await alice.next("ack");
    await runDurableObjectAlarm(stub(room));
    expect(await presenceOverHttp(room)).toEqual({ alice: 1 });
    alice.close();
  });

  it("rebuilds presence after hibernation without announcing anyone again", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    await alice.next("presence_diff");
    alice.send({ type: "presence", state: { mood: "ok" } });
    await bob.next("presence_diff");
    await evictDurableObject(stub(room), { webSockets: "hibernate" });

    const carol = await connect(room, await token({ sub: "carol" }));
    const state = (await carol.next("presence_state")).members;
    expect(summary(state)).toEqual({ alice: 1, bob: 1, carol: 1 });
    expect(state.find((m) => m.userId === "alice")!.connections[0]!.state).toEqual({ mood: "ok" });
    // Bob hears exactly one diff: carol's join. Nobody is re-announced after the wake.
    const diff = (await bob.next("presence_diff")) as Diff;
    expect(diff.joins.map((m) => m.userId)).toEqual(["carol"]);
    await expectNoDiff(bob);
    for (const s of [alice, bob, carol]) s.close();
  });

  it("reaps a socket that vanished without a close frame and broadcasts its leave", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const ghost = await connect(room, await token({ sub: "ghost" }));
    await watcher.next("presence_diff");
    // The ghost has been silent (no ping) for longer than LIVENESS_TIMEOUT_SECONDS=60;
    // the watcher joined just now.
    await editSessions(room, (s) => (s.userId === "ghost" ? { ...s, joinedAt: Date.now() - 61_000 } : undefined));
    expect(await runDurableObjectAlarm(stub(room))).toBe(true);
    expect(await ghost.closed).toMatchObject({ code: 4004 });
    expect(((await watcher.next("presence_diff")) as Diff).leaves).toEqual(["ghost"]);
    expect(await presenceOverHttp(room)).toEqual({ watcher: 1 });
    // The alarm is rescheduled for the watcher's own liveness deadline.
    const next = await runInDurableObject(stub(room), (_i, state) => state.storage.getAlarm());
    expect(next).toBeGreaterThan(Date.now() + 50_000);
    watcher.close();
  });

  it("keeps a socket that pings, however long it has been connected", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    await editSessions(room, (s) => ({ ...s, joinedAt: Date.now() - 3_600_000 }));
    alice.send('{"type":"ping"}');
    await alice.next("pong");
    await runDurableObjectAlarm(stub(room));
    expect(await presenceOverHttp(room)).toEqual({ alice: 1 });
    alice.send({ type: "publish", id: "still-alive", data: 1 });
    expect(await alice.next("ack")).toMatchObject({ id: "still-alive" });
    alice.close();
  });

  it("schedules no alarm for a room nobody is in", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice", cap: { [room]: ["subscribe"] } }));
    await alice.next("welcome");
    alice.close();
    await alice.closed;
    // One alarm run with nobody left (and nothing retained) clears the schedule.
    await runDurableObjectAlarm(stub(room));
    expect(await runInDurableObject(stub(room), (_i, state) => state.storage.getAlarm())).toBeNull();
  });
});
