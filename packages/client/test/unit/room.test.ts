/**
 * The room handle: exactly-once ordered delivery across resumes, presence, acked
 * publishes through the outbox (queueing, resend, overflow, pacing, timeouts),
 * leave and history, on fake sockets with fake timers.
 */
import { MESSAGE_ID, type Member, type Message } from "@roomcast/protocol";
import { describe, expect, it } from "vitest";
import type { ClientOptions, RoomcastClient } from "../../src/client.js";
import { createClient } from "../../src/client.js";
import { RoomcastClientError } from "../../src/errors.js";
import type { GapInfo } from "../../src/room.js";
import { advance, member, messageAt, observe, testClient, useFakeTime } from "./fake-socket.js";

const defaults: Partial<ClientOptions> = {
  backoff: { minMs: 1_000, maxMs: 8_000, factor: 2 },
  connectTimeoutMs: 5_000,
  pingIntervalMs: 3_600_000,
};

let client: RoomcastClient | undefined;

useFakeTime(() => {
  client?.close();
  client = undefined;
});

function start(options: Partial<ClientOptions> = {}, name = "lobby") {
  const setup = testClient({ ...defaults, ...options });
  client = setup.client;
  const room = setup.client.room(name);
  const delivered: Message[] = [];
  const gaps: GapInfo[] = [];
  const recovered: { epoch: string; from: number }[] = [];
  room.on("message", (m) => delivered.push(m));
  room.on("gap", (g) => gaps.push(g));
  room.on("recovered", (r) => recovered.push(r));
  return { ...setup, room, delivered, gaps, recovered, seqs: () => delivered.map((m) => m.seq) };
}

/** A room with its first socket created (not yet welcomed). */
async function started(options: Partial<ClientOptions> = {}) {
  const setup = start(options);
  await advance();
  return { ...setup, socket: setup.server.last() };
}

/** The current socket drops; the retry (delay 0) opens the next one. */
async function dropAndReconnect(server: ReturnType<typeof testClient>["server"]) {
  server.last().serverClose(1006);
  await advance();
  return server.last();
}

