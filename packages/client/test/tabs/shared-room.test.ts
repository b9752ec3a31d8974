/**
 * One connection for all tabs: a leader elected with Web Locks holds the only
 * socket and serves the other tabs over BroadcastChannel; takeovers lose and
 * duplicate nothing. Fake tabs in one process (fake-tabs.ts), fake sockets, fake timers.
 */
import type { Message } from "@roomcast/protocol";
import { describe, expect, it } from "vitest";
import { createClient } from "../../src/client.js";
import { memoryStorage, type OutboxEntry, type OutboxStorage } from "../../src/outbox.js";
import { Room } from "../../src/room.js";
import { SharedRoom } from "../../src/tabs/shared-room.js";
import { unverifiedSubject } from "../../src/tabs/platform.js";
import type { RoomHandle } from "../../src/tabs/handle.js";
import type { GapInfo } from "../../src/room.js";
import { advance, messageAt, member, observe, BASE_URL } from "../unit/fake-socket.js";
import { FakeBrowser, tokenFor, useFakeBrowser, type FakeTab } from "./fake-tabs.js";

let browser: FakeBrowser;
useFakeBrowser((b) => (browser = b));

/** Records what a tab's handle delivers. */
function watch(room: RoomHandle): { seqs: number[]; gaps: GapInfo[] } {
  const seen = { seqs: [] as number[], gaps: [] as GapInfo[] };
  room.on("message", (m) => seen.seqs.push(m.seq));
  room.on("gap", (g) => seen.gaps.push(g));
  return seen;
}

