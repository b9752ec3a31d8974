/**
 * The user's rate budget: the room paces every frame the server charges for
 * (publish, presence, history; one token kept for the Connection's refresh), and a
 * `rate_limited` answer means "send it again later", never "drop it". A fake
 * server here charges exactly as src/room/frame-handlers.ts does, from one bucket.
 */
import { describe, expect, it } from "vitest";
import type { RoomcastClient } from "../../src/client.js";
import type { PublishFailure } from "../../src/outbox.js";
import { Pacer } from "../../src/pacer.js";
import { advance, messageAt, observe, testClient, type FakeSocket, useFakeTime } from "./fake-socket.js";

let client: RoomcastClient | undefined;

useFakeTime(() => {
  client?.close();
  client = undefined;
});

const LIMITS = { maxMessageBytes: 65_536, publishRatePerSecond: 5, publishBurst: 10, livenessTimeoutSeconds: 86_400 };

async function started() {
  const setup = testClient({ pingIntervalMs: 3_600_000, connectTimeoutMs: 60_000 });
  client = setup.client;
  const room = setup.client.room("lobby");
  const failures: PublishFailure[] = [];
  room.on("publish_failed", (f) => failures.push(f));
  await advance();
  return { ...setup, room, failures, socket: setup.server.last() };
}

/**
 * Answers what the client sent since the last call, charging one bucket per user as
 * the server does: each publish, presence, history (and refresh) costs a token; out
 * of tokens → `rate_limited` with the frame's id. `spent` takes tokens first (the
 * user's other tabs or HTTP calls, which the client cannot see).
 */
function budgetServer(socket: FakeSocket, limits = LIMITS) {
  let tokens = limits.publishBurst;
  let updated = Date.now();
  let seen = 0;
  let seq = 0;
  const limited: string[] = [];
  const take = () => {
    const now = Date.now();
    tokens = Math.min(limits.publishBurst, tokens + ((now - updated) / 1000) * limits.publishRatePerSecond);
    updated = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
  return {
    limited,
    take,
    spend: (n: number) => {
      for (let i = 0; i < n; i++) take();
    },
    answer: () => {
      const frames = socket.frames.slice(seen);
      seen = socket.frames.length;
      for (const frame of frames) {
        if (frame.type !== "publish" && frame.type !== "presence" && frame.type !== "history" && frame.type !== "refresh") continue;
        if (!take()) {
          limited.push(`${frame.type}:${frame.id}`);
          socket.error("rate_limited", frame.id);
          continue;
        }
        if (frame.type === "publish") socket.ack(frame.id, ++seq);
        if (frame.type === "history") socket.history(frame.id, [messageAt(1)], false);
      }
    },
  };
}

describe("pacing every frame the server charges", () => {
  it("right after the welcome, 11 charged frames against a burst of 10 all get through, none refused, none dropped", async () => {
    const { room, socket, failures } = await started();
    // What an app does on load: presence, a history page, and a backlog of nine publishes.
    room.setPresence({ typing: false });
    const page = observe(room.history({ limit: 10 }));
    const publishes = Array.from({ length: 9 }, (_, i) => observe(room.publish({ n: i }, { id: `p-${i}` })));
    socket.welcome({ limits: LIMITS });
    const server = budgetServer(socket);
    server.answer();
    // The burst but one token (kept for a refresh) went at once: presence, history, 7 publishes.
    expect(socket.framesOf("presence")).toHaveLength(1);
    expect(socket.framesOf("history")).toHaveLength(1);
    expect(socket.publishedIds).toHaveLength(7);

    for (let i = 0; i < 20; i++) {
      await advance(100);
      server.answer();
    }
    expect(server.limited).toEqual([]);
    expect(publishes.map((p) => p.status)).toEqual(Array(9).fill("resolved"));
    expect(page.status).toBe("resolved");
    expect(failures).toEqual([]);
    expect(room.pending).toEqual([]);
    expect(socket.publishedIds).toEqual(Array.from({ length: 9 }, (_, i) => `p-${i}`));
  });

  it("leaves a token for the Connection's refresh after a full burst of publishes", async () => {
    const { room, socket } = await started();
    for (let i = 0; i < 12; i++) observe(room.publish(i, { id: `p-${i}` }));
    socket.welcome({ limits: LIMITS });
    const server = budgetServer(socket);
    server.answer();
    expect(socket.publishedIds).toHaveLength(9);
    // The Connection's refresh, charged like the rest, still finds its token now.
    expect(server.take()).toBe(true);
  });

  it("paces presence updates and history requests behind the budget too", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: { ...LIMITS, publishBurst: 3 } });
    // Burst 3, one kept: two charged frames now, then one per 200 ms.
    room.setPresence("a");
    observe(room.history());
    observe(room.history());
    expect(socket.framesOf("presence")).toHaveLength(1);
    expect(socket.framesOf("history")).toHaveLength(1);
    await advance(199);
    expect(socket.framesOf("history")).toHaveLength(1);
    await advance(1);
    expect(socket.framesOf("history")).toHaveLength(2);
    // Only the newest presence state is worth sending: two updates in a row send one frame.
    room.setPresence("b");
    room.setPresence("c");
    await advance(200);
    expect(socket.framesOf("presence").map((f) => f.state)).toEqual(["a", "c"]);
  });
});