describe("delivery", () => {
  it("delivers the join replay then live messages, once each and in order", async () => {
    const { room, socket, delivered, seqs } = await started();
    socket.welcome({ seq: 3, replay: 3 });
    socket.messages(1, 3);
    socket.messages(4, 5);

    expect(seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(delivered[0]).toEqual(messageAt(1));
    expect(room.messages).toEqual(delivered);
    expect(room.position).toEqual({ epoch: "epoch-1", seq: 5 });
  });

  it("drops a message the connection repeats", async () => {
    const { socket, seqs } = await started();
    socket.welcome();
    for (const seq of [1, 2, 2, 1, 3, 3]) socket.message(seq);
    expect(seqs()).toEqual([1, 2, 3]);
  });

  it("after a resume, drops the replayed messages it already has and reports recovered", async () => {
    const { server, socket, seqs, gaps, recovered } = await started();
    socket.welcome({ seq: 5, replay: 5 });
    socket.messages(1, 5);

    const next = await dropAndReconnect(server);
    expect(next.resume).toEqual({ epoch: "epoch-1", after: "5" });
    next.welcome({ seq: 7, replay: 4, resume: { recovered: true } });
    next.messages(4, 7); // overlaps 4 and 5
    next.message(8);

    expect(seqs()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(recovered).toEqual([{ epoch: "epoch-1", from: 5 }]);
    expect(gaps).toEqual([]);
  });

  it("emits gap with the reason when the position could not be resumed (trimmed), then delivers what follows", async () => {
    const { room, server, socket, seqs, gaps, recovered } = await started();
    socket.welcome({ seq: 5, replay: 5 });
    socket.messages(1, 5);

    const next = await dropAndReconnect(server);
    next.welcome({ seq: 40, replay: 3, resume: { recovered: false, reason: "trimmed" } });
    next.messages(38, 41);

    expect(gaps).toEqual([{ reason: "trimmed", epoch: "epoch-1", from: 37, reset: false }]);
    expect(recovered).toEqual([]);
    expect(seqs()).toEqual([1, 2, 3, 4, 5, 38, 39, 40, 41]);
    // The same log: seqs stay comparable, so what was held stays (the hole is 6-37).
    expect(room.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 38, 39, 40, 41]);
  });

  it("on an epoch change delivers the new log's replay from its start, though its seqs are lower", async () => {
    const { room, server, socket, seqs, gaps } = await started();
    socket.welcome({ seq: 5, replay: 5 });
    socket.messages(1, 5);
    const heldAtGap: number[][] = [];
    room.on("gap", () => heldAtGap.push(room.messages.map((m) => m.seq)));

    const next = await dropAndReconnect(server);
    next.welcome({ epoch: "epoch-2", seq: 2, replay: 2, resume: { recovered: false, reason: "epoch_changed" } });
    next.messages(1, 3);

    expect(gaps).toEqual([{ reason: "epoch_changed", epoch: "epoch-2", from: 0, reset: true }]);
    expect(seqs()).toEqual([1, 2, 3, 4, 5, 1, 2, 3]);
    // room.messages starts over with the new log, never [1,2,3,4,5,1,2,3] (protocol.md §6.3).
    expect(heldAtGap).toEqual([[]]);
    expect(room.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(room.position).toEqual({ epoch: "epoch-2", seq: 3 });
    expect((await dropAndReconnect(server)).resume).toEqual({ epoch: "epoch-2", after: "3" });
  });

  // BUG (reported, not fixed): after a gap with reason "ahead" (the client's position is
  // past the server's head in the same epoch) the room keeps its old position, so it
  // drops the replay the gap event announced and every new live message up to it.
  it("after a gap with reason ahead, delivers the messages the gap announces, and starts room.messages over", async () => {
    const { room, server, socket, delivered, gaps } = await started();
    socket.welcome({ seq: 5, replay: 5 });
    socket.messages(1, 5);

    const next = await dropAndReconnect(server);
    next.welcome({ seq: 3, replay: 3, resume: { recovered: false, reason: "ahead" } });
    next.messages(1, 3);
    next.message(4, { id: "new-live-4" });

    expect(gaps).toEqual([{ reason: "ahead", epoch: "epoch-1", from: 0, reset: true }]);
    expect(delivered.map((m) => m.id)).toContain("new-live-4");
    expect(room.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  it("keeps only the last messageBuffer messages in room.messages", async () => {
    const { room, socket, seqs } = await started({ messageBuffer: 3 });
    socket.welcome();
    socket.messages(1, 5);
    expect(seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(room.messages.map((m) => m.seq)).toEqual([3, 4, 5]);
  });
});

describe("frames before the welcome", () => {
  /** A room whose debug log is collected as "event detail" lines. */
  async function logged() {
    const lines: string[] = [];
    const setup = await started({ debug: (_room, event, detail) => lines.push(`${event} ${detail ?? ""}`) });
    return { ...setup, lines };
  }

  it("drops message and messages frames that arrive before the welcome, reports them through debug, and delivers the replay once", async () => {
    const { room, socket, seqs, lines } = await logged();
    socket.open();
    socket.message(1);
    socket.deliver({ type: "messages", messages: [messageAt(2), messageAt(3)] });
    expect(seqs()).toEqual([]);
    expect(room.messages).toEqual([]);
    expect(room.position).toEqual({ epoch: undefined, seq: 0 });

    socket.welcome({ seq: 3, replay: 3 });
    socket.messages(1, 3);
    expect(seqs()).toEqual([1, 2, 3]);
    expect(lines).toContain("dropped message 1 (before welcome)");
    expect(lines).toContain("dropped messages 2-3 (before welcome)");
  });

  it("on a resuming socket, a message before the welcome does not move the position past the replay", async () => {
    const { server, socket, seqs, lines } = await logged();
    socket.welcome({ seq: 2, replay: 2 });
    socket.messages(1, 2);

    const next = await dropAndReconnect(server);
    expect(next.resume).toEqual({ epoch: "epoch-1", after: "2" });
    next.open();
    next.message(9);
    next.welcome({ seq: 4, replay: 2, resume: { recovered: true } });
    next.messages(3, 4);

    expect(seqs()).toEqual([1, 2, 3, 4]);
    expect(lines).toContain("dropped message 9 (before welcome)");
  });
});

describe("flow control (progress frames)", () => {
  /** Characters of the message frame the fake server sends for `seq` (as the server counts them). */
  const chars = (seq: number) => JSON.stringify({ type: "message", ...messageAt(seq) }).length;
  const ONE = chars(1); // every seq 1-9 encodes to the same length
  const limits = (maxUnconfirmedBytes?: number) => ({
    maxMessageBytes: 65_536,
    publishRatePerSecond: 20,
    publishBurst: 40,
    livenessTimeoutSeconds: 86_400,
    ...(maxUnconfirmedBytes === undefined ? {} : { maxUnconfirmedBytes }),
  });

  it("sends progress with the highest applied seq each time a quarter of maxUnconfirmedBytes was received", async () => {
    const { socket } = await started();
    socket.welcome({ limits: limits(4 * 3 * ONE) }); // a quarter is exactly three message frames
    const progress = () => socket.framesOf("progress").map((f) => f.seq);
    const after: number[][] = [];
    for (let seq = 1; seq <= 8; seq++) {
      socket.message(seq);
      after.push(progress());
    }
    expect(after).toEqual([[], [], [3], [3], [3], [3, 6], [3, 6], [3, 6]]);

    socket.message(9);
    expect(progress()).toEqual([3, 6, 9]);
  });

  it("counts a messages frame by its whole length, and repeats it drops too, reporting the highest seq applied", async () => {
    const { socket, seqs } = await started();
    const batch = { type: "messages" as const, messages: [messageAt(1), messageAt(2), messageAt(3)] };
    socket.welcome({ seq: 3, replay: 3, limits: limits(4 * JSON.stringify(batch).length) });
    socket.deliver(batch);
    expect(socket.framesOf("progress")).toEqual([{ type: "progress", seq: 3 }]);

    // Repeats are not applied, but the server counted them: they count here too.
    socket.messages(1, 2);
    socket.deliver(batch);
    expect(seqs()).toEqual([1, 2, 3]);
    expect(socket.framesOf("progress")).toEqual([
      { type: "progress", seq: 3 },
      { type: "progress", seq: 3 },
    ]);
  });

  it("sends progress after each history answer, whatever the count", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: limits(1_000_000) });
    socket.messages(1, 2);
    expect(socket.framesOf("progress")).toEqual([]);

    const page = observe(room.history({ after: 0, limit: 2 }));
    socket.history(socket.framesOf("history")[0]!.id, [messageAt(1), messageAt(2)], false);
    await advance();
    expect(page.status).toBe("resolved");
    expect(socket.framesOf("progress")).toEqual([{ type: "progress", seq: 2 }]);
  });

  it("sends no progress at all when the welcome has no maxUnconfirmedBytes (a server without flow control)", async () => {
    const { room, socket, seqs } = await started();
    socket.welcome({ limits: limits() });
    for (let seq = 1; seq <= 50; seq++) socket.message(seq);
    observe(room.history());
    socket.history(socket.framesOf("history")[0]!.id, [messageAt(1)], false);
    await advance();
    expect(seqs()).toHaveLength(50);
    expect(socket.framesOf("progress")).toEqual([]);
  });

  it("sends nothing while nothing is received: not at the welcome, not for pongs, not when idle", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: limits(4) }); // a quarter is one character: every counted frame reports
    await advance(60 * 60_000);
    socket.pong();
    socket.pong();
    expect(socket.framesOf("progress")).toEqual([]);

    // Every other frame counts (the room counts them too): presence, acks, messages.
    socket.presenceState([member("alice")]);
    expect(socket.framesOf("progress")).toEqual([{ type: "progress", seq: 0 }]);
    const ack = observe(room.publish("hi", { id: "p-1" }));
    socket.ack("p-1", 1);
    await advance(1);
    expect(ack.status).toBe("resolved");
    socket.message(1);
    expect(socket.framesOf("progress").at(-1)).toEqual({ type: "progress", seq: 1 });
    const sent = socket.framesOf("progress").length;
    await advance(60 * 60_000);
    expect(socket.framesOf("progress")).toHaveLength(sent);
  });

  it("starts counting afresh on each connection, with that connection's budget", async () => {
    const { server, socket } = await started();
    socket.welcome({ limits: limits(4 * 3 * ONE) });
    socket.messages(1, 2); // two thirds of a quarter, then the socket drops

    const next = await dropAndReconnect(server);
    next.welcome({ seq: 2, replay: 0, resume: { recovered: true }, limits: limits(4 * 3 * ONE) });
    next.message(3);
    expect(next.framesOf("progress")).toEqual([]);
    next.messages(4, 5);
    expect(next.framesOf("progress")).toEqual([{ type: "progress", seq: 5 }]);

    const third = await dropAndReconnect(server);
    third.welcome({ seq: 5, replay: 0, resume: { recovered: true }, limits: limits() });
    third.messages(6, 9);
    expect(third.framesOf("progress")).toEqual([]);
  });
});

