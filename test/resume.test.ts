import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "@roomcast/protocol";
import { IDENTITY_HEADER, RESUME_HEADER, type Room } from "../src/room/room.js";
import { userTag } from "../src/room/room-core.js";
import { TestSocket, connect, fetchWorker, httpPublish, token, uniqueRoom } from "./helpers.js";
import { readRefusal } from "./refusals.js";

interface HistoryBody {
  epoch: string;
  head: number;
  hasMore: boolean;
  messages: { seq: number; id: string; data: unknown }[];
}

async function history(room: string, after = 0): Promise<HistoryBody> {
  const res = await fetchWorker(`/v1/rooms/${room}/messages?after=${after}`, { headers: { Authorization: `Bearer ${await token()}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as HistoryBody;
}

/** Publishes `ids` over HTTP one after another, returning their seqs. */
async function publishAll(room: string, ids: string[]): Promise<number[]> {
  const seqs: number[] = [];
  for (const id of ids) seqs.push(await httpPublish(room, id, { id }));
  return seqs;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const ids = (prefix: string, from: number, to: number): string[] => range(from, to).map((i) => `${prefix}${i}`);

/** Seqs of every message frame the socket has received so far, in arrival order. */
const messageSeqs = (socket: TestSocket): number[] =>
  socket.frames.flatMap((f) => (f.type === "message" ? [f.seq] : []));

/**
 * Publishes a sentinel and waits until `socket` has it. Messages are delivered in
 * order, so after this anything the room was going to send before the sentinel
 * (a duplicate, a stray replay page) has arrived too. Returns the sentinel's seq.
 */
async function settle(room: string, socket: TestSocket): Promise<number> {
  const seq = await httpPublish(room, `sentinel-${Date.now()}`, "sentinel");
  await socket.until((frames) => frames.some((f) => f.type === "message" && f.seq === seq));
  return seq;
}

/**
 * Waits on the test's own timers until `done()` holds. For a socket whose client end
 * lives in the room's I/O context: awaiting a promise its event handlers resolve
 * (TestSocket.next/until) would carry the test on in that context, where the test's
 * own stubs and sockets can no longer be used.
 */
async function poll(done: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out polling");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Runs the room's alarm until history starts at `oldest` (retention trims in batches). */
async function trimUntil(room: string, oldest: number): Promise<void> {
  const stub = env.ROOMS.getByName(room);
  for (let i = 0; i < 20; i++) {
    const page = await history(room);
    if (page.messages[0]?.seq === oldest) return;
    await runDurableObjectAlarm(stub);
  }
  throw new Error(`retention never trimmed ${room} to start at ${oldest}`);
}

describe("resuming from (epoch, lastSeq)", () => {
  it("replays exactly the missed messages in order, then live ones, with no gap and no duplicate", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "alice" });
    const first = await connect(room, jwt);
    const { epoch } = await first.next("welcome");
    await publishAll(room, ids("m", 1, 4));
    const seen = await first.take("message", 4);
    const lastSeq = seen[3]!.seq;
    expect(lastSeq).toBe(4);
    first.close();

    // Missed while away.
    await publishAll(room, ids("m", 5, 8));

    const again = await connect(room, jwt, { resume: { epoch, after: lastSeq } });
    const welcome = await again.next("welcome");
    expect(welcome.resume).toEqual({ recovered: true });
    expect(welcome).toMatchObject({ epoch, seq: 8, replay: 4 });
    const replayed = await again.take("message", 4);
    expect(replayed.map((m) => [m.seq, m.id, m.data])).toEqual(range(5, 8).map((i) => [i, `m${i}`, { id: `m${i}` }]));

    await publishAll(room, ids("m", 9, 10));
    const live = await again.take("message", 2);
    expect(live.map((m) => m.id)).toEqual(["m9", "m10"]);

    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual(range(5, sentinel));
    again.close();
  });

  it("replays a gap larger than one replay page completely and in order", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "alice" });
    const first = await connect(room, jwt);
    const { epoch } = await first.next("welcome");
    await publishAll(room, ids("m", 1, 2));
    await first.take("message", 2);
    first.close();

    // 23 missed messages: nearly five pages of REPLAY_PAGE_SIZE=5, still inside retention (30).
    await publishAll(room, ids("m", 3, 25));

    const again = await connect(room, jwt, { resume: { epoch, after: 2 } });
    const welcome = await again.next("welcome");
    expect(welcome).toMatchObject({ resume: { recovered: true }, seq: 25, replay: 23 });
    const replayed = await again.take("message", 23);
    expect(replayed.map((m) => m.seq)).toEqual(range(3, 25));
    expect(replayed.map((m) => m.id)).toEqual(ids("m", 3, 25));

    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual(range(3, sentinel));
    again.close();
  });

  it("keeps one contiguous sequence when another socket publishes while a long replay is in flight", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "alice" });
    const first = await connect(room, jwt);
    const { epoch } = await first.next("welcome");
    await publishAll(room, ids("m", 1, 2));
    await first.take("message", 2);
    first.close();
    await publishAll(room, ids("m", 3, 25));

    const publisher = await connect(room, await token({ sub: "bob" }));
    await publisher.next("welcome");

    // Start the resume and fire live publishes without waiting. Through the real
    // Worker the interleaving is up to the runtime: some publishes land before the
    // join (and are replayed), some between replay pages, some after. The next test
    // pins the "between pages" case down; this one holds whatever the interleaving.
    const resuming = connect(room, jwt, { resume: { epoch, after: 2 } });
    const liveIds = ids("live", 1, 6);
    for (const id of liveIds) publisher.send({ type: "publish", id, data: { id } });
    const again = await resuming;
    const welcome = await again.next("welcome");
    expect(welcome.resume).toEqual({ recovered: true });

    const acks = await publisher.take("ack", liveIds.length);
    expect(acks.map((a) => a.id)).toEqual(liveIds);
    expect(acks.every((a) => !a.duplicate)).toBe(true);

    const sentinel = await settle(room, again);
    const received = again.frames.flatMap((f) => (f.type === "message" ? [f] : []));
    // One strictly increasing, contiguous sequence with nothing missing and nothing twice.
    expect(received.map((m) => m.seq)).toEqual(range(3, sentinel));
    // What was in the log at join time is the replay, announced by welcome.replay.
    expect(welcome.replay).toBe(welcome.seq - 2);
    // Every live message comes after every replayed one (implied by the order), and
    // each arrives under the seq its publisher was acked with.
    for (const ack of acks) expect(received.find((m) => m.id === ack.id)?.seq).toBe(ack.seq);
    publisher.close();
    again.close();
  });

  it("keeps one contiguous sequence for live publishes that land between replay pages", async () => {
    // The same property with the interleaving pinned down. Inside the object, the
    // resumed connection is accepted (its first page goes out in that turn, the rest
    // on later turns) and the publisher's frames are handled before the next page.
    // The client end of the resumed socket belongs to the object's I/O context, so it
    // is accepted inside the object and watched by polling (see `poll`).
    const room = uniqueRoom();
    await publishAll(room, ids("m", 1, 25));
    const { epoch } = await history(room);
    const publisher = await connect(room, await token({ sub: "bob" }));
    await publisher.next("welcome");
    const liveIds = ids("live", 1, 4);
    const stub = env.ROOMS.getByName(room);

    const { again, cursors } = await runInDurableObject(stub, async (instance: Room, state) => {
      const identity = { userId: "alice", room, permissions: ["subscribe", "publish", "presence"], expiresAt: Math.floor(Date.now() / 1000) + 300 };
      const response = await instance.fetch(
        new Request("https://room.internal/connect", {
          headers: { Upgrade: "websocket", [IDENTITY_HEADER]: JSON.stringify(identity), [RESUME_HEADER]: JSON.stringify({ epoch, after: 2 }) },
        }),
      );
      expect(response.status).toBe(101);
      response.webSocket!.accept();
      const again = new TestSocket(response.webSocket!, response);
      const bobServer = state.getWebSockets(userTag("bob"))[0]!;
      const aliceServer = state.getWebSockets(userTag("alice"))[0]!;
      // The resumed socket's attachment carries its replay cursor until it is caught up.
      const cursors: (number | undefined)[] = [];
      for (const id of liveIds) {
        cursors.push((aliceServer.deserializeAttachment() as { rc: { replayedTo?: number } }).rc.replayedTo);
        await instance.webSocketMessage(bobServer, JSON.stringify({ type: "publish", id, data: { id } }));
      }
      return { again, cursors };
    });
    // Every live publish was handled while the replay was still at its first page.
    expect(cursors).toEqual([7, 7, 7, 7]);

    const acks = await publisher.take("ack", liveIds.length);
    expect(acks.map((a) => a.seq)).toEqual(range(26, 29));
    const sentinel = await httpPublish(room, "sentinel", "sentinel");
    await poll(() => messageSeqs(again).includes(sentinel));
    const welcome = await again.next("welcome");
    expect(welcome).toMatchObject({ resume: { recovered: true }, seq: 25, replay: 23 });
    const received = again.frames.flatMap((f) => (f.type === "message" ? [f] : []));
    expect(received.map((m) => m.seq)).toEqual(range(3, sentinel));
    for (const ack of acks) expect(received.find((m) => m.id === ack.id)?.seq).toBe(ack.seq);
    publisher.close();

    // The test cannot close that client end itself (cross-context I/O): the room closes it (kick).
    const kicked = await fetchWorker(`/v1/rooms/${room}/connections/alice`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${await token({ sub: "ops", cap: { "*": ["admin"] } })}` },
    });
    expect(kicked.status).toBe(200);
    let closed = false;
    void again.closed.then(() => (closed = true));
    await poll(() => closed);
  });

  it("recovers with nothing to replay when the client is already at the head, then delivers live messages", async () => {
    const room = uniqueRoom();
    await publishAll(room, ids("m", 1, 3));
    const { epoch } = await history(room);
    const again = await connect(room, undefined, { resume: { epoch, after: 3 } });
    const welcome = await again.next("welcome");
    expect(welcome).toMatchObject({ resume: { recovered: true }, seq: 3, replay: 0 });
    await publishAll(room, ["m4"]);
    expect((await again.next("message")).seq).toBe(4);
    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual(range(4, sentinel));
    again.close();
  });

  it("recovers in an empty room", async () => {
    const room = uniqueRoom();
    const { epoch, head } = await history(room);
    expect(head).toBe(0);
    const again = await connect(room, undefined, { resume: { epoch, after: 0 } });
    const welcome = await again.next("welcome");
    expect(welcome).toMatchObject({ resume: { recovered: true }, seq: 0, replay: 0 });
    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual([sentinel]);
    expect(sentinel).toBe(1);
    again.close();
  });

  it("refuses a position from another epoch and starts the client fresh from recent history", async () => {
    const room = uniqueRoom();
    await publishAll(room, ids("m", 1, 8));
    const again = await connect(room, undefined, { resume: { epoch: "some-other-epoch-0123", after: 3 } });
    const welcome = await again.next("welcome");
    expect(welcome.resume).toEqual({ recovered: false, reason: "epoch_changed" });
    expect(welcome).toMatchObject({ seq: 8, replay: 5 });
    expect(welcome.epoch).not.toBe("some-other-epoch-0123");
    const recent = await again.take("message", 5);
    expect(recent.map((m) => m.seq)).toEqual(range(4, 8));
    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual(range(4, sentinel));
    again.close();
  });

  it("refuses a position ahead of the room's head", async () => {
    const room = uniqueRoom();
    await publishAll(room, ids("m", 1, 2));
    const { epoch } = await history(room);
    const again = await connect(room, undefined, { resume: { epoch, after: 10 } });
    const welcome = await again.next("welcome");
    expect(welcome.resume).toEqual({ recovered: false, reason: "ahead" });
    // Starts fresh: the two messages the room has (fewer than HISTORY_ON_JOIN).
    expect(welcome).toMatchObject({ seq: 2, replay: 2 });
    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual(range(1, sentinel));
    again.close();
  });

  it("refuses a position that retention trimmed instead of leaving a silent gap", async () => {
    const room = uniqueRoom();
    await publishAll(room, ids("m", 1, 40));
    await trimUntil(room, 11); // RETENTION_MAX_MESSAGES=30 keeps 11..40
    const { epoch } = await history(room);

    // A position exactly at the trim edge is still complete: the first message it needs is the oldest kept.
    const edge = await connect(room, undefined, { resume: { epoch, after: 10 } });
    const edgeWelcome = await edge.next("welcome");
    expect(edgeWelcome.resume).toEqual({ recovered: true });
    expect(edgeWelcome).toMatchObject({ seq: 40, replay: 30 });
    const edgeSentinel = await settle(room, edge);
    expect(messageSeqs(edge)).toEqual(range(11, edgeSentinel));
    edge.close();

    // One message further back is gone: the client is told, and starts fresh.
    const stale = await connect(room, undefined, { resume: { epoch, after: 5 } });
    const welcome = await stale.next("welcome");
    expect(welcome.resume).toEqual({ recovered: false, reason: "trimmed" });
    expect(welcome.replay).toBe(5);
    const sentinel = await settle(room, stale);
    // Only the recent history and live messages; nothing pretends to continue from 5.
    expect(messageSeqs(stale)).toEqual(range(welcome.seq - 4, sentinel));
    stale.close();
  });

  it("survives an eviction: a position taken before it resumes with everything after", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "alice" });
    const alice = await connect(room, jwt);
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const { epoch } = await alice.next("welcome");
    await watcher.next("welcome");
    await publishAll(room, ids("m", 1, 3));
    const lastSeq = (await alice.take("message", 3))[2]!.seq;
    alice.close();

    await evictDurableObject(env.ROOMS.getByName(room), { webSockets: "hibernate" });
    await publishAll(room, ids("m", 4, 6));

    const again = await connect(room, jwt, { resume: { epoch, after: lastSeq } });
    const welcome = await again.next("welcome");
    expect(welcome).toMatchObject({ epoch, resume: { recovered: true }, seq: 6, replay: 3 });
    const sentinel = await settle(room, again);
    expect(messageSeqs(again)).toEqual(range(4, sentinel));
    // The socket that stayed connected through the eviction saw the same sequence.
    await watcher.until((frames) => frames.some((f) => f.type === "message" && f.seq === sentinel));
    expect(messageSeqs(watcher)).toEqual(range(1, sentinel));
    watcher.close();
    again.close();
  });
});

