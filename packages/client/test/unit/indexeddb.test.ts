/**
 * The IndexedDB outbox on fake-indexeddb: the storage itself, and the durable-outbox
 * story end to end (publish offline, reload, the next page sends with the same ids).
 * Real timers: fake-indexeddb schedules its work with setImmediate.
 */
import "fake-indexeddb/auto"; // src/storage/indexeddb.ts reads the global IDBKeyRange
import { IDBFactory } from "fake-indexeddb";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { RoomcastClient } from "../../src/client.js";
import type { OutboxEntry, OutboxStorage } from "../../src/outbox.js";
import { indexedDbStorage } from "../../src/storage/indexeddb.js";
import { observe, testClient } from "./fake-socket.js";

const WAIT = { timeout: 2_000, interval: 5 };
const clients: RoomcastClient[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  vi.restoreAllMocks();
});

const entry = (id: string, data: unknown = { id }): OutboxEntry => ({ id, data, createdAt: 1_700_000_000_000 });
const ids = async (storage: OutboxStorage, room: string, user = "alice") => (await storage.load(room, user)).map((e) => e.id);

/** A clock under the test's control: a reload happens later than the page before it. */
function clock() {
  let now = 1_700_000_000_000;
  vi.spyOn(Date, "now").mockImplementation(() => now);
  return { tick: (ms: number) => void (now += ms) };
}

/** A fresh database per test; `open()` is what a page (or a reload) does. */
function database() {
  const factory = new IDBFactory();
  return { open: () => indexedDbStorage({ indexedDB: factory, name: "roomcast-test" }) };
}