describe("presence", () => {
  it("applies presence_state then diffs (joins and updates set, leaves delete) and emits the full list", async () => {
    const { room, socket } = await started();
    const emitted: Member[][] = [];
    room.on("presence", (members) => emitted.push(members));
    socket.welcome();

    socket.presenceState([member("alice", { typing: false }), member("bob")]);
    expect(room.members).toEqual([member("alice", { typing: false }), member("bob")]);

    socket.presenceDiff({ joins: [member("carol")], updates: [member("alice", { typing: true })], leaves: ["bob"] });
    expect(room.members).toEqual([member("alice", { typing: true }), member("carol")]);
    expect(emitted).toEqual([
      [member("alice", { typing: false }), member("bob")],
      [member("alice", { typing: true }), member("carol")],
    ]);
  });

  it("replaces the whole list with the presence_state of a new connection", async () => {
    const { room, server, socket } = await started();
    socket.welcome();
    socket.presenceState([member("alice"), member("bob")]);

    const next = await dropAndReconnect(server);
    next.welcome();
    next.presenceState([member("alice")]);
    expect(room.members).toEqual([member("alice")]);
  });

  it("sends its own presence state now when connected, and again after every welcome", async () => {
    const { room, server, socket } = await started();
    room.setPresence({ status: "away" }); // not connected yet: kept for the welcome
    expect(socket.sent).toEqual([]);
    socket.welcome();
    expect(socket.framesOf("presence").map((f) => f.state)).toEqual([{ status: "away" }]);

    room.setPresence({ status: "here" });
    expect(socket.framesOf("presence")).toHaveLength(2);

    const next = await dropAndReconnect(server);
    next.welcome();
    expect(next.framesOf("presence").map((f) => f.state)).toEqual([{ status: "here" }]);
  });

  it("without the presence permission, reports the server's forbidden as an error event and stays connected", async () => {
    const { room, socket } = await started();
    const errors: RoomcastClientError[] = [];
    room.on("error", (err) => errors.push(err));
    socket.welcome({ permissions: ["subscribe", "publish"] });
    const unacked = observe(room.publish("kept", { id: "kept" }));

    room.setPresence({ typing: true });
    const [frame] = socket.framesOf("presence");
    socket.error("forbidden", frame!.id); // the server echoes the frame's id, if it had one
    await advance();

    expect(errors.map((e) => e.code)).toEqual(["forbidden"]);
    expect(room.state).toBe("connected");
    expect(socket.closedByClient).toBe(false);
    expect(unacked.status).toBe("pending");
    expect(room.pending.map((e) => e.id)).toEqual(["kept"]);
  });
});

