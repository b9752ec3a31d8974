import { describe, expect, it, vi } from "vitest";
import { Broadcaster } from "../src/room/broadcaster.js";
import type { StoredMessage } from "../src/room/message-log.js";
import type { Connection } from "../src/room/connections.js";
import { connect, publish, token, uniqueRoom } from "./helpers.js";
import { fakeConnection } from "./fakes.js";

const fakeSocket = () => fakeConnection("live");
const targets = (conns: Connection[]) => ({ live: () => conns, slow: () => {} });
const stored = (seq: number): StoredMessage => ({ seq, id: `m${seq}`, from: "u", data: String(seq), ts: 0 });
const tick = () => new Promise((r) => setTimeout(r, 20));

describe("the broadcaster, fixed rules (adaptive: false, as before adaptive batching)", () => {
  it("sends messages of a busy room without delay at first, then the rest of the burst as one frame, in order", async () => {
    const a = fakeSocket();
    const b = fakeSocket();
    const broadcaster = new Broadcaster(targets([a.conn, b.conn]), { batching: true, adaptive: false });
    // Date.now() does not move inside one turn in workerd: these are "at the same time".
    broadcaster.message(stored(1));
    broadcaster.message(stored(2)); // close behind 1: sent at once, and opens a window
    expect(a.sent.map((t) => JSON.parse(t).type)).toEqual(["message", "message"]);
    broadcaster.message(stored(3));
    broadcaster.message(stored(4));
    broadcaster.after(a.conn, '{"type":"ack","id":"m4","seq":4,"duplicate":false}');
    expect(a.sent).toHaveLength(2); // 3 and 4 wait for the window; so does the ack of 4
    await tick();
    const frames = a.sent.map((t) => JSON.parse(t));
    expect(frames.map((f) => f.type)).toEqual(["message", "message", "messages", "ack"]);
    expect(frames[2].messages.map((m: { seq: number }) => m.seq)).toEqual([3, 4]);
    expect(b.sent).toEqual(a.sent.slice(0, 3));
  });

  for (const adaptive of [false, true]) {
    it(`sets no timer and batches nothing when messages are far apart (adaptive: ${adaptive})`, async () => {
      const a = fakeSocket();
      const broadcaster = new Broadcaster(targets([a.conn]), { batching: true, adaptive });
      broadcaster.message(stored(1));
      await tick();
      broadcaster.message(stored(2));
      await tick();
      broadcaster.message(stored(3));
      expect(a.sent.map((t) => JSON.parse(t).type)).toEqual(["message", "message", "message"]);
    });
  }

  it("sends everything per message when batching is off", async () => {
    const live = fakeSocket();
    const broadcaster = new Broadcaster(targets([live.conn]), { batching: false });
    broadcaster.message(stored(1));
    broadcaster.message(stored(2));
    broadcaster.after(live.conn, "ack");
    expect(live.sent.map((t) => (t === "ack" ? t : JSON.parse(t).type))).toEqual(["message", "message", "ack"]);
  });

  it("with maxDelayMs, batches messages that far apart and holds them no longer than that", async () => {
    const types = (sent: string[]) => sent.map((t) => JSON.parse(t).type);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const run = async (maxDelayMs: number) => {
      const a = fakeSocket();
      const broadcaster = new Broadcaster(targets([a.conn]), { batching: true, maxDelayMs });
      broadcaster.message(stored(1));
      await sleep(30);
      broadcaster.message(stored(2)); // 30 ms behind 1: a burst only if maxDelayMs >= 30
      await sleep(30);
      broadcaster.message(stored(3));
      broadcaster.message(stored(4));
      const before = types(a.sent);
      await sleep(maxDelayMs + 100);
      return { before, after: a.sent.map((t) => JSON.parse(t)) };
    };
    const delayed = await run(200);
    expect(delayed.before).toEqual(["message", "message"]); // 3 and 4 wait for the window
    expect(delayed.after.map((f) => f.type)).toEqual(["message", "message", "messages"]);
    expect(delayed.after[2].messages.map((m: { seq: number }) => m.seq)).toEqual([3, 4]);
    // Without it, the same pattern is not a burst: 1, 2 and 3 go out at once (4 is
    // right behind 3, so it also goes at once and only opens a 1 ms window).
    const immediate = await run(0);
    expect(immediate.before).toEqual(["message", "message", "message", "message"]);
  });

  it("in a room of 100 or more, batches behind a broadcast even when the clock says the room is quiet", async () => {
    // Date.now() only moves between events, so behind a slow broadcast the next message
    // always looks late: make every message look 100 ms after the previous one.
    let fakeNow = 1_000_000;
    const clock = vi.spyOn(Date, "now").mockImplementation(() => (fakeNow += 100));
    try {
      const run = async (size: number) => {
        const sockets = Array.from({ length: size }, fakeSocket);
        const broadcaster = new Broadcaster(targets(sockets.map((s) => s.conn)), { batching: true, adaptive: false });
        broadcaster.message(stored(1));
        broadcaster.message(stored(2)); // before the window's timer could fire
        broadcaster.message(stored(3));
        const before = sockets[0]!.sent.length;
        await tick();
        return { before, types: sockets[0]!.sent.map((t) => JSON.parse(t).type) };
      };
      const big = await run(100);
      expect(big.before).toBe(1);
      expect(big.types).toEqual(["message", "messages"]);
      const small = await run(10);
      expect(small.before).toBe(3);
      expect(small.types).toEqual(["message", "message", "message"]);
    } finally {
      clock.mockRestore();
    }
  });

  it("flush() sends what is pending at once (before a socket goes live)", () => {
    const a = fakeSocket();
    const broadcaster = new Broadcaster(targets([a.conn]), { batching: true, adaptive: false });
    broadcaster.message(stored(1));
    broadcaster.message(stored(2));
    broadcaster.message(stored(3)); // held for the window
    expect(a.sent).toHaveLength(2);
    broadcaster.flush();
    expect(a.sent.map((t) => JSON.parse(t).type)).toEqual(["message", "message", "message"]);
  });
});

