/**
 * room.stats(): ping→pong RTT and publish→ack latency over a bounded window, on
 * fake sockets with fake timers (which also drive `performance.now()`).
 */
import { describe, expect, it, vi } from "vitest";
import type { ClientOptions, RoomcastClient } from "../../src/client.js";
import { PingClock, SampleWindow, WINDOW } from "../../src/stats.js";
import { advance, observe, testClient, useFakeTime } from "./fake-socket.js";

const PING_EVERY = 1_000;
const defaults: Partial<ClientOptions> = {
  backoff: { minMs: 1_000, maxMs: 8_000, factor: 2 },
  connectTimeoutMs: 5_000,
  pingIntervalMs: PING_EVERY,
  pongTimeoutMs: 900,
};

let client: RoomcastClient | undefined;

useFakeTime(() => {
  client?.close();
  client = undefined;
});

async function connected(options: Partial<ClientOptions> = {}) {
  const setup = testClient({ ...defaults, ...options });
  client = setup.client;
  const room = setup.client.room("lobby");
  await advance();
  const socket = setup.server.last();
  // Liveness 60 s: the client pings every min(pingIntervalMs, 20 s) = 1 s.
  socket.welcome({ limits: { maxMessageBytes: 65_536, publishRatePerSecond: 20, publishBurst: 40, livenessTimeoutSeconds: 60 } });
  return { ...setup, room, socket, pings: () => socket.sent.filter((t) => t === '{"type":"ping"}').length };
}

describe("SampleWindow", () => {
  it("gives nearest-rank percentiles over its samples", () => {
    const w = new SampleWindow();
    expect(w.summary()).toEqual({ p50: null, p90: null, p99: null, count: 0, samples: 0 });
    // 1..100 in a shuffled order: p50 = 50, p90 = 90, p99 = 99 (nearest rank).
    const values = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    for (const v of values) w.add(v);
    expect(w.summary()).toEqual({ p50: 50, p90: 90, p99: 99, count: 100, samples: 100 });
    expect(w.last).toBe(values.at(-1));
  });

  it("sorts numerically, not as strings", () => {
    const w = new SampleWindow();
    for (const v of [9, 10, 100, 2]) w.add(v);
    expect(w.summary()).toMatchObject({ p50: 9, p90: 100, p99: 100 });
  });

  it("keeps only the last WINDOW samples: old ones stop counting, memory stays bounded", () => {
    const w = new SampleWindow();
    for (let i = 0; i < WINDOW; i++) w.add(1_000); // old, slow
    for (let i = 0; i < WINDOW; i++) w.add(5); // recent, fast
    expect(w.summary()).toEqual({ p50: 5, p90: 5, p99: 5, count: 2 * WINDOW, samples: WINDOW });
    for (let i = 0; i < 100_000; i++) w.add(i % 7);
    expect(w.summary().samples).toBe(WINDOW);
  });

  it("ignores a negative or non-finite sample", () => {
    const w = new SampleWindow();
    w.add(-1);
    w.add(Number.NaN);
    expect(w.summary().count).toBe(0);
  });
});

describe("PingClock", () => {
  it("pairs pongs with pings in order, ignores pongs nobody asked for, and keeps at most MAX_PINGS send times", () => {
    const clock = new PingClock();
    expect(clock.ponged()).toBeUndefined();
    clock.pinged();
    vi.advanceTimersByTime(10);
    clock.pinged();
    vi.advanceTimersByTime(5);
    expect(clock.ponged()).toBe(15); // answers the first ping
    expect(clock.ponged()).toBe(5); // the second
    expect(clock.ponged()).toBeUndefined();
    for (let i = 0; i < 1_000; i++) clock.pinged();
    // Only the newest MAX_PINGS are timed: the first pongs answer forgotten pings.
    let timed = 0;
    for (let i = 0; i < 1_000; i++) if (clock.ponged() !== undefined) timed++;
    expect(timed).toBe(PingClock.MAX_PINGS);
  });
});

