import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { connect, fetchWorker, httpPublish, token, uniqueRoom } from "./helpers.js";

const stub = (room: string) => env.ROOMS.getByName(room);

/**
 * Roomcast's tables in the room's SQLite (none for a room that never stored anything).
 * `_cf_*` tables are the platform's own (the alarm lives in `_cf_METADATA`); whether an
 * alarm is left is checked with getAlarm().
 */
async function storedTables(room: string): Promise<string[]> {
  return runInDurableObject(stub(room), (_instance, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((r) => r.name)
      .filter((name) => !name.startsWith("_cf_")),
  );
}

describe("a room that is only read stores nothing", () => {
  it("leaves no schema and no rows after history and presence reads", async () => {
    const room = uniqueRoom();
    const reader = await token({ sub: "reader", cap: { [room]: ["subscribe"] } });
    for (const path of [`/v1/rooms/${room}/messages`, `/v1/rooms/${room}/messages?after=3&limit=2`, `/v1/rooms/${room}/presence`]) {
      const res = await fetchWorker(path, { headers: { Authorization: `Bearer ${reader}` } });
      expect(res.status, path).toBe(200);
    }
    expect(await storedTables(room)).toEqual([]);
  });

  it("leaves no schema, no rows and no alarm after subscribers came, read and left", async () => {
    const room = uniqueRoom();
    const jwt = await token({ sub: "visitor", cap: { [room]: ["subscribe"] } });
    const a = await connect(room, jwt);
    const b = await connect(room, jwt);
    const welcome = await a.next("welcome");
    expect(welcome).toMatchObject({ seq: 0, replay: 0 });
    a.send({ type: "history", id: "h" });
    expect((await a.next("history")).messages).toEqual([]);
    for (const s of [a, b]) s.close();
    await Promise.all([a.closed, b.closed]);
    expect(await storedTables(room)).toEqual([]);
    // The liveness alarm that the connections set runs once more, finds nothing to do and goes.
    await runDurableObjectAlarm(stub(room));
    expect(await runInDurableObject(stub(room), (_i, state) => state.storage.getAlarm())).toBeNull();
    expect(await storedTables(room)).toEqual([]);
  });

  it("stores on the first publish, with the epoch its first visitors were told", async () => {
    const room = uniqueRoom();
    const early = await connect(room, await token({ sub: "early" }));
    const { epoch } = await early.next("welcome");
    expect(await storedTables(room)).toEqual([]);
    expect(await httpPublish(room, "first", 1)).toBe(1);
    expect(await storedTables(room)).toContain("messages");
    const res = await fetchWorker(`/v1/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${await token()}` } });
    expect(await res.json()).toMatchObject({ epoch, head: 1 });
    early.close();
  });
});

describe("a room that has stored nothing, across a wake with clients connected", () => {
  it("keeps the epoch its clients were told and its name (a refresh still works)", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice", cap: { [room]: ["subscribe"] } }));
    const { epoch } = await alice.next("welcome");
    expect(await storedTables(room)).toEqual([]);
    await evictDurableObject(stub(room), { webSockets: "hibernate" });

    // The woken room knows its name: a refresh for this room is granted.
    alice.send({ type: "refresh", id: "r", token: await token({ sub: "alice", cap: { [room]: ["subscribe"] } }) });
    expect((await alice.next("refreshed")).permissions).toEqual(["subscribe"]);
    // And its epoch: the first message is stored under the epoch alice holds, and a newcomer is told it.
    expect(await httpPublish(room, "first", 1)).toBe(1);
    expect((await alice.next("message")).seq).toBe(1);
    const late = await connect(room, await token({ sub: "late" }));
    expect((await late.next("welcome")).epoch).toBe(epoch);
    const again = await connect(room, await token({ sub: "alice2" }), { resume: { epoch, after: 1 } });
    expect((await again.next("welcome")).resume).toEqual({ recovered: true });
    for (const s of [alice, late, again]) s.close();
  });
});