describe("the resume query", () => {
  async function upgradeWithQuery(room: string, query: string): Promise<Response> {
    return fetchWorker(`/v1/rooms/${room}/ws?${query}`, {
      headers: { Upgrade: "websocket", Authorization: `Bearer ${await token()}`, "Sec-WebSocket-Protocol": PROTOCOL_VERSION },
    });
  }

  it("rejects a malformed resume position with invalid_request (close 4506)", async () => {
    const room = uniqueRoom();
    const { epoch } = await history(room);
    const bad = [
      `epoch=${epoch}`, // epoch without after
      "after=3", // after without epoch
      `epoch=${epoch}&after=-1`,
      `epoch=${epoch}&after=1.5`,
      `epoch=${epoch}&after=abc`,
      `epoch=${epoch}&after=`,
      `epoch=${encodeURIComponent("bad epoch!")}&after=0`,
      `epoch=${encodeURIComponent("épоch")}&after=0`,
      `epoch=&after=0`,
      `epoch=${"e".repeat(65)}&after=0`,
    ];
    for (const query of bad) {
      const refusal = await readRefusal(await upgradeWithQuery(room, query));
      expect(refusal.frames, query).toEqual([{ type: "error", code: "invalid_request", message: expect.any(String) }]);
      expect(refusal.close.code, query).toBe(4506);
    }
    // The same room accepts a well-formed position.
    const ok = await upgradeWithQuery(room, `epoch=${epoch}&after=0`);
    expect(ok.status).toBe(101);
    ok.webSocket!.accept();
    ok.webSocket!.close(1000, "test done");
  });
});