describe("room.stats()", () => {
  it("starts empty, with the state and since", async () => {
    const { room } = await connected();
    expect(room.stats()).toEqual({
      rtt: { last: null, p50: null, p90: null, p99: null, count: 0, samples: 0 },
      publishAck: { p50: null, p90: null, p99: null, count: 0, samples: 0 },
      reconnects: 0,
      state: "connected",
      since: Date.parse("2030-01-01T00:00:00Z"),
    });
  });

  it("measures RTT from the ping text to its pong", async () => {
    const { room, socket, pings } = await connected();
    await advance(PING_EVERY);
    expect(pings()).toBe(1);
    await advance(42);
    socket.pong();
    expect(room.stats().rtt).toMatchObject({ last: 42, p50: 42, count: 1 });

    await advance(PING_EVERY - 42); // the next ping
    expect(pings()).toBe(2);
    await advance(8);
    socket.pong();
    expect(room.stats().rtt).toMatchObject({ last: 8, p50: 8, p90: 42, p99: 42, count: 2, samples: 2 });
  });

  it("does not take other frames for a pong, nor a pong nobody pinged for", async () => {
    const { room, socket, pings } = await connected();
    socket.pong(); // no ping outstanding
    await advance(PING_EVERY);
    expect(pings()).toBe(1);
    await advance(5);
    socket.message(1); // proves the socket alive, but is not the answer
    socket.presenceState([]);
    expect(room.stats().rtt.count).toBe(0);
    await advance(25);
    socket.pong();
    expect(room.stats().rtt).toMatchObject({ last: 30, count: 1 });
  });

  it("forgets pings of a socket that dropped: a pong on the next socket is not timed from them", async () => {
    const { room, server, socket, pings } = await connected();
    await advance(PING_EVERY);
    expect(pings()).toBe(1);
    socket.serverClose(1006);
    await advance(); // reconnects at once (random = 0)
    const next = server.last();
    expect(next).not.toBe(socket);
    next.welcome({ limits: { maxMessageBytes: 65_536, publishRatePerSecond: 20, publishBurst: 40, livenessTimeoutSeconds: 60 } });
    await advance(300);
    next.pong(); // no ping on this socket yet
    expect(room.stats().rtt.count).toBe(0);
    expect(room.stats().reconnects).toBe(1);
  });

  it("measures publish→ack from the send on the wire, not from the publish() call while offline", async () => {
    const setup = testClient({ ...defaults, pingIntervalMs: 3_600_000 });
    client = setup.client;
    const room = setup.client.room("lobby");
    await advance();
    const socket = setup.server.last();
    const ack = observe(room.publish({ text: "queued while connecting" }));
    await advance(2_000); // queued in the outbox: not on the wire yet
    expect(socket.sent).toEqual([]);
    socket.welcome();
    const [id] = socket.publishedIds;
    expect(id).toBeDefined();
    await advance(120);
    socket.ack(id!, 1);
    await advance();
    expect(ack.status).toBe("resolved");
    expect(room.stats().publishAck).toEqual({ p50: 120, p90: 120, p99: 120, count: 1, samples: 1 });
  });

  it("times a publish sent again from its last send (after a reconnect, and after rate_limited)", async () => {
    const setup = testClient({ ...defaults, pingIntervalMs: 3_600_000 });
    client = setup.client;
    const room = setup.client.room("lobby");
    await advance();
    setup.server.last().welcome();
    void room.publish({ n: 1 });
    await advance();
    const first = setup.server.last();
    const [id] = first.publishedIds;
    await advance(500);
    first.serverClose(1006); // no ack on this socket
    await advance();
    const second = setup.server.last();
    second.welcome();
    await advance();
    expect(second.publishedIds).toEqual([id]);
    await advance(10);
    second.error("rate_limited", id!); // "later": sent again when the pacer allows
    for (let ms = 0; ms < 2_000 && second.publishedIds.length < 2; ms++) await advance(1);
    expect(second.publishedIds).toEqual([id, id]);
    const sinceLastSend = 30;
    await advance(sinceLastSend);
    second.ack(id!, 1, true);
    expect(room.stats().publishAck).toMatchObject({ p50: sinceLastSend, count: 1 });
  });

  it("holds no timing for publishes that ended without an ack, and none after a drop", async () => {
    const setup = testClient({ ...defaults, pingIntervalMs: 3_600_000 });
    client = setup.client;
    const room = setup.client.room("lobby");
    await advance();
    const socket = setup.server.last();
    socket.welcome();
    const refused = observe(room.publish({ n: 1 }));
    void room.publish({ n: 2 });
    await advance();
    const [a, b] = socket.publishedIds;
    socket.error("forbidden", a!);
    await advance();
    expect(refused.status).toBe("rejected");
    socket.ack(a!, 9); // a stray ack for the refused one is not a sample
    expect(room.stats().publishAck.count).toBe(0);
    socket.ack(b!, 1);
    expect(room.stats().publishAck.count).toBe(1);
  });

  it("keeps bounded state over many publishes", async () => {
    const setup = testClient({ ...defaults, pingIntervalMs: 3_600_000 });
    client = setup.client;
    const room = setup.client.room("lobby");
    await advance();
    const socket = setup.server.last();
    socket.welcome({ limits: { maxMessageBytes: 65_536, publishRatePerSecond: 1_000, publishBurst: 1_000, livenessTimeoutSeconds: 86_400 } });
    for (let i = 0; i < 600; i++) void room.publish({ i });
    await advance(1_000);
    const ids = socket.publishedIds;
    expect(ids.length).toBe(600);
    for (const [i, id] of ids.entries()) socket.ack(id, i + 1);
    const stats = room.stats().publishAck;
    expect(stats.count).toBe(600);
    expect(stats.samples).toBe(WINDOW);
  });

  it("counts reconnects and reports the state", async () => {
    const { room, server, socket } = await connected();
    socket.serverClose(1006);
    await advance();
    expect(room.stats().state).toBe("connecting");
    server.last().welcome();
    server.last().serverClose(1006);
    await advance(1_000);
    server.last().welcome();
    expect(room.stats()).toMatchObject({ reconnects: 2, state: "connected" });
  });
});