describe("rate_limited means later, never drop", () => {
  it("a publish refused with rate_limited stays queued and is sent again with the same id after a wait", async () => {
    const { room, socket, failures } = await started();
    socket.welcome({ limits: LIMITS });
    const server = budgetServer(socket);
    server.spend(10); // another tab of the same user emptied the bucket
    const result = observe(room.publish("hello", { id: "p-1" }));
    server.answer();
    expect(server.limited).toEqual(["publish:p-1"]);
    await advance(0);
    expect(result.status).toBe("pending");
    expect(room.pending.map((e) => e.id)).toEqual(["p-1"]);

    await advance(1_000);
    server.answer();
    await advance(0);
    expect(result.status).toBe("resolved");
    expect(socket.publishedIds).toEqual(["p-1", "p-1"]);
    expect(failures).toEqual([]);
  });

  it("does not resend a refused publish faster than the bucket refills", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: LIMITS });
    observe(room.publish("hello", { id: "p-1" }));
    socket.error("rate_limited", "p-1");
    // The server's bucket is empty: two tokens (one kept) take 400 ms at 5 per second.
    await advance(399);
    expect(socket.publishedIds).toEqual(["p-1"]);
    await advance(1);
    expect(socket.publishedIds).toEqual(["p-1", "p-1"]);
  });

  it("a history request refused with rate_limited is asked again and resolves", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: LIMITS });
    const page = observe(room.history({ limit: 1 }));
    const [frame] = socket.framesOf("history");
    socket.error("rate_limited", frame!.id);
    await advance(1_000);
    expect(page.status).toBe("pending");
    expect(socket.framesOf("history")).toEqual([frame, frame]);
    socket.history(frame!.id, [messageAt(1)], false);
    await advance(0);
    expect(page.value).toEqual({ messages: [messageAt(1)], hasMore: false });
  });

  it("a presence update refused with rate_limited is sent again (not reported as an error)", async () => {
    const { room, socket } = await started();
    const errors: unknown[] = [];
    room.on("error", (e) => errors.push(e));
    socket.welcome({ limits: LIMITS });
    room.setPresence({ away: true });
    socket.error("rate_limited", socket.framesOf("presence")[0]!.id);
    await advance(1_000);
    expect(socket.framesOf("presence").map((f) => f.state)).toEqual([{ away: true }, { away: true }]);
    expect(errors).toEqual([]);
  });

  it("counts a large history answer against the budget as the server does (a token per 64 KiB)", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: LIMITS });
    const page = observe(room.history());
    const big = { ...messageAt(1), data: "x".repeat(5 * 65_536) };
    socket.history(socket.framesOf("history")[0]!.id, [big], false);
    await advance(0);
    expect(page.status).toBe("resolved");
    // 10 - 1 (request) - 5 (answer) = 4 left, one kept: three publishes go now, not eight.
    for (let i = 0; i < 8; i++) observe(room.publish(i, { id: `p-${i}` }));
    expect(socket.publishedIds).toHaveLength(3);
  });
});

describe("Pacer", () => {
  it("keeps one token in reserve, refills at the rate, and drains on a refusal", () => {
    const pacer = new Pacer();
    pacer.configure(10, 3, 0);
    expect(pacer.wait(0)).toBe(0);
    pacer.take(1, 0);
    expect(pacer.wait(0)).toBe(0);
    pacer.take(1, 0);
    expect(pacer.wait(0)).toBe(100); // one token left, two needed
    expect(pacer.wait(100)).toBe(0);
    pacer.drain(100);
    expect(pacer.wait(100)).toBe(200);
  });

  it("does not trust the server's numbers: a zero, negative or NaN rate or burst never stalls or spins", () => {
    for (const [rate, burst] of [
      [0, 0],
      [-5, -1],
      [Number.NaN, Number.NaN],
      [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
    ]) {
      const pacer = new Pacer();
      pacer.configure(rate!, burst!, 0);
      expect(pacer.wait(0)).toBe(0);
      pacer.take(1, 0);
      const wait = pacer.wait(0);
      expect(Number.isFinite(wait)).toBe(true);
      expect(wait).toBeGreaterThanOrEqual(0);
      expect(wait).toBeLessThan(60_000);
    }
  });
});