describe("adaptive batching of live messages, end to end", () => {
  it("sends a lone message in a room that was quiet as a single message frame", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    const bob = await connect(room, await token({ sub: "bob" }));
    await bob.next("welcome");
    await publish(alice, "lone", 1);
    expect((await bob.next("message")).id).toBe("lone");
    expect(bob.batches.at(-1)).toBe(1);
    alice.close();
    bob.close();
  });

  it("never sends a joiner a batched message twice (it came with its history)", async () => {
    const room = uniqueRoom();
    const pubs = [];
    for (const sub of ["q1", "q2"]) pubs.push(await connect(room, await token({ sub })));
    await Promise.all(pubs.map((s) => s.next("welcome")));
    for (let i = 0; i < 6; i++) for (const [p, s] of pubs.entries()) s.send({ type: "publish", id: `j-${p}-${i}`, data: i });
    // Join while the burst may still be batching.
    const late = await connect(room, await token({ sub: "late" }));
    await pubs[0]!.take("ack", 6);
    await pubs[1]!.take("ack", 6);
    await publish(pubs[0]!, "final", "end");
    await late.until((frames) => frames.some((f) => f.type === "message" && f.id === "final"));
    const seqs = late.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    for (const s of [...pubs, late]) s.close();
  });
});

describe("the broadcaster and flow control", () => {
  it("never calls a reader slow for one frame larger than its budget, only one that does not confirm", () => {
    const reader = fakeConnection();
    const stalled = fakeConnection();
    const slow: unknown[] = [];
    const broadcaster = new Broadcaster({ live: () => [reader.conn, stalled.conn], slow: (c) => slow.push(...c) }, { batching: false, budget: 50 });
    const big = (seq: number): StoredMessage => ({ seq, id: `m${seq}`, from: "u", data: JSON.stringify("x".repeat(200)), ts: 0 });
    broadcaster.message(big(1)); // 260 characters, far over 50, to both: nobody is slow yet
    expect(slow).toEqual([]);
    reader.conn.flow.progress(1);
    broadcaster.message(big(2));
    expect(slow).toEqual([stalled.conn]); // it never confirmed seq 1
    expect(reader.sent).toHaveLength(2);
    expect(stalled.sent).toHaveLength(1); // nothing more is sent to it
  });
});
