import type { BroadcastedFrame } from "@roomcast/protocol";
import { describe, expect, it } from "vitest";
import { connect, token, uniqueRoom } from "../helpers.js";

// The "busy" project: BROADCAST_MAX_DELAY_MS=40, so a burst of publishes waits in a
// batching window long enough for a broadcast to arrive behind it (test/ephemeral.test.ts has the rest).

describe("ephemeral broadcasts and batching", () => {
  it("a broadcast does not overtake stored messages the room handled before it, batched ones included", async () => {
    const room = uniqueRoom("ephemeral-order");
    const alice = await connect(room, await token({ sub: "alice" }));
    const bob = await connect(room, await token({ sub: "bob" }));
    for (const s of [alice, bob]) await s.next("welcome");
    // Back to back: the first goes out at once and opens the window; the others wait in it.
    for (let i = 1; i <= 5; i++) alice.send({ type: "publish", id: `m${i}`, data: i });
    alice.send({ type: "broadcast", data: "after-m5" });
    await bob.until((frames) => frames.some((f) => f.type === "broadcast"));
    const order = bob.frames.flatMap((f) => (f.type === "message" ? [f.seq] : f.type === "broadcast" ? [(f as BroadcastedFrame).data] : []));
    expect(order).toEqual([1, 2, 3, 4, 5, "after-m5"]);
    expect(Math.max(...bob.batches)).toBeGreaterThan(1); // some of them did wait in a window
    for (const s of [alice, bob]) s.close();
  });
});