describe("indexedDbStorage", () => {
  it("loads a room's entries in the order they were added", async () => {
    const storage = database().open();
    const added = Array.from({ length: 60 }, (_, i) => `m-${i}`);
    for (const id of added) await storage.add("lobby", "alice", entry(id));
    expect(await ids(storage, "lobby")).toEqual(added);
  });

  it("keeps the order of adds issued together without awaiting each", async () => {
    const storage = database().open();
    const added = Array.from({ length: 30 }, (_, i) => `m-${i}`);
    await Promise.all(added.map((id) => storage.add("lobby", "alice", entry(id))));
    expect(await ids(storage, "lobby")).toEqual(added);
  });

  it("keeps the order and every entry across more than 1,000 adds in the same millisecond", async () => {
    vi.spyOn(Date, "now").mockReturnValue(1_700_000_000_000);
    const storage = database().open();
    const added = Array.from({ length: 1_005 }, (_, i) => `m-${i}`);
    await Promise.all(added.map((id) => storage.add("lobby", "alice", entry(id))));
    expect(await ids(storage, "lobby")).toEqual(added);
  });

  it("round-trips the data and createdAt", async () => {
    const storage = database().open();
    const stored = { id: "m-1", data: { text: "hi", list: [1, null, { deep: true }] }, createdAt: 1_700_000_000_123 };
    await storage.add("lobby", "alice", stored);
    expect(await storage.load("lobby", "alice")).toEqual([stored]);
  });

  it("removes one entry by id and keeps the rest in order", async () => {
    const storage = database().open();
    for (const id of ["a", "b", "c", "d"]) await storage.add("lobby", "alice", entry(id));
    await storage.remove("lobby", "alice", "b");
    await storage.remove("lobby", "alice", "not-there");
    expect(await ids(storage, "lobby")).toEqual(["a", "c", "d"]);
  });

  it("keeps users apart in one room, even for the same id", async () => {
    const storage = database().open();
    await storage.add("lobby", "alice", entry("same", "from alice"));
    await storage.add("lobby", "bob", entry("same", "from bob"));
    await storage.add("lobby", "alice", entry("only-alice"));
    expect(await ids(storage, "lobby", "alice")).toEqual(["same", "only-alice"]);
    expect((await storage.load("lobby", "bob")).map((e) => e.data)).toEqual(["from bob"]);

    await storage.remove("lobby", "bob", "same");
    expect(await ids(storage, "lobby", "bob")).toEqual([]);
    expect(await ids(storage, "lobby", "alice")).toEqual(["same", "only-alice"]);
  });

  it("upgrades a version-2 database: its room-only rows are kept but never loaded for anyone", async () => {
    const factory = new IDBFactory();
    // What version 2 of this file created, with one row in it.
    await new Promise<void>((resolve, reject) => {
      const request = factory.open("roomcast-test", 2);
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore("outbox", { autoIncrement: true });
        store.createIndex("by-room", "room");
        store.createIndex("by-id", ["room", "entry.id"], { unique: true });
        store.add({ room: "lobby", entry: entry("whose") });
      };
      request.onsuccess = () => {
        request.result.close();
        resolve();
      };
      request.onerror = () => reject(request.error);
    });

    const storage = indexedDbStorage({ indexedDB: factory, name: "roomcast-test" });
    expect(await ids(storage, "lobby", "alice")).toEqual([]);
    expect(await ids(storage, "lobby", "bob")).toEqual([]);
    await storage.add("lobby", "alice", entry("whose")); // the same id no longer collides
    expect(await ids(storage, "lobby", "alice")).toEqual(["whose"]);
    const rows = await new Promise<unknown[]>((resolve, reject) => {
      const request = factory.open("roomcast-test", 3);
      request.onsuccess = () => {
        const get = request.result.transaction("outbox").objectStore("outbox").getAll();
        get.onsuccess = () => {
          request.result.close();
          resolve(get.result);
        };
      };
      request.onerror = () => reject(request.error);
    });
    expect(rows).toEqual([{ room: "lobby", entry: entry("whose") }, { room: "lobby", user: "alice", entry: entry("whose") }]);
  });

  it("keeps rooms apart, even for the same id and for names that prefix each other", async () => {
    const storage = database().open();
    await storage.add("team", "alice", entry("same", "in team"));
    await storage.add("team:general", "alice", entry("same", "in team:general"));
    await storage.add("team", "alice", entry("only-team"));

    expect(await ids(storage, "team")).toEqual(["same", "only-team"]);
    expect((await storage.load("team:general", "alice")).map((e) => e.data)).toEqual(["in team:general"]);
    expect(await storage.load("nobody", "alice")).toEqual([]);

    await storage.remove("team", "alice", "same");
    expect(await ids(storage, "team")).toEqual(["only-team"]);
    expect(await ids(storage, "team:general")).toEqual(["same"]);
  });

  it("survives a reload: a new storage on the same database sees the entries", async () => {
    const time = clock();
    const db = database();
    const before = db.open();
    await before.add("lobby", "alice", entry("a"));
    await before.add("lobby", "alice", entry("b"));
    time.tick(2_000);
    const after = db.open();
    expect(await ids(after, "lobby")).toEqual(["a", "b"]);
    await after.add("lobby", "alice", entry("c"));
    expect(await ids(after, "lobby")).toEqual(["a", "b", "c"]);
  });

  // BUG (reported, not fixed): every storage object numbers its rows from the same
  // time-based start, so two of them (two tabs) adding in the same millisecond compute
  // the same key; the second add fails (it used to overwrite the first entry silently).
  it("keeps both entries when two pages add in the same millisecond", async () => {
    clock();
    const db = database();
    const tabs = [db.open(), db.open()];
    await Promise.allSettled([tabs[0]!.add("lobby", "alice", entry("tab-1")), tabs[1]!.add("lobby", "alice", entry("tab-2"))]);
    expect((await ids(tabs[0]!, "lobby")).sort()).toEqual(["tab-1", "tab-2"]);
  });

  // BUG (reported, not fixed): the `indexedDB` option is meant for environments without
  // one (the doc names fake-indexeddb in tests), but load() uses the global IDBKeyRange,
  // so without the globals it throws "IDBKeyRange is not defined".
  it("works with only an injected IDBFactory, without a global IDBKeyRange", async () => {
    const global = globalThis as { IDBKeyRange?: unknown };
    const saved = global.IDBKeyRange;
    delete global.IDBKeyRange;
    try {
      const storage = database().open();
      await storage.add("lobby", "alice", entry("a"));
      expect(await ids(storage, "lobby")).toEqual(["a"]);
    } finally {
      global.IDBKeyRange = saved;
    }
  });
});