describe("publish", () => {
  it("sends a publish frame and resolves with the ack", async () => {
    const { room, socket } = await started();
    const acks: unknown[] = [];
    room.on("ack", (ack) => acks.push(ack));
    socket.welcome();

    const result = observe(room.publish({ text: "hi" }, { id: "p-1" }));
    expect(socket.frames).toEqual([{ type: "publish", id: "p-1", data: { text: "hi" } }]);
    expect(room.pending.map((e) => e.id)).toEqual(["p-1"]);
    await advance();
    expect(result.status).toBe("pending");

    socket.ack("p-1", 7);
    await advance();
    expect(result.value).toEqual({ id: "p-1", seq: 7, duplicate: false });
    expect(acks).toEqual([{ id: "p-1", seq: 7, duplicate: false }]);
    expect(room.pending).toEqual([]);
  });

  it("resolves with duplicate: true when the server had stored the id already", async () => {
    const { room, socket } = await started();
    socket.welcome();
    const result = room.publish("again", { id: "p-1" });
    socket.ack("p-1", 3, true);
    await expect(result).resolves.toEqual({ id: "p-1", seq: 3, duplicate: true });
  });

  it("generates a distinct valid message id for each publish", async () => {
    const { room, socket } = await started();
    socket.welcome();
    for (let i = 0; i < 5; i++) observe(room.publish(i));
    const ids = socket.publishedIds;
    expect(new Set(ids).size).toBe(5);
    for (const id of ids) expect(id).toMatch(MESSAGE_ID);
  });

  // rate_limited is not among them: it means "later" (test/unit/outbox-rate.test.ts).
  it.each(["message_too_large", "forbidden", "invalid_frame"] as const)(
    "rejects with %s when the server answers that publish with an error frame",
    async (code) => {
      const { room, server, socket } = await started();
      socket.welcome();
      const failing = observe(room.publish("x", { id: "bad" }));
      const other = observe(room.publish("y", { id: "good" }));
      socket.error(code, "bad");
      await advance();

      expect(failing.status).toBe("rejected");
      expect(failing.error).toBeInstanceOf(RoomcastClientError);
      expect(failing.error).toMatchObject({ code });
      expect(other.status).toBe("pending");
      expect(room.pending.map((e) => e.id)).toEqual(["good"]);

      const next = await dropAndReconnect(server);
      next.welcome();
      expect(next.publishedIds).toEqual(["good"]);
    },
  );

  it("emits an error event for a server error that answers no publish", async () => {
    const { room, socket } = await started();
    const errors: RoomcastClientError[] = [];
    room.on("error", (err) => errors.push(err));
    socket.welcome();
    socket.error("invalid_frame");
    expect(errors.map((e) => e.code)).toEqual(["invalid_frame"]);
    expect(room.state).toBe("connected");
  });

  it("queues publishes while disconnected and sends them after the welcome, in order", async () => {
    const { room, socket } = await started();
    const results = ["a", "b", "c"].map((id) => observe(room.publish(id, { id })));
    socket.open();
    await advance(1_000);
    expect(socket.sent).toEqual([]);

    socket.welcome();
    expect(socket.publishedIds).toEqual(["a", "b", "c"]);
    expect(socket.framesOf("publish").map((f) => f.data)).toEqual(["a", "b", "c"]);
    for (const id of ["a", "b", "c"]) socket.ack(id, id.charCodeAt(0));
    await advance();
    expect(results.map((r) => r.status)).toEqual(["resolved", "resolved", "resolved"]);
  });

  it("sends each publish once per connection, and the unacked ones again after a reconnect with the same ids", async () => {
    const { room, server, socket } = await started();
    socket.welcome();
    const results = ["a", "b", "c"].map((id) => observe(room.publish(id, { id })));
    socket.ack("a", 1);
    socket.message(2); // unrelated traffic must not trigger a resend
    expect(socket.publishedIds).toEqual(["a", "b", "c"]);

    socket.serverClose(1006);
    results.push(observe(room.publish("d", { id: "d" }))); // while reconnecting
    await advance();
    const next = server.last();
    expect(server.sockets).toHaveLength(2);
    expect(next.sent).toEqual([]);

    next.welcome();
    expect(next.publishedIds).toEqual(["b", "c", "d"]);
    next.ack("b", 2);
    next.ack("c", 3);
    next.ack("d", 4);
    await advance();
    expect(results.map((r) => r.value?.seq)).toEqual([1, 2, 3, 4]);
    expect(socket.publishedIds).toEqual(["a", "b", "c"]);
    expect(next.publishedIds).toEqual(["b", "c", "d"]);
  });

  describe("a full outbox", () => {
    it('"reject-new" rejects the new publish with outbox_full and keeps the queued ones', async () => {
      const { room, socket } = await started({ outbox: { maxSize: 2, overflow: "reject-new" } });
      const a = observe(room.publish("a", { id: "a" }));
      const b = observe(room.publish("b", { id: "b" }));
      await expect(room.publish("c", { id: "c" })).rejects.toMatchObject({ code: "outbox_full" });
      expect(room.pending.map((e) => e.id)).toEqual(["a", "b"]);

      socket.welcome();
      expect(socket.publishedIds).toEqual(["a", "b"]);
      expect([a.status, b.status]).toEqual(["pending", "pending"]);
    });

    it('"drop-oldest" rejects the oldest unsent publish with outbox_full to make room', async () => {
      const { room, socket } = await started({ outbox: { maxSize: 2, overflow: "drop-oldest" } });
      const a = observe(room.publish("a", { id: "a" }));
      const b = observe(room.publish("b", { id: "b" }));
      const c = observe(room.publish("c", { id: "c" }));
      await advance();
      expect(a.status).toBe("rejected");
      expect(a.error).toMatchObject({ code: "outbox_full" });
      expect([b.status, c.status]).toEqual(["pending", "pending"]);

      socket.welcome();
      expect(socket.publishedIds).toEqual(["b", "c"]);
    });

    it('"drop-oldest" rejects the new publish when every queued one is already in flight', async () => {
      const { room, socket } = await started({ outbox: { maxSize: 2, overflow: "drop-oldest" } });
      socket.welcome();
      const inFlight = [observe(room.publish("a", { id: "a" })), observe(room.publish("b", { id: "b" }))];
      await expect(room.publish("c", { id: "c" })).rejects.toMatchObject({ code: "outbox_full" });
      expect(inFlight.map((p) => p.status)).toEqual(["pending", "pending"]);
      expect(socket.publishedIds).toEqual(["a", "b"]);
    });
  });

  it("paces a backlog to the welcome's limits: the burst but one (kept for refresh) at once, then one per 1/rate seconds", async () => {
    const { room, socket } = await started();
    const ids = ["p0", "p1", "p2", "p3", "p4", "p5", "p6"];
    for (const id of ids) observe(room.publish(id, { id }));
    socket.welcome({ limits: { maxMessageBytes: 65_536, publishRatePerSecond: 2, publishBurst: 3, livenessTimeoutSeconds: 60 } });
    expect(socket.publishedIds).toEqual(["p0", "p1"]);

    const counts: number[] = [];
    for (const step of [499, 1, 499, 1, 500, 500, 10_000]) {
      await advance(step);
      counts.push(socket.publishedIds.length);
    }
    expect(counts).toEqual([2, 3, 3, 4, 5, 6, 7]);
    expect(socket.publishedIds).toEqual(ids);
  });

  describe("with timeoutMs", () => {
    it("rejects publish_timeout with sent: false when it never went out, and drops it from the outbox", async () => {
      const { room, socket } = await started();
      const result = observe(room.publish("late", { id: "late", timeoutMs: 1_000 }));
      await advance(999);
      expect(result.status).toBe("pending");
      await advance(1);
      expect(result.status).toBe("rejected");
      expect(result.error).toBeInstanceOf(RoomcastClientError);
      expect(result.error).toMatchObject({ code: "publish_timeout", sent: false });
      expect(room.pending).toEqual([]);

      socket.welcome();
      expect(socket.publishedIds).toEqual([]);
    });

    it("rejects publish_timeout with sent: true when it went out but no ack came, keeps it, and resends it until acked", async () => {
      const { room, server, socket } = await started();
      const acks: unknown[] = [];
      room.on("ack", (ack) => acks.push(ack));
      socket.welcome();
      const result = observe(room.publish("lost", { id: "lost", timeoutMs: 1_000 }));
      expect(socket.publishedIds).toEqual(["lost"]);
      await advance(1_000);
      expect(result.error).toMatchObject({ code: "publish_timeout", sent: true });
      // It may be stored: withdrawing it could lose it, and a new id would store it twice.
      expect(room.pending.map((e) => e.id)).toEqual(["lost"]);

      const next = await dropAndReconnect(server);
      next.welcome();
      expect(next.publishedIds).toEqual(["lost"]);
      next.ack("lost", 9, true);
      expect(acks).toEqual([{ id: "lost", seq: 9, duplicate: true }]);
      expect(room.pending).toEqual([]);
    });

    it("still says sent: true after a disconnect reset what the current socket sent", async () => {
      const { room, server, socket } = await started();
      socket.welcome();
      const result = observe(room.publish("stored", { id: "stored", timeoutMs: 5_000 }));
      expect(socket.publishedIds).toEqual(["stored"]);
      // The server stored it, then died before the ack; reconnects keep failing.
      socket.serverClose(1006);
      await advance();
      server.last().refuse();
      await advance(5_000);
      expect(result.error).toMatchObject({ code: "publish_timeout", sent: true });
      expect(room.pending.map((e) => e.id)).toEqual(["stored"]);
    });

    it("resolves normally when the ack beats the timeout", async () => {
      const { room, socket } = await started();
      socket.welcome();
      const result = observe(room.publish("quick", { id: "quick", timeoutMs: 1_000 }));
      socket.ack("quick", 1);
      await advance(5_000);
      expect(result.status).toBe("resolved");
    });
  });

  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  it.each([
    ["a BigInt", 10n],
    ["undefined", undefined],
    ["a function", () => 1],
    ["a cyclic object", cyclic],
  ])("rejects %s with a TypeError and queues nothing", async (_label, data) => {
    const { room, socket } = await started();
    socket.welcome();
    await expect(room.publish(data)).rejects.toThrow(TypeError);
    expect(room.pending).toEqual([]);
    expect(socket.sent).toEqual([]);
  });

  it.each(["", "has space", "x".repeat(65), "é"])("rejects the id %j with a TypeError and queues nothing (the server could not answer it)", async (id) => {
    const { room, socket } = await started();
    socket.welcome();
    await expect(room.publish("x", { id })).rejects.toThrow(TypeError);
    expect(room.pending).toEqual([]);
    expect(socket.sent).toEqual([]);
  });

  it("rejects data over the welcome's maxMessageBytes without sending it", async () => {
    const { room, socket } = await started();
    socket.welcome({ limits: { maxMessageBytes: 10, publishRatePerSecond: 20, publishBurst: 40, livenessTimeoutSeconds: 60 } });
    await expect(room.publish("x".repeat(20))).rejects.toMatchObject({ code: "message_too_large" });
    expect(socket.sent).toEqual([]);
    observe(room.publish("short", { id: "ok" }));
    expect(socket.publishedIds).toEqual(["ok"]);
  });
});

