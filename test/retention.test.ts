import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { IDENTITY_HEADER, RESUME_HEADER, type Room } from "../src/room/room.js";
import { TestSocket, fetchWorker, httpPublish, token, uniqueRoom } from "./helpers.js";

interface HistoryBody {
  epoch: string;
  head: number;
  hasMore: boolean;
  messages: { seq: number; id: string; data: unknown; ts: number }[];
}

/** RETENTION_MAX_AGE_SECONDS is not set for tests: the default, 30 days. */
const MAX_AGE_MS = 30 * 24 * 3_600 * 1_000;

async function historyPage(room: string, after: number): Promise<HistoryBody> {
  const res = await fetchWorker(`/v1/rooms/${room}/messages?after=${after}`, { headers: { Authorization: `Bearer ${await token()}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as HistoryBody;
}

/** Every retained message (paging through HISTORY_PAGE_MAX=20), with the room's head. */
async function retained(room: string): Promise<{ head: number; seqs: number[]; ids: string[] }> {
  const seqs: number[] = [];
  const ids: string[] = [];
  let after = 0;
  let head = 0;
  for (;;) {
    const page = await historyPage(room, after);
    head = page.head;
    for (const m of page.messages) {
      seqs.push(m.seq);
      ids.push(m.id);
    }
    if (!page.hasMore) return { head, seqs, ids };
    after = page.messages[page.messages.length - 1]!.seq;
  }
}

async function publishAll(room: string, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) await httpPublish(room, `m${i}`, { i });
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Runs the room's alarm until the oldest retained seq is `oldest` (the alarm may trim in batches). */
async function trimUntil(room: string, oldest: number): Promise<void> {
  const stub = env.ROOMS.getByName(room);
  for (let i = 0; i < 20; i++) {
    if ((await historyPage(room, 0)).messages[0]?.seq === oldest) return;
    await runDurableObjectAlarm(stub);
  }
  throw new Error(`retention never trimmed ${room} to start at ${oldest}`);
}

/**
 * Waits, by polling on the test's own timers, until `socket` has received frames
 * that satisfy `done`. For a socket whose client end lives in the room's I/O
 * context: awaiting a promise its event handlers resolve would carry the test on
 * in that context, where the test's stubs can no longer be used.
 */
async function poll(socket: TestSocket, done: (frames: TestSocket["frames"]) => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done(socket.frames)) {
    if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(socket.frames.map((f) => f.type))}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Sets the receive time of every message with `seq <= upTo` to `ts`. */
async function backdate(room: string, upTo: number, ts: number): Promise<void> {
  await runInDurableObject(env.ROOMS.getByName(room), (_instance, state) => {
    state.storage.sql.exec("UPDATE messages SET ts = ? WHERE seq <= ?", ts, upTo);
  });
}

describe("retention by count", () => {
  it("keeps the newest RETENTION_MAX_MESSAGES and never reuses a sequence number", async () => {
    const room = uniqueRoom();
    await publishAll(room, 1, 40);
    await trimUntil(room, 11);

    const after = await retained(room);
    expect(after.head).toBe(40);
    expect(after.seqs).toEqual(range(11, 40));
    expect(after.ids).toEqual(range(11, 40).map((i) => `m${i}`));

    // The next message continues from the head, not from what is left.
    expect(await httpPublish(room, "m41", { i: 41 })).toBe(41);
    const withNext = await retained(room);
    expect(withNext.head).toBe(41);
    expect(withNext.seqs.at(-1)).toBe(41);
  });

  it("leaves a room under the limit untouched", async () => {
    const room = uniqueRoom();
    await publishAll(room, 1, 30);
    expect(await runDurableObjectAlarm(env.ROOMS.getByName(room))).toBe(true);
    expect((await retained(room)).seqs).toEqual(range(1, 30));
  });
});

describe("retention by age", () => {
  it("deletes messages older than RETENTION_MAX_AGE_SECONDS and keeps the rest", async () => {
    const room = uniqueRoom();
    await publishAll(room, 1, 6);
    await backdate(room, 3, Date.now() - MAX_AGE_MS - 60_000);

    expect(await runDurableObjectAlarm(env.ROOMS.getByName(room))).toBe(true);
    const after = await retained(room);
    expect(after.seqs).toEqual([4, 5, 6]);
    expect(after.head).toBe(6);
  });

  it("keeps messages just younger than the limit", async () => {
    const room = uniqueRoom();
    await publishAll(room, 1, 3);
    await backdate(room, 2, Date.now() - MAX_AGE_MS + 60_000);
    expect(await runDurableObjectAlarm(env.ROOMS.getByName(room))).toBe(true);
    expect((await retained(room)).seqs).toEqual([1, 2, 3]);
  });

  it("continues the sequence after every message has aged out, even across an eviction", async () => {
    const room = uniqueRoom();
    await publishAll(room, 1, 4);
    await backdate(room, 4, Date.now() - MAX_AGE_MS - 60_000);
    const stub = env.ROOMS.getByName(room);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await retained(room)).toEqual({ head: 4, seqs: [], ids: [] });

    await evictDurableObject(stub);
    expect(await httpPublish(room, "m5", { i: 5 })).toBe(5);
    expect(await retained(room)).toMatchObject({ head: 5, seqs: [5] });
  });
});

describe("the retention alarm", () => {
  it("is idempotent: running it again right away changes nothing", async () => {
    const room = uniqueRoom();
    const stub = env.ROOMS.getByName(room);
    await publishAll(room, 1, 36);
    await backdate(room, 8, Date.now() - MAX_AGE_MS - 60_000);
    await trimUntil(room, 9); // age (1..8) wins over count (1..6)
    const once = await retained(room);
    expect(once.seqs).toEqual(range(9, 36));

    for (let i = 0; i < 2; i++) {
      // After each run the alarm is rescheduled (for the oldest message's expiry), so it runs again.
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      expect(await retained(room)).toEqual(once);
    }
  });

  it("does not trim messages an in-flight replay has yet to send", async () => {
    // Deterministic: inside the object, a resumed connection is accepted (first
    // replay page sent, the rest due on later turns) and the alarm runs in that same
    // turn, with every message past its age limit. The client end of the socket
    // belongs to the object's I/O context, so it is accepted there too.
    const room = uniqueRoom();
    const stub = env.ROOMS.getByName(room);
    await publishAll(room, 1, 20);
    const { epoch } = await historyPage(room, 0);
    await backdate(room, 20, Date.now() - MAX_AGE_MS - 60_000);

    const { socket, oldestAfterAlarm } = await runInDurableObject(stub, async (instance: Room, state) => {
      const identity = { userId: "alice", room, permissions: ["subscribe"], expiresAt: Math.floor(Date.now() / 1000) + 300 };
      const response = await instance.fetch(
        new Request("https://room.internal/connect", {
          headers: { Upgrade: "websocket", [IDENTITY_HEADER]: JSON.stringify(identity), [RESUME_HEADER]: JSON.stringify({ epoch, after: 0 }) },
        }),
      );
      expect(response.status).toBe(101);
      response.webSocket!.accept();
      const socket = new TestSocket(response.webSocket!, response);
      await instance.alarm();
      const oldest = state.storage.sql.exec<{ seq: number | null }>("SELECT min(seq) AS seq FROM messages").one().seq;
      return { socket, oldestAfterAlarm: oldest };
    });
    // The alarm trimmed only what the replay had already sent (its first page, 1..5).
    expect(oldestAfterAlarm).toBe(6);

    await poll(socket, (frames) => frames.filter((f) => f.type === "message").length >= 20);
    const welcome = await socket.next("welcome");
    expect(welcome).toMatchObject({ resume: { recovered: true }, seq: 20, replay: 20 });
    const replayed = await socket.take("message", 20);
    expect(replayed.map((m) => m.seq)).toEqual(range(1, 20));

    // Once the replay is done, the next run trims the rest.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await retained(room)).toEqual({ head: 20, seqs: [], ids: [] });

    // Closing the client end from the test's context would be cross-context I/O; the room closes it (kick).
    const kicked = await fetchWorker(`/v1/rooms/${room}/connections/alice`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${await token({ sub: "ops", cap: { "*": ["admin"] } })}` },
    });
    expect(kicked.status).toBe(200);
    let closed = false;
    void socket.closed.then(() => (closed = true));
    await poll(socket, () => closed);
  });
});