describe("a durable outbox", () => {
  /** A page: a client on this database and its own fake sockets, signed in as `user` (a JWT with that `sub`). */
  function page(db: ReturnType<typeof database>, user = "alice") {
    const setup = testClient({ outbox: { storage: db.open() }, token: jwtFor(user), connectTimeoutMs: 60_000, pingIntervalMs: 3_600_000 });
    clients.push(setup.client);
    return setup;
  }

  it("sends publishes made offline after a reload, once each with the same ids, and forgets them when acked", async () => {
    const time = clock();
    const db = database();
    const storage = db.open();

    // Page A: the socket opens but no welcome ever comes (offline).
    const a = page(db);
    const roomA = a.client.room("lobby");
    for (const id of ["p-1", "p-2", "p-3"]) observe(roomA.publish({ text: id }, { id }));
    await vi.waitFor(() => expect(a.server.sockets).toHaveLength(1), WAIT);
    await vi.waitFor(async () => expect(await ids(storage, "lobby")).toEqual(["p-1", "p-2", "p-3"]), WAIT);
    expect(a.server.last().sent).toEqual([]);

    // Page B: the reload. Nothing of A's in memory, only the database.
    time.tick(5_000);
    const b = page(db);
    const roomB = b.client.room("lobby");
    const acks: unknown[] = [];
    roomB.on("ack", (ack) => acks.push(ack));
    await vi.waitFor(() => expect(b.server.sockets).toHaveLength(1), WAIT);
    await vi.waitFor(() => expect(roomB.pending.map((e) => e.id)).toEqual(["p-1", "p-2", "p-3"]), WAIT);

    const socket = b.server.last();
    socket.welcome();
    expect(socket.framesOf("publish")).toEqual([
      { type: "publish", id: "p-1", data: { text: "p-1" } },
      { type: "publish", id: "p-2", data: { text: "p-2" } },
      { type: "publish", id: "p-3", data: { text: "p-3" } },
    ]);

    socket.ack("p-1", 11);
    socket.ack("p-2", 12, true); // A's publish had reached the server after all
    socket.ack("p-3", 13);
    expect(acks).toEqual([
      { id: "p-1", seq: 11, duplicate: false },
      { id: "p-2", seq: 12, duplicate: true },
      { id: "p-3", seq: 13, duplicate: false },
    ]);
    expect(roomB.pending).toEqual([]);
    await vi.waitFor(async () => expect(await ids(storage, "lobby")).toEqual([]), WAIT);
    expect(socket.publishedIds).toEqual(["p-1", "p-2", "p-3"]);
  });

  it("sends restored entries before publishes made while they were loading", async () => {
    const time = clock();
    const db = database();
    const storage = db.open();
    await storage.add("lobby", "alice", entry("old-1"));
    await storage.add("lobby", "alice", entry("old-2"));
    time.tick(5_000);

    const b = page(db);
    const room = b.client.room("lobby");
    const fresh = observe(room.publish("new", { id: "new-1" })); // before the restore finished
    await vi.waitFor(() => expect(b.server.sockets).toHaveLength(1), WAIT);
    b.server.last().welcome();
    expect(b.server.last().publishedIds).toEqual(["old-1", "old-2", "new-1"]);

    b.server.last().ack("new-1", 3);
    await vi.waitFor(() => expect(fresh.status).toBe("resolved"), WAIT);
    await vi.waitFor(async () => expect(await ids(storage, "lobby")).toEqual(["old-1", "old-2"]), WAIT);
  });

  it("forgets unacked entries the app saw rejected: when the room is left, and on a forbidden close", async () => {
    const db = database();
    const storage = db.open();

    const left = page(db);
    const room = left.client.room("kept");
    const publish = observe(room.publish("x", { id: "k-1" }));
    await vi.waitFor(async () => expect(await ids(storage, "kept")).toEqual(["k-1"]), WAIT);
    room.leave();
    await vi.waitFor(() => expect(publish.error).toMatchObject({ code: "room_closed" }), WAIT);
    // Rejected with room_closed, so never delivered later by another session.
    await vi.waitFor(async () => expect(await ids(storage, "kept")).toEqual([]), WAIT);

    const refused = page(db);
    const other = refused.client.room("refused");
    const doomed = observe(other.publish("y", { id: "f-1" }));
    await vi.waitFor(() => expect(refused.server.sockets).toHaveLength(1), WAIT);
    await vi.waitFor(async () => expect(await ids(storage, "refused")).toEqual(["f-1"]), WAIT);
    refused.server.last().welcome();
    refused.server.last().serverClose(4501, "forbidden");
    await vi.waitFor(() => expect(doomed.error).toMatchObject({ code: "forbidden" }), WAIT);
    await vi.waitFor(async () => expect(await ids(storage, "refused")).toEqual([]), WAIT);
  });

  it("never sends one user's queued publishes as another: alice queues offline, bob loads the page, then alice again", async () => {
    const time = clock();
    const db = database();
    const storage = db.open();

    // alice publishes while the server never welcomes her (offline), then the page goes.
    const a = page(db, "alice");
    const roomA = a.client.room("lobby");
    observe(roomA.publish({ text: "from alice" }, { id: "a-1" }));
    await vi.waitFor(async () => expect(await ids(storage, "lobby", "alice")).toEqual(["a-1"]), WAIT);

    // bob signs in in the same browser: nothing of alice's is restored, shown or sent.
    time.tick(5_000);
    const b = page(db, "bob");
    const roomB = b.client.room("lobby");
    const restoredForBob: unknown[] = [];
    roomB.on("restored", (entries) => restoredForBob.push(entries));
    await vi.waitFor(() => expect(b.server.sockets).toHaveLength(1), WAIT);
    b.server.last().welcome({ userId: "bob" });
    await new Promise((resolve) => setTimeout(resolve, 50)); // a restore has had time to run
    expect(roomB.pending).toEqual([]);
    expect(restoredForBob).toEqual([]);
    expect(b.server.last().publishedIds).toEqual([]);
    expect(await ids(storage, "lobby", "alice")).toEqual(["a-1"]); // still kept for alice

    // alice again: hers is restored and sent, once.
    time.tick(5_000);
    const c = page(db, "alice");
    const roomC = c.client.room("lobby");
    await vi.waitFor(() => expect(c.server.sockets).toHaveLength(1), WAIT);
    await vi.waitFor(() => expect(roomC.pending.map((e) => e.id)).toEqual(["a-1"]), WAIT);
    c.server.last().welcome({ userId: "alice" });
    expect(c.server.last().framesOf("publish")).toEqual([{ type: "publish", id: "a-1", data: { text: "from alice" } }]);
    c.server.last().ack("a-1", 1);
    await vi.waitFor(async () => expect(await ids(storage, "lobby", "alice")).toEqual([]), WAIT);
    expect(c.server.last().publishedIds).toEqual(["a-1"]);
  });

  it("reports every outcome of a restored publish, which has no promise: ack, or publish_failed", async () => {
    const time = clock();
    const db = database();
    const storage = db.open();
    await storage.add("lobby", "alice", entry("ok"));
    await storage.add("lobby", "alice", entry("too-big"));
    time.tick(5_000);

    const b = page(db);
    const room = b.client.room("lobby");
    const acks: unknown[] = [];
    const failures: unknown[] = [];
    room.on("ack", (ack) => acks.push(ack));
    room.on("publish_failed", (f) => failures.push({ id: f.id, code: f.error.code, kept: f.kept }));
    await vi.waitFor(() => expect(room.pending.map((e) => e.id)).toEqual(["ok", "too-big"]), WAIT);
    b.server.last().welcome();
    b.server.last().ack("ok", 1);
    b.server.last().error("message_too_large", "too-big");
    expect(acks).toEqual([{ id: "ok", seq: 1, duplicate: false }]);
    expect(failures).toEqual([{ id: "too-big", code: "message_too_large", kept: false }]);
    await vi.waitFor(async () => expect(await ids(storage, "lobby")).toEqual([]), WAIT);
  });
});