describe("leave", () => {
  it("closes the socket, ends in closed, rejects pending work with room_closed and never reconnects", async () => {
    const { room, server, socket } = await started();
    const states: string[] = [];
    room.on("state", (change) => states.push(change.newState));
    socket.welcome();
    const publish = observe(room.publish("unacked"));
    const history = observe(room.history());

    room.leave();
    await advance();
    expect(room.state).toBe("closed");
    expect(states.at(-1)).toBe("closed");
    expect(socket.closeCalls).toEqual([{ code: 1000, reason: "client closed" }]);
    expect(publish.error).toMatchObject({ code: "room_closed" });
    expect(history.error).toMatchObject({ code: "room_closed" });

    await advance(60 * 60_000);
    expect(server.sockets).toHaveLength(1);
    await expect(room.publish("after")).rejects.toMatchObject({ code: "room_closed" });
    await expect(room.history()).rejects.toMatchObject({ code: "room_closed" });
  });

  it("hands out a new room handle for the same name after leaving", async () => {
    const { client: c, room } = start();
    expect(c.room("lobby")).toBe(room);
    room.leave();
    const again = c.room("lobby");
    expect(again).not.toBe(room);
    expect(again.state).toBe("idle");
  });

  it("client.close() leaves every room", async () => {
    const { client: c, room } = start();
    const other = c.room("other");
    await advance();
    c.close();
    expect([room.state, other.state]).toEqual(["closed", "closed"]);
  });
});

