/**
 * Ephemeral broadcasts on the client: `room.broadcast(data)` is volatile (sent now or
 * dropped, never queued), paced behind everything that waits for the rate budget,
 * and `room.onBroadcast` gets other connections' broadcasts without touching the
 * message position. Fake sockets, fake timers; every frame checked by the protocol's decoders.
 */
import { describe, expect, it } from "vitest";
import type { RoomcastClient } from "../../src/client.js";
import type { Broadcast } from "../../src/ephemeral.js";
import { RoomcastClientError } from "../../src/errors.js";
import { advance, observe, testClient, useFakeTime } from "./fake-socket.js";

let client: RoomcastClient | undefined;

useFakeTime(() => {
  client?.close();
  client = undefined;
});

/** Rate 5/s, burst 3: one token is kept for the Connection's refresh, so two frames at once. */
const LIMITS = { maxMessageBytes: 64, publishRatePerSecond: 5, publishBurst: 3, livenessTimeoutSeconds: 86_400 };

async function started() {
  const setup = testClient({ backoff: { minMs: 1_000, maxMs: 8_000, factor: 2 }, pingIntervalMs: 3_600_000 });
  client = setup.client;
  const room = setup.client.room("lobby");
  const errors: RoomcastClientError[] = [];
  room.on("error", (e) => errors.push(e));
  await advance();
  return { room, socket: setup.server.last(), server: setup.server, errors };
}

describe("room.broadcast", () => {
  it("is dropped, not queued, before the welcome and while disconnected", async () => {
    const { room, socket, server } = await started();
    expect(room.broadcast({ x: 1 })).toBe(false);
    socket.welcome({ limits: LIMITS });
    expect(socket.framesOf("broadcast")).toEqual([]); // the early one is gone for good
    expect(room.broadcast({ x: 2 })).toBe(true);
    expect(socket.framesOf("broadcast").map((f) => f.data)).toEqual([{ x: 2 }]);

    socket.serverClose(1006);
    expect(room.broadcast({ x: 3 })).toBe(false);
    await advance(1_000);
    const next = server.last();
    expect(next).not.toBe(socket);
    next.welcome({ limits: LIMITS });
    await advance(1_000);
    expect(next.framesOf("broadcast")).toEqual([]);
  });

  it("spends the rate budget, and says false once there is no token to spare", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: LIMITS });
    expect([room.broadcast(1), room.broadcast(2), room.broadcast(3)]).toEqual([true, true, false]);
    await advance(200); // one token back
    expect(room.broadcast(4)).toBe(true);
    expect(socket.framesOf("broadcast").map((f) => f.data)).toEqual([1, 2, 4]);
  });

  it("never starves publishes: a cursor stream at 100/s lets a waiting publish out within one refill", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: LIMITS });
    const cursor = setInterval(() => room.broadcast({ x: Date.now() }), 10);
    await advance(1_000); // the stream has the budget to itself
    const sentBefore = socket.framesOf("broadcast").length;
    expect(sentBefore).toBeGreaterThanOrEqual(5);
    const ack = observe(room.publish("hello", { id: "p-1" }));
    await advance(200);
    expect(socket.publishedIds).toEqual(["p-1"]);
    socket.ack("p-1", 1);
    await advance(0);
    expect(ack.status).toBe("resolved");
    clearInterval(cursor);
  });

  it("throws for data that is too large or not JSON, like publish", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: LIMITS });
    expect(() => room.broadcast("x".repeat(63))).toThrow(RoomcastClientError); // 65 bytes as JSON
    expect(() => room.broadcast(undefined)).toThrow(TypeError);
    expect(() => room.broadcast({ big: 1n })).toThrow(TypeError);
    expect(room.broadcast("é".repeat(31))).toBe(true); // 64 bytes
  });

  it("a rate_limited refusal drains the budget without an error event; forbidden is reported", async () => {
    const { room, socket, errors } = await started();
    socket.welcome({ limits: { ...LIMITS, publishBurst: 10 } });
    expect(room.broadcast("a")).toBe(true);
    const [first] = socket.framesOf("broadcast");
    socket.error("rate_limited", first!.id);
    expect(errors).toEqual([]);
    expect(room.broadcast("b")).toBe(false); // the server's bucket is empty: wait for it
    await advance(400); // two tokens back (one is the refresh's)
    expect(room.broadcast("c")).toBe(true);
    socket.error("forbidden", socket.framesOf("broadcast")[1]!.id);
    expect(errors.map((e) => e.code)).toEqual(["forbidden"]);
  });
});

describe("room.onBroadcast", () => {
  it("delivers other connections' broadcasts, and the message position does not move", async () => {
    const { room, socket } = await started();
    const got: Broadcast[] = [];
    const stop = room.onBroadcast((b) => got.push(b));
    socket.welcome({ seq: 4, replay: 0, limits: LIMITS });
    socket.deliver({ type: "broadcast", from: "bob", connectionId: "bob-tab-2", ts: 1_900_000_000_000, data: { x: 1, y: 2 } });
    expect(got).toEqual([{ from: "bob", connectionId: "bob-tab-2", ts: 1_900_000_000_000, data: { x: 1, y: 2 } }]);
    expect(room.position.seq).toBe(4);
    expect(room.messages).toEqual([]);
    stop();
    socket.deliver({ type: "broadcast", from: "bob", connectionId: "bob-tab-2", ts: 1_900_000_000_001, data: 2 });
    expect(got).toHaveLength(1);
  });
});