/** An unsigned JWT-shaped token with this `sub` (the client reads it without verifying; the fake server does not check). */
function jwtFor(sub: string): string {
  const b64 = (value: unknown) => btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64({ sub })}.sig`;
}

describe("a storage that does not answer", () => {
  it("an IndexedDB upgrade blocked by a tab of an older build fails after blockedTimeoutMs instead of hanging", async () => {
    const factory = new IDBFactory();
    // The previous build's tab: version 2, and no `onversionchange` handler, so it never lets an upgrade through.
    const old = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open("roomcast-test", 2);
      request.onupgradeneeded = () => request.result.createObjectStore("outbox", { autoIncrement: true });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const storage = indexedDbStorage({ indexedDB: factory, name: "roomcast-test", blockedTimeoutMs: 200 });
    const started = Date.now();
    await expect(storage.load("r", "alice")).rejects.toThrow(/blocked by another tab/);
    expect(Date.now() - started).toBeLessThan(2_000);
    old.close(); // the old tab goes away: the next call opens (the failed open was not cached)
    await expect(storage.load("r", "alice")).resolves.toEqual([]);
  });

  it("publishes go on after the restore deadline when the storage never answers, with an error event", async () => {
    vi.useFakeTimers();
    try {
      const never: OutboxStorage = { load: () => new Promise(() => {}), add: () => {}, remove: () => {} };
      const { client, server } = testClient({ outbox: { storage: never } });
      clients.push(client);
      const room = client.room("r");
      const errors: string[] = [];
      room.on("error", (e) => errors.push(e.message));
      await vi.advanceTimersByTimeAsync(0);
      const socket = server.last();
      socket.open();
      socket.welcome({ userId: "alice" });
      const publish = observe(room.publish({ n: 1 }, { id: "p-1" }));
      await vi.advanceTimersByTimeAsync(100);
      expect(socket.publishedIds).toEqual([]); // waiting for the stored entries, which go first
      await vi.advanceTimersByTimeAsync(5_000);
      expect(socket.publishedIds).toEqual(["p-1"]);
      expect(errors.some((m) => /did not load within/.test(m))).toBe(true);
      socket.ack("p-1", 1);
      await vi.advanceTimersByTimeAsync(0);
      expect(publish.status).toBe("resolved");
    } finally {
      vi.useRealTimers();
    }
  });
});