async function openTabs(n: number, user = "alice"): Promise<FakeTab[]> {
  const tabs: FakeTab[] = [];
  for (let i = 0; i < n; i++) {
    tabs.push(browser.open(tokenFor(user)));
    await advance(10);
  }
  return tabs;
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe("shareAcrossTabs", () => {
  it("opens one socket for three tabs and delivers every message once in each", async () => {
    const tabs = await openTabs(3);
    expect(browser.sockets).toHaveLength(1);
    const leader = tabs[0]!;
    expect((leader.room as SharedRoom).isLeader).toBe(true);
    const seen = tabs.map((t) => watch(t.room));
    const socket = leader.server.last();
    socket.welcome({ seq: 2, replay: 2, userId: "alice" });
    socket.deliver({ type: "messages", messages: [messageAt(1), messageAt(2)] });
    socket.presenceState([member("alice")]);
    socket.messages(3, 4);
    await advance(10);
    for (const [i, tab] of tabs.entries()) {
      expect(tab.room.state, `tab ${i}`).toBe("connected");
      expect(tab.room.userId).toBe("alice");
      expect(tab.room.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
      expect(seen[i]!.seqs).toEqual([1, 2, 3, 4]);
      expect(tab.room.members.map((m) => m.userId)).toEqual(["alice"]);
      expect(tab.room.position).toEqual({ epoch: "epoch-1", seq: 4 });
    }
    expect(browser.sockets).toHaveLength(1);
  });

  it("relays room.features and the features event to every tab after each welcome, and to a tab that opens later", async () => {
    const tabs = await openTabs(2);
    const events = tabs.map((t) => {
      const seen: Record<string, boolean>[] = [];
      t.room.on("features", (f) => seen.push({ ...f }));
      return seen;
    });
    for (const tab of tabs) expect(tab.room.features).toEqual({});
    const socket = tabs[0]!.server.last();
    socket.welcome({ features: { new_composer: true } });
    await advance(10);
    for (const [i, tab] of tabs.entries()) {
      expect(tab.room.features, `tab ${i}`).toEqual({ new_composer: true });
      expect(Object.isFrozen(tab.room.features)).toBe(true);
      expect(events[i]).toEqual([{ new_composer: true }]);
    }
    const late = browser.open(tokenFor("alice"));
    await advance(10);
    expect(late.room.features).toEqual({ new_composer: true }); // from the leader's snapshot
    // A reconnect's welcome with other flags (an override changed meanwhile) reaches all three.
    socket.serverClose(1006);
    await advance(2_000);
    tabs[0]!.server.last().welcome({ features: { new_composer: false } });
    await advance(10);
    for (const tab of [...tabs, late]) expect(tab.room.features).toEqual({ new_composer: false });
    expect(events[1]).toEqual([{ new_composer: true }, { new_composer: false }]);
  });

  it("keeps every tab's features through a leader takeover (no reset to {} before the new leader's welcome), and a snapshot with the same flags raises no event", async () => {
    const tabs = await openTabs(3);
    const [old, next, third] = tabs as [FakeTab, FakeTab, FakeTab];
    old.server.last().welcome({ features: { new_composer: true } });
    await advance(10);
    const events: Record<string, boolean>[] = [];
    third.room.on("features", (f) => events.push({ ...f }));
    old.kill();
    await advance(10);
    expect((next.room as SharedRoom).isLeader).toBe(true);
    // The new leader's room has not been welcomed yet: the tabs keep what they had.
    for (const tab of [next, third]) expect(tab.room.features).toEqual({ new_composer: true });
    expect(events).toEqual([]);
    next.server.last().welcome({ features: { new_composer: true } });
    await advance(10);
    for (const tab of [next, third]) expect(tab.room.features).toEqual({ new_composer: true });
    expect(events).toEqual([{ new_composer: true }]); // the welcome's event, as a Room gives one
  });

  it("gives a tab that opens later the recent messages, then live ones", async () => {
    const [leader] = await openTabs(1);
    const socket = leader!.server.last();
    socket.welcome({ seq: 3, replay: 3 });
    socket.messages(1, 3);
    await advance(10);
    const late = browser.open(tokenFor("alice"));
    const seen = watch(late.room);
    await advance(10);
    socket.message(4);
    await advance(10);
    expect(seen.seqs).toEqual([1, 2, 3, 4]);
    expect(late.room.state).toBe("connected");
    expect(browser.sockets).toHaveLength(1);
  });

  it("sends a follower's publish on the leader's socket with the follower's id and settles it in that tab only", async () => {
    const [leader, follower] = await openTabs(2);
    const socket = leader!.server.last();
    socket.welcome();
    await advance(10);
    const leaderAcks: string[] = [];
    leader!.room.on("ack", (a) => leaderAcks.push(a.id));
    const sent = observe(follower!.room.publish({ text: "hi" }, { id: "f-1" }));
    await advance(10);
    expect(follower!.room.pending.map((e) => e.id)).toEqual(["f-1"]);
    expect(leader!.room.pending).toEqual([]);
    expect(socket.framesOf("publish")).toEqual([{ type: "publish", id: "f-1", data: { text: "hi" } }]);
    socket.message(1, { id: "f-1", from: "alice", data: { text: "hi" } });
    socket.ack("f-1", 1);
    await advance(10);
    expect(sent.status).toBe("resolved");
    expect(sent.value).toEqual({ id: "f-1", seq: 1, duplicate: false });
    expect(follower!.room.pending).toEqual([]);
    expect(leaderAcks).toEqual(["f-1"]); // the ack event reaches every tab; the promise only the publisher's
  });

  it("takes over when the leader tab closes: one new socket, open publishes re-sent with the same ids, every message once", async () => {
    const tabs = await openTabs(3);
    const [old, next, third] = tabs as [FakeTab, FakeTab, FakeTab];
    const seen = [watch(next.room), watch(third.room)];
    const first = old.server.last();
    first.welcome();
    first.messages(1, 3);
    await advance(10);
    // Handed to the old leader, which dies before the ack comes back.
    const a = observe(third.room.publish("from the third tab", { id: "t3-1" }));
    const b = observe(next.room.publish("from the next tab", { id: "t2-1" }));
    await advance(10);
    expect(first.publishedIds).toEqual(["t3-1", "t2-1"]);
    old.kill();
    await advance(10);
    expect(browser.holderOf([...browser.holders.keys()][0]!)).toBe(next);
    expect((next.room as SharedRoom).isLeader).toBe(true);
    expect(next.server.sockets).toHaveLength(1);
    expect(third.server.sockets).toHaveLength(0);
    // The old leader had stored t3-1 as seq 4 before it died; 5 came meanwhile.
    const socket = next.server.last();
    socket.welcome({ seq: 5, replay: 5 });
    socket.messages(1, 5);
    await advance(10);
    expect(socket.publishedIds.sort()).toEqual(["t2-1", "t3-1"]);
    socket.ack("t3-1", 4, true);
    socket.message(6, { id: "t2-1" });
    socket.ack("t2-1", 6);
    await advance(10);
    expect(a.value).toEqual({ id: "t3-1", seq: 4, duplicate: true });
    expect(b.value).toEqual({ id: "t2-1", seq: 6, duplicate: false });
    for (const s of seen) {
      expect(s.seqs).toEqual(range(1, 6));
      expect(s.gaps).toEqual([]);
    }
    expect(third.room.state).toBe("connected");
    expect(third.room.messages.map((m) => m.seq)).toEqual(range(1, 6));
  });

  it("keeps a follower's timed-out publish (sent: true) and submits it again to the next leader until acked", async () => {
    const [old, next, third] = (await openTabs(3)) as [FakeTab, FakeTab, FakeTab];
    const first = old.server.last();
    first.welcome();
    await advance(10);
    const acks: string[] = [];
    third.room.on("ack", (a) => acks.push(a.id));
    const p = observe(third.room.publish("slow", { id: "t3-slow", timeoutMs: 500 }));
    await advance(10);
    expect(first.publishedIds).toEqual(["t3-slow"]);
    await advance(500);
    expect(p.status).toBe("rejected");
    expect(p.error).toMatchObject({ code: "publish_timeout", sent: true });
    expect(third.room.pending.map((e) => e.id)).toEqual(["t3-slow"]); // as client.md says: it stays pending
    // The old leader (memory outbox) dies with the entry; the next one must get it from the tab.
    old.kill();
    await advance(10);
    const socket = next.server.last();
    socket.welcome();
    await advance(10);
    expect(socket.publishedIds).toEqual(["t3-slow"]);
    socket.ack("t3-slow", 1, true);
    await advance(10);
    expect(acks).toEqual(["t3-slow"]);
    expect(third.room.pending).toEqual([]);
  });

  it("withdraws a timed-out publish no leader ever had (sent: false)", async () => {
    const [leader] = (await openTabs(1)) as [FakeTab];
    leader.server.last().welcome();
    await advance(10);
    const tab = browser.open(tokenFor("alice"));
    const p = observe(tab.room.publish("early", { id: "early-1", timeoutMs: 0 })); // before it knows the leader
    await advance(10);
    expect(p.error).toMatchObject({ code: "publish_timeout", sent: false });
    expect(tab.room.pending).toEqual([]);
    expect(leader.server.last().publishedIds).toEqual([]);
  });

  it("fills from history a hole between the tabs' position and a new leader's replay", async () => {
    const [old, next, third] = (await openTabs(3)) as [FakeTab, FakeTab, FakeTab];
    const seen = watch(third.room);
    const first = old.server.last();
    first.welcome();
    first.messages(1, 3);
    await advance(10);
    old.kill();
    await advance(10);
    // 70 messages now, the join replays the newest 50: 4..20 are missing.
    const socket = next.server.last();
    socket.welcome({ seq: 70, replay: 50 });
    socket.deliver({ type: "messages", messages: range(21, 70).map((s) => messageAt(s)) });
    await advance(10);
    const [request] = socket.framesOf("history");
    expect(request).toMatchObject({ after: 3, limit: 17 });
    expect(seen.seqs).toEqual(range(1, 3)); // nothing newer passes before the hole is filled
    socket.history(request!.id, range(4, 20).map((s) => messageAt(s)), true);
    socket.message(71);
    await advance(10);
    expect(seen.seqs).toEqual(range(1, 71));
    expect(third.room.messages.map((m) => m.seq)).toEqual(range(1, 71));
  });

  it("reports a gap and goes on when retention deleted the hole", async () => {
    const [old, next] = (await openTabs(2)) as [FakeTab, FakeTab];
    const seen = watch(next.room);
    old.server.last().welcome();
    old.server.last().messages(1, 3);
    await advance(10);
    old.kill();
    await advance(10);
    const socket = next.server.last();
    socket.welcome({ seq: 70, replay: 50 });
    socket.deliver({ type: "messages", messages: range(21, 70).map((s) => messageAt(s)) });
    await advance(10);
    const [request] = socket.framesOf("history");
    socket.history(request!.id, range(10, 20).map((s) => messageAt(s)), false); // 4..9 are gone
    await advance(10);
    expect(seen.gaps).toEqual([{ reason: "trimmed", epoch: "epoch-1", from: 20, reset: false }]);
    expect(seen.seqs).toEqual([...range(1, 3), ...range(21, 70)]);
  });

  it("starts over with a gap (reset) when the new leader finds another epoch", async () => {
    const [old, next, third] = (await openTabs(3)) as [FakeTab, FakeTab, FakeTab];
    const first = old.server.last();
    first.welcome();
    first.messages(1, 3);
    await advance(10);
    const seen = watch(third.room);
    old.kill();
    await advance(10);
    const socket = next.server.last();
    socket.welcome({ epoch: "epoch-2", seq: 2, replay: 2 });
    socket.messages(1, 2);
    await advance(10);
    expect(seen.gaps).toEqual([{ reason: "epoch_changed", epoch: "epoch-2", from: 0, reset: true }]);
    expect(seen.seqs).toEqual([1, 2]);
    expect(third.room.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect(third.room.position).toEqual({ epoch: "epoch-2", seq: 2 });
  });

  it("answers a follower's history through the leader, and asks the next leader if the first one dies", async () => {
    const [old, next, third] = (await openTabs(3)) as [FakeTab, FakeTab, FakeTab];
    old.server.last().welcome({ seq: 9, replay: 0 });
    await advance(10);
    const page = observe(third.room.history({ after: 2, limit: 3 }));
    await advance(10);
    expect(old.server.last().framesOf("history")).toMatchObject([{ after: 2, limit: 3 }]);
    old.kill();
    await advance(10);
    const socket = next.server.last();
    socket.welcome({ seq: 9, replay: 0 });
    await advance(10);
    const [request] = socket.framesOf("history");
    expect(request).toMatchObject({ after: 2, limit: 3 });
    const messages: Message[] = [messageAt(3), messageAt(4), messageAt(5)];
    socket.history(request!.id, messages, true);
    await advance(10);
    expect(page.value).toEqual({ messages, hasMore: true });
  });

  it("sets the group's presence from any tab, and the next leader sets it again", async () => {
    const [old, next, third] = (await openTabs(3)) as [FakeTab, FakeTab, FakeTab];
    old.server.last().welcome();
    await advance(10);
    third.room.setPresence({ typing: true });
    await advance(10);
    expect(old.server.last().framesOf("presence").map((f) => f.state)).toEqual([{ typing: true }]);
    old.kill();
    await advance(10);
    next.server.last().welcome();
    await advance(10);
    expect(next.server.last().framesOf("presence").map((f) => f.state)).toEqual([{ typing: true }]);
  });

  it("hands the connection over when the leader tab leaves the room", async () => {
    const [leader, other] = (await openTabs(2)) as [FakeTab, FakeTab];
    leader.server.last().welcome();
    await advance(10);
    const states: string[] = [];
    other.room.on("state", (c) => states.push(c.newState));
    leader.room.leave();
    await advance(10);
    expect(leader.room.state).toBe("closed");
    expect(leader.server.last().closedByClient).toBe(true);
    expect((other.room as SharedRoom).isLeader).toBe(true);
    other.server.last().welcome();
    await advance(10);
    expect(other.room.state).toBe("connected");
    expect(states).toEqual(["connecting", "connected"]); // the tab's own room, opened on takeover
    const p = observe(other.room.publish("still here", { id: "o-1" }));
    await advance(10);
    other.server.last().ack("o-1", 1);
    await advance(10);
    expect(p.value).toEqual({ id: "o-1", seq: 1, duplicate: false });
  });

  it("a leaving leader forgets only its own tab's publishes from the stored outbox, and the next leader sends the rest", async () => {
    // One storage for all tabs, as IndexedDB is; "old-1" was queued by a page before these.
    const storage = memoryStorage();
    storage.add("lobby", "alice", { id: "old-1", data: "from a previous page", createdAt: 0 });
    const leader = browser.open(tokenFor("alice"), "lobby", { outbox: { storage } });
    await advance(10);
    const follower = browser.open(tokenFor("alice"), "lobby", { outbox: { storage } });
    await advance(10);
    const first = leader.server.last();
    first.welcome();
    await advance(10);
    const own = observe(leader.room.publish("mine", { id: "l-1" }));
    const theirs = observe(follower.room.publish("theirs", { id: "f-1" }));
    await advance(10);
    expect(first.publishedIds).toEqual(["old-1", "l-1", "f-1"]);
    const stored = async () => (await storage.load("lobby", "alice")).map((e) => e.id).sort();
    expect(await stored()).toEqual(["f-1", "l-1", "old-1"]);
    leader.room.leave();
    await advance(10);
    expect(own.error).toMatchObject({ code: "room_closed" });
    expect(await stored()).toEqual(["f-1", "old-1"]); // the other tab's and the previous page's stay
    expect((follower.room as SharedRoom).isLeader).toBe(true);
    const socket = follower.server.last();
    socket.welcome();
    await advance(10);
    expect(socket.publishedIds.sort()).toEqual(["f-1", "old-1"]); // each once, and not the rejected l-1
    socket.ack("old-1", 1);
    socket.ack("f-1", 2);
    await advance(10);
    expect(theirs.value).toEqual({ id: "f-1", seq: 2, duplicate: false });
    expect(await stored()).toEqual([]);
  });

  it("tells every tab what the leader's room restored from the durable outbox (restored event)", async () => {
    const storage = memoryStorage();
    storage.add("lobby", "alice", { id: "old-1", data: { text: "from a previous page" }, createdAt: 5 });
    const watchRestored = (tab: FakeTab) => {
      const lists: string[][] = [];
      tab.room.on("restored", (entries) => lists.push(entries.map((e) => `${e.id}:${JSON.stringify(e.data)}:${e.createdAt}`)));
      return lists;
    };
    const leader = browser.open(tokenFor("alice"), "lobby", { outbox: { storage } });
    const follower = browser.open(tokenFor("alice"), "lobby", { outbox: { storage } });
    const seen = [watchRestored(leader), watchRestored(follower)];
    await advance(10);
    leader.server.last().welcome();
    await advance(10);
    // A tab that opens while the entry is still unacked learns it from the leader's snapshot.
    const late = browser.open(tokenFor("alice"), "lobby", { outbox: { storage } });
    seen.push(watchRestored(late));
    await advance(10);
    expect(leader.server.last().publishedIds).toEqual(["old-1"]);
    for (const lists of seen) expect(lists).toEqual([['old-1:{"text":"from a previous page"}:5']]);
    leader.server.last().ack("old-1", 1);
    await advance(10);
    const afterAck = watchRestored(browser.open(tokenFor("alice"), "lobby", { outbox: { storage } }));
    await advance(10);
    expect(afterAck).toEqual([]);
  });

  it("raises no storage error at takeover with a durable outbox: the new leader does not store a resubmitted id twice", async () => {
    // As IndexedDB: shared by the tabs, loads asynchronously, and refuses a second row with the same id.
    const rows = new Map<string, OutboxEntry[]>();
    const key = (room: string, user: string) => `${room}/${user}`;
    const adds: string[] = [];
    const storage: OutboxStorage = {
      load: (room, user) => new Promise((resolve) => setTimeout(() => resolve([...(rows.get(key(room, user)) ?? [])]), 5)),
      add: async (room, user, entry) => {
        const list = rows.get(key(room, user)) ?? [];
        if (list.some((e) => e.id === entry.id)) throw new Error("ConstraintError: the unique index refuses a second row");
        adds.push(entry.id);
        rows.set(key(room, user), [...list, entry]);
      },
      remove: async (room, user, id) => void rows.set(key(room, user), (rows.get(key(room, user)) ?? []).filter((e) => e.id !== id)),
    };
    const tabs = [0, 1, 2].map(() => browser.open(tokenFor("alice"), "lobby", { outbox: { storage } }));
    const [old, next, third] = tabs as [FakeTab, FakeTab, FakeTab];
    const errors: string[] = [];
    for (const tab of [next, third]) tab.room.on("error", (e) => errors.push(`${e.code}: ${e.message}`)); // the surviving tabs
    await advance(10);
    old.server.last().welcome();
    await advance(10);
    const p = observe(third.room.publish("during the switch", { id: "t3-1" }));
    await advance(10);
    expect(old.server.last().publishedIds).toEqual(["t3-1"]);
    expect(adds).toEqual(["t3-1"]);
    old.kill();
    await advance(20);
    const socket = next.server.last();
    socket.welcome();
    await advance(20);
    expect(errors).toEqual([]);
    expect(adds).toEqual(["t3-1"]); // stored once, by the old leader
    expect(socket.publishedIds).toEqual(["t3-1"]);
    socket.ack("t3-1", 1, true);
    await advance(10);
    expect(p.value).toEqual({ id: "t3-1", seq: 1, duplicate: true });
    expect(rows.get(key("lobby", "alice"))).toEqual([]);
  });

  it("rejects a follower's open publishes with room_closed when it leaves", async () => {
    const [leader, follower] = (await openTabs(2)) as [FakeTab, FakeTab];
    leader.server.last().welcome();
    await advance(10);
    const p = observe(follower.room.publish("bye"));
    follower.room.leave();
    await advance(10);
    expect(p.status).toBe("rejected");
    expect((p.error as { code: string }).code).toBe("room_closed");
    expect(follower.room.state).toBe("closed");
    expect(leader.room.state).toBe("connected");
  });

  it("refuses an invalid publish id in the tab, with a TypeError as a room does", async () => {
    const [, follower] = (await openTabs(2)) as [FakeTab, FakeTab];
    await expect(follower.room.publish("x", { id: "has space" })).rejects.toBeInstanceOf(TypeError);
    expect(follower.room.pending).toEqual([]);
  });

  it("keeps tabs of different users apart: one socket each", async () => {
    const alice = browser.open(tokenFor("alice"));
    const bob = browser.open(tokenFor("bob"));
    await advance(10);
    expect(alice.server.sockets).toHaveLength(1);
    expect(bob.server.sockets).toHaveLength(1);
    expect((bob.room as SharedRoom).isLeader).toBe(true);
  });

  it("ignores what is not a valid tab message on the channel", async () => {
    const [leader, follower] = (await openTabs(2)) as [FakeTab, FakeTab];
    leader.server.last().welcome();
    await advance(10);
    const name = [...browser.holders.keys()][0]!;
    const seen = watch(follower.room);
    browser.inject(name, { v: 1, from: (leader.room as SharedRoom).tabId, t: "message", epoch: "epoch-1", message: { seq: "1" } });
    browser.inject(name, "garbage");
    browser.inject(name, { v: 2, from: "x", t: "leader" });
    await advance(10);
    expect(seen.seqs).toEqual([]);
    expect(browser.sockets).toHaveLength(1);
    leader.server.last().message(1);
    await advance(10);
    expect(seen.seqs).toEqual([1]);
  });

  it("falls back to a socket per tab where Web Locks or BroadcastChannel are missing (here: Node)", () => {
    const client = createClient({ url: BASE_URL, token: tokenFor("alice"), shareAcrossTabs: true, createSocket: () => ({}) as never });
    const room = client.room("lobby");
    expect(room).toBeInstanceOf(Room);
    client.close();
  });
});

describe("unverifiedSubject", () => {
  it("reads sub from a JWT and nothing from anything else", () => {
    expect(unverifiedSubject(tokenFor("ålice"))).toBe("ålice");
    expect(unverifiedSubject("not-a-jwt")).toBeUndefined();
    expect(unverifiedSubject("a.%%%.c")).toBeUndefined();
  });
});
