import { describe, expect, it } from "vitest";
import { PresenceFanout, mergeDiffs } from "../src/room/presence-fanout.js";
import type { Member, PresenceDiff } from "../src/room/presence.js";
import { fakeConnection } from "./fakes.js";

const member = (userId: string, state: unknown = null): Member => ({ userId, connections: [{ connectionId: `${userId}-c`, state, joinedAt: 0 }] });
const diff = (d: Partial<PresenceDiff>): PresenceDiff => ({ joins: [], updates: [], leaves: [], ...d });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Applies diffs the way the protocol tells clients to: set joins and updates, then delete leaves. */
function apply(start: Map<string, Member>, diffs: readonly PresenceDiff[]): Map<string, Member> {
  const map = new Map(start);
  for (const d of diffs) {
    for (const m of [...d.joins, ...d.updates]) map.set(m.userId, m);
    for (const id of d.leaves) map.delete(id);
  }
  return map;
}

type Frame = { type: string; joins: Member[]; updates: Member[]; leaves: string[] };
function fakeSocket() {
  const { sent, conn } = fakeConnection();
  return {
    get frames(): Frame[] {
      return sent.map((t) => JSON.parse(t));
    },
    ws: conn,
  };
}

describe("mergeDiffs", () => {
  it("ends where applying every diff in order ends, with each user once", () => {
    const start = new Map([
      ["old", member("old")],
      ["bob", member("bob")],
      ["carol", member("carol")],
    ]);
    const diffs = [
      diff({ joins: [member("ann")] }),
      diff({ updates: [member("bob", { typing: true })] }),
      diff({ leaves: ["old"] }),
      diff({ joins: [member("dan")] }),
      diff({ leaves: ["dan"] }), // joined and left inside the window
      diff({ leaves: ["carol"] }),
      diff({ joins: [member("carol", "back")] }), // left and came back
      diff({ updates: [member("ann", "typing")] }),
    ];
    const merged = mergeDiffs(diffs);
    expect(apply(start, [merged])).toEqual(apply(start, diffs));
    expect(merged.joins).toEqual([member("ann", "typing")]);
    expect(merged.updates).toEqual([member("bob", { typing: true }), member("carol", "back")]);
    // dan joined and left inside the window: still a leave, for whoever saw the join
    // in a presence_state taken inside the window (see the next test).
    expect(merged.leaves).toEqual(["old", "dan"]);
    const ids = [...merged.joins, ...merged.updates].map((m) => m.userId).concat(merged.leaves);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("PresenceFanout", () => {
  it("holds changes for the delay and sends them as one frame, to every socket", async () => {
    const a = fakeSocket();
    const joiner = fakeSocket();
    const fanout = new PresenceFanout({ targets: () => [a.ws, joiner.ws], slow: () => {}, budget: Infinity }, 50);
    for (let i = 1; i <= 20; i++) fanout.diff(diff({ joins: [member(`u${i}`)] }), joiner.ws);
    expect(a.frames).toHaveLength(0);
    await sleep(120);
    expect(a.frames).toHaveLength(1);
    expect(a.frames[0]!.joins.map((m) => m.userId)).toEqual(Array.from({ length: 20 }, (_, i) => `u${i + 1}`));
    // A merged diff goes to everyone, the joiner included (its own join is harmless to apply).
    expect(joiner.frames).toEqual(a.frames);
    // The next change opens a new window.
    fanout.diff(diff({ leaves: ["u1"] }));
    await sleep(120);
    expect(a.frames.map((f) => f.leaves)).toEqual([[], ["u1"]]);
  });

  it("with a delay of 0 sends every change at once, to everyone but the socket it came from", () => {
    const a = fakeSocket();
    const joiner = fakeSocket();
    const fanout = new PresenceFanout({ targets: () => [a.ws, joiner.ws], slow: () => {}, budget: Infinity }, 0);
    for (let i = 1; i <= 5; i++) fanout.diff(diff({ joins: [member(`u${i}`)] }), joiner.ws);
    expect(a.frames).toHaveLength(5);
    expect(joiner.frames).toEqual([]);
  });

  it("sends a join and a leave inside one window as a leave, so a view taken inside the window ends right", () => {
    // A connection joining inside the window gets a presence_state taken at that moment
    // (y listed), then the merged diff: it must remove y. An older connection never
    // listed y, and deleting an unknown user changes nothing.
    const joins = diff({ joins: [member("y")] });
    const leaves = diff({ leaves: ["y"] });
    const merged = mergeDiffs([diff({ joins: [member("x")] }), joins, leaves]);
    const joinedInside = apply(new Map(), [diff({ joins: [member("x")] }), joins]); // its presence_state
    expect([...apply(joinedInside, [merged]).keys()]).toEqual(["x"]);
    expect([...apply(new Map(), [merged]).keys()]).toEqual(["x"]);
    expect(merged.leaves).toEqual(["y"]);
  });
});

describe("PresenceFanout and flow control", () => {
  it("counts every diff against the recipient's budget and hands a recipient already past it to slow(), unsent", () => {
    const reader = fakeConnection();
    const stalled = fakeConnection();
    const slow: unknown[] = [];
    const fanout = new PresenceFanout({ targets: () => [reader.conn, stalled.conn], slow: (c) => slow.push(...c), budget: 150 }, 0);
    fanout.diff(diff({ joins: [member("a", "x".repeat(100))] })); // ~190 characters each: both now past 150
    expect(slow).toEqual([]);
    reader.conn.flow.progress(0); // the reader confirms; the stalled one never does
    fanout.diff(diff({ leaves: ["a"] }));
    expect(slow).toEqual([stalled.conn]);
    expect(reader.sent).toHaveLength(2);
    expect(stalled.sent).toHaveLength(1);
  });
});
