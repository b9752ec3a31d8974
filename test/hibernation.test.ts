import { abortAllDurableObjects, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { connect, fetchWorker, publish, token, uniqueRoom } from "./helpers.js";

const MARK = Symbol.for("roomcast.test.instance");

/** Tags the live instance so a test can tell whether the next event ran on a fresh one. */
async function markInstance(room: string): Promise<void> {
  await runInDurableObject(env.ROOMS.getByName(room), (instance) => {
    (instance as unknown as Record<symbol, boolean>)[MARK] = true;
  });
}
async function isSameInstance(room: string): Promise<boolean> {
  return runInDurableObject(env.ROOMS.getByName(room), (instance) => (instance as unknown as Record<symbol, boolean>)[MARK] === true);
}

describe("hibernation", () => {
  it("keeps each socket's identity and the room's sequence across an eviction", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob", cap: { [room]: ["subscribe"] } }));
    const welcome = await alice.next("welcome");
    await publish(alice, "before", 1);
    await markInstance(room);

    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });

    // The same sockets still work, on a fresh instance, with their identity and permissions.
    expect(await publish(alice, "after", 2)).toMatchObject({ seq: 2, duplicate: false });
    expect(await isSameInstance(room)).toBe(false);
    const seen = await bob.take("message", 2);
    expect(seen.map((m) => [m.seq, m.from])).toEqual([
      [1, "alice"],
      [2, "alice"],
    ]);
    bob.send({ type: "publish", id: "bob-try", data: 1 });
    expect(await bob.next("error")).toMatchObject({ code: "forbidden", id: "bob-try" });
    // Dedupe survives too: the pre-eviction id is still known.
    expect(await publish(alice, "before", 1)).toMatchObject({ seq: 1, duplicate: true });
    // A newcomer sees the same epoch and head.
    const late = await connect(room, await token({ sub: "late" }));
    expect(await late.next("welcome")).toMatchObject({ epoch: welcome.epoch, seq: 2 });
    for (const s of [alice, bob, late]) s.close();
  });

  it("answers pings without running room code", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    await alice.next("welcome");
    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });
    alice.send('{"type":"ping"}');
    expect(await alice.next("pong")).toEqual({ type: "pong" });
    // The auto-response did not need the object; its timestamp was recorded for the socket.
    const stamped = await runInDurableObject(env.ROOMS.getByName(room), (_instance, state) =>
      state.getWebSockets().map((ws) => state.getWebSocketAutoResponseTimestamp(ws)),
    );
    expect(stamped.some((t) => t instanceof Date)).toBe(true);
    alice.close();
  });
});

describe("hard reset", () => {
  it("keeps every acked message after all objects are aborted, and clients can rejoin", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    const welcome = await alice.next("welcome");
    const acked = [];
    for (let i = 1; i <= 6; i++) acked.push((await publish(alice, `m${i}`, { i })).seq);

    await abortAllDurableObjects();
    const closed = await alice.closed;
    expect(closed.code).not.toBe(1000);

    const res = await fetchWorker(`/v1/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${await token()}` } });
    const page = (await res.json()) as { epoch: string; head: number; messages: { seq: number; data: unknown }[] };
    expect(page.messages.map((m) => m.seq)).toEqual(acked);
    expect(page).toMatchObject({ epoch: welcome.epoch, head: 6 });

    const again = await connect(room);
    expect(await again.next("welcome")).toMatchObject({ epoch: welcome.epoch, seq: 6 });
    expect(await publish(again, "m7", { i: 7 })).toMatchObject({ seq: 7 });
    again.close();
  });
});
