/**
 * Ephemeral messages (docs/protocol.md §6.4): a `broadcast` frame is relayed to the
 * room's other live connections and never stored: no seq, no log row, no replay;
 * checked and charged like a publish; volatile towards slow readers.
 */
import type { BroadcastedFrame } from "@roomcast/protocol";
import { describe, expect, it } from "vitest";
import { BACKEND_RATE, connect, editSessions, fetchWorker, httpPublish, publish, token, uniqueRoom, type TestSocket } from "./helpers.js";

// vitest.config.ts: MAX_MESSAGE_BYTES=1024, PUBLISH_RATE_PER_SECOND=5, PUBLISH_BURST=10,
// HISTORY_ON_JOIN=5, REPLAY_PAGE_SIZE=5, MAX_UNCONFIRMED_BYTES=65536.

const broadcasts = (socket: TestSocket) => socket.frames.filter((f): f is BroadcastedFrame => f.type === "broadcast");
const seqs = (socket: TestSocket) => socket.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);

/** A publish round trip: every frame the room sent this socket before the ack has arrived. */
async function settle(socket: TestSocket, id: string): Promise<void> {
  await publish(socket, id, null);
}

async function storedSeqs(room: string): Promise<number[]> {
  const res = await fetchWorker(`/v1/rooms/${room}/messages?after=0`, { headers: { Authorization: `Bearer ${await token({ sub: "reader" })}` } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { head: number; messages: { seq: number }[] };
  return body.messages.map((m) => m.seq);
}

describe("ephemeral broadcasts", () => {
  it("relays to the other live connections (the sender's other tabs too), not to the sender, and stores nothing", async () => {
    const room = uniqueRoom();
    const tab1 = await connect(room, await token({ sub: "alice" }));
    const tab2 = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    const { connectionId } = await tab1.next("welcome");
    for (const s of [tab2, bob]) await s.next("welcome");

    tab1.send({ type: "broadcast", data: { x: 10, y: 20 } });
    const got = await bob.next("broadcast");
    expect(got).toEqual({ type: "broadcast", from: "alice", connectionId, ts: expect.any(Number), data: { x: 10, y: 20 } });
    expect(await tab2.next("broadcast")).toEqual(got);

    // The sender's own copy would have come before this ack; and the broadcast took no seq.
    expect(await publish(tab1, "stored-1", "hello")).toMatchObject({ seq: 1 });
    expect(broadcasts(tab1)).toHaveLength(0);
    expect(await storedSeqs(room)).toEqual([1]);
    const late = await connect(room, await token({ sub: "carol" }));
    expect(await late.next("welcome")).toMatchObject({ seq: 1, replay: 1 });
    for (const s of [tab1, tab2, bob, late]) s.close();
  });

  it("is never replayed: neither a resume nor a fresh join gets a broadcast sent before it", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    await alice.next("welcome");
    const { epoch } = await bob.next("welcome");
    await publish(alice, "m1", 1);
    await bob.until(() => seqs(bob).includes(1));
    bob.close();
    await bob.closed;

    for (let i = 0; i < 3; i++) alice.send({ type: "broadcast", data: { i } });
    await publish(alice, "m2", 2);

    const back = await connect(room, await token({ sub: "bob" }), { resume: { epoch, after: 1 } });
    expect((await back.next("welcome")).resume).toEqual({ recovered: true });
    const fresh = await connect(room, await token({ sub: "carol" }));
    await fresh.next("welcome");
    await settle(back, "sync-back");
    await settle(fresh, "sync-fresh");
    expect(seqs(back)).toEqual([2, 3, 4]); // m2, then the two sync publishes
    expect(seqs(fresh).slice(0, 2)).toEqual([1, 2]);
    expect(broadcasts(back)).toHaveLength(0);
    expect(broadcasts(fresh)).toHaveLength(0);
    for (const s of [alice, back, fresh]) s.close();
  });

  it("shares the publish rate limit: over budget it is dropped with rate_limited and its id (\"\" without one)", async () => {
    const room = uniqueRoom();
    // 3 tokens, one more a second: two publishes and one broadcast spend them.
    const alice = await connect(room, await token({ sub: "alice", rate: { perSecond: 1, burst: 3 } }));
    const bob = await connect(room, await token({ sub: "bob" }));
    for (const s of [alice, bob]) await s.next("welcome");
    await publish(alice, "p1", 1);
    await publish(alice, "p2", 2);
    alice.send({ type: "broadcast", id: "b1", data: "first" });
    alice.send({ type: "broadcast", id: "b2", data: "second" });
    alice.send({ type: "broadcast", data: "third" });
    expect(await alice.next("error")).toMatchObject({ code: "rate_limited", id: "b2" });
    expect(await alice.next("error")).toMatchObject({ code: "rate_limited", id: "" });
    expect((await bob.next("broadcast")).data).toBe("first");
    await settle(bob, "sync");
    expect(broadcasts(bob).map((f) => f.data)).toEqual(["first"]);
    expect(alice.frames.some((f) => f.type === "ack" && f.id.startsWith("b"))).toBe(false); // never acked
    for (const s of [alice, bob]) s.close();
  });

  it("needs the publish permission", async () => {
    const room = uniqueRoom();
    const reader = await connect(room, await token({ sub: "reader", cap: { "*": ["subscribe"] } }));
    const bob = await connect(room, await token({ sub: "bob" }));
    for (const s of [reader, bob]) await s.next("welcome");
    reader.send({ type: "broadcast", id: "b1", data: 1 });
    reader.send({ type: "broadcast", data: 2 });
    expect(await reader.next("error")).toMatchObject({ code: "forbidden", id: "b1" });
    expect(await reader.next("error")).toMatchObject({ code: "forbidden", id: "" });
    await settle(bob, "sync");
    expect(broadcasts(bob)).toHaveLength(0);
    expect(reader.ws.readyState).toBe(WebSocket.OPEN);
    for (const s of [reader, bob]) s.close();
  });

  it("has the message size limit", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    for (const s of [alice, bob]) await s.next("welcome");
    alice.send({ type: "broadcast", id: "big", data: "x".repeat(1_023) }); // 1,025 bytes as JSON
    alice.send({ type: "broadcast", id: "fits", data: "y".repeat(1_022) }); // 1,024
    expect(await alice.next("error")).toMatchObject({ code: "message_too_large", id: "big" });
    expect((await bob.next("broadcast")).data).toBe("y".repeat(1_022));
    await settle(bob, "sync");
    expect(broadcasts(bob)).toHaveLength(1);
    for (const s of [alice, bob]) s.close();
  });

  it("is dropped for a reader past half its budget, which is not closed for it, and gets them again once it confirms", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice", rate: BACKEND_RATE }));
    const stalled = await connect(room, await token({ sub: "stalled" }), { progress: false });
    const healthy = await connect(room, await token({ sub: "healthy" }));
    for (const s of [alice, stalled, healthy]) await s.next("welcome");
    const data = "z".repeat(1_000);
    // 80 frames of ~1.1 KB: past the whole 64 KiB budget if each were sent. In steps of
    // ten, as fast as a reader that reports its progress confirms them (a burst of more
    // than half the budget before any report would be dropped for it too).
    for (let i = 0; i < 80; i++) {
      alice.send({ type: "broadcast", data: { i, data } });
      if (i % 10 === 9) await healthy.until(() => broadcasts(healthy).length === i + 1);
    }
    await settle(stalled, "still-here"); // answered, not closed: it is under the budget
    const kept = broadcasts(stalled).length;
    expect(kept).toBeGreaterThan(20); // about 32 KiB of them
    expect(kept).toBeLessThan(40);
    expect(stalled.frames.some((f) => f.type === "error")).toBe(false);

    stalled.send({ type: "progress", seq: 1 });
    await settle(stalled, "confirmed");
    alice.send({ type: "broadcast", data: "again" });
    await stalled.until(() => broadcasts(stalled).length === kept + 1);
    expect(broadcasts(stalled).at(-1)).toMatchObject({ data: "again" });
    for (const s of [alice, stalled, healthy]) s.close();
  });

  it("never reaches a joining connection: one replaying after a wake gets none before its replay is done", async () => {
    const room = uniqueRoom();
    for (let i = 1; i <= 12; i++) await httpPublish(room, `m${i}`, i);
    const bob = await connect(room, await token({ sub: "bob" }));
    const alice = await connect(room, await token({ sub: "alice" }));
    for (const s of [alice, bob]) await s.next("welcome");
    await bob.until(() => seqs(bob).length === 5); // HISTORY_ON_JOIN
    // Bob was mid-replay (from 0) when the room hibernated: after the wake he is joining
    // again, and his replay restarts, three pages, a turn each.
    await editSessions(room, (rc) => (rc.userId === "bob" ? { ...rc, replayedTo: 0 } : undefined));
    const before = bob.frames.length;
    alice.send({ type: "broadcast", data: "while-joining-1" }); // wakes the room
    alice.send({ type: "broadcast", data: "while-joining-2" });
    await bob.until(() => seqs(bob).length === 5 + 12);
    await settle(alice, "sync");
    alice.send({ type: "broadcast", data: "live" });
    await bob.until(() => broadcasts(bob).some((f) => f.data === "live"));
    const after = bob.frames.slice(before);
    // The one that woke the room found him joining: dropped. (The second may find him
    // live already: the replay runs between events.) Nothing before the replay's end.
    const got = broadcasts(bob).map((f) => f.data);
    expect(got).not.toContain("while-joining-1");
    expect(got.at(-1)).toBe("live");
    const lastReplayed = after.findIndex((f) => f.type === "message" && f.seq === 12);
    expect(after.findIndex((f) => f.type === "broadcast")).toBeGreaterThan(lastReplayed);
    for (const s of [alice, bob]) s.close();
  });
});