describe("history", () => {
  it("sends a history frame and resolves with the matching reply", async () => {
    const { room, socket } = await started();
    socket.welcome();
    const first = observe(room.history({ after: 10, limit: 2 }));
    const second = observe(room.history());
    const [frameA, frameB] = socket.framesOf("history");
    expect(frameA).toMatchObject({ type: "history", after: 10, limit: 2 });
    expect(frameB).toEqual({ type: "history", id: frameB!.id });
    expect(frameA!.id).not.toBe(frameB!.id);

    socket.history(frameB!.id, [messageAt(1)], true); // replies may come in any order
    socket.history(frameA!.id, [messageAt(11), messageAt(12)], false);
    await advance();
    expect(first.value).toEqual({ messages: [messageAt(11), messageAt(12)], hasMore: false });
    expect(second.value).toEqual({ messages: [messageAt(1)], hasMore: true });
  });

  it("sends a request made before the welcome after it, and again after a reconnect while unanswered", async () => {
    const { room, server, socket } = await started();
    const page = observe(room.history({ limit: 5 }));
    socket.welcome();
    const [frame] = socket.framesOf("history");
    expect(frame).toMatchObject({ limit: 5 });

    const next = await dropAndReconnect(server);
    next.welcome();
    expect(next.framesOf("history")).toEqual([frame]);
    next.history(frame!.id, [], false);
    await advance();
    expect(page.value).toEqual({ messages: [], hasMore: false });
  });

  it("rejects with the server's code on an error frame for that request", async () => {
    const { room, socket } = await started();
    socket.welcome();
    const page = observe(room.history({ limit: 5 }));
    socket.error("invalid_frame", socket.framesOf("history")[0]!.id);
    await advance();
    expect(page.error).toMatchObject({ code: "invalid_frame" });
  });
});

describe("validation", () => {
  it.each(["", "-starts-with-dash", "has space", "a/b", "é", "x".repeat(129)])("client.room(%j) throws a TypeError", (name) => {
    const { client: c } = testClient();
    client = c;
    expect(() => c.room(name)).toThrow(TypeError);
  });

  it.each(["a", "x".repeat(128), "Team_42.general:2025-01"])("client.room(%j) is a valid name", (name) => {
    const { client: c } = testClient();
    client = c;
    expect(c.room(name).name).toBe(name);
  });

  it("createClient refuses a missing or malformed url and a missing token", () => {
    expect(() => createClient({ url: "not a url", token: "t" })).toThrow(TypeError);
    expect(() => createClient({ token: "t" } as unknown as ClientOptions)).toThrow(TypeError);
    expect(() => createClient({ url: "http://rc.test" } as unknown as ClientOptions)).toThrow(TypeError);
  });

  it("createClient refuses a URL that is not http(s) or ws(s) up front", () => {
    expect(() => createClient({ url: "ftp://rc.test", token: "t" })).toThrow(TypeError);
  });
});
