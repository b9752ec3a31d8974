import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ServerFrame } from "@roomcast/protocol";
import { connect, listedBy, presentUsers, token, uniqueRoom } from "./helpers.js";

// Closes that arrive right after a wake. The runtime leaves sockets whose close is
// already queued out of getWebSockets(), so the room meets them only when their
// close event arrives; every one of them must still leave presence (after grace).
// vitest.config.ts: PRESENCE_GRACE_SECONDS=2, PRESENCE_MAX_DELAY_MS=0, MAX_CONNECTIONS_PER_ROOM=4.

type Diff = Extract<ServerFrame, { type: "presence_diff" }>;
const stub = (room: string) => env.ROOMS.getByName(room);

/** Ends every grace period and runs the alarm, as the platform would once they are due. */
async function endGracePeriods(room: string): Promise<void> {
  await runInDurableObject(stub(room), (_instance, state) => {
    state.storage.sql.exec("UPDATE presence_grace SET grace_until = 0");
  });
  await evictDurableObject(stub(room), { webSockets: "hibernate" });
  expect(await runDurableObjectAlarm(stub(room))).toBe(true);
}

async function closeTogetherAfterWake(n: number) {
  const room = uniqueRoom();
  const watcher = await connect(room, await token({ sub: "watcher" }));
  const users = ["u1", "u2", "u3"].slice(0, n);
  const sockets = [];
  for (const sub of users) sockets.push(await connect(room, await token({ sub })));
  await watcher.until((frames) => frames.filter((f) => f.type === "presence_diff").length === n);
  expect(listedBy(watcher)).toEqual(["watcher", ...users].sort());

  await evictDurableObject(stub(room), { webSockets: "hibernate" });
  for (const s of sockets) s.close(); // all at once: the first close wakes the room
  await Promise.all(sockets.map((s) => s.closed));
  await endGracePeriods(room);
  await watcher.until((frames) => (frames.filter((f) => f.type === "presence_diff") as Diff[]).flatMap((d) => d.leaves).length >= n);
  expect(listedBy(watcher)).toEqual(["watcher"]);
  expect(await presentUsers(room)).toEqual(["watcher"]);
  watcher.close();
}

describe("presence after a wake", () => {
  it("announces the leave of two users who close right after a wake", () => closeTogetherAfterWake(2));

  it("announces the leave of three users who close right after a wake", () => closeTogetherAfterWake(3));

  for (const wake of [false, true]) {
    it(`announces the leave of a member whose refresh dropped presence${wake ? ", after a wake" : ""}`, async () => {
      const room = uniqueRoom();
      const watcher = await connect(room, await token({ sub: "watcher" }));
      const alice = await connect(room, await token({ sub: "alice" }));
      await watcher.next("presence_diff");
      alice.send({ type: "refresh", id: "r", token: await token({ sub: "alice", cap: { [room]: ["subscribe"] } }) });
      expect((await alice.next("refreshed")).permissions).toEqual(["subscribe"]);
      // The room rebuilds presence from attachments; alice was announced at her join,
      // whatever her permissions are now.
      if (wake) await evictDurableObject(stub(room), { webSockets: "hibernate" });
      expect(await presentUsers(room)).toEqual(["alice", "watcher"]);
      alice.close();
      await alice.closed;
      await endGracePeriods(room);
      expect(((await watcher.next("presence_diff")) as Diff).leaves).toEqual(["alice"]);
      expect(listedBy(watcher)).toEqual(["watcher"]);
      watcher.close();
    });
  }

  it("never announces a member whose token did not grant presence, across a wake and a refresh that grants it", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const quiet = await connect(room, await token({ sub: "quiet", cap: { [room]: ["subscribe"] } }));
    await quiet.next("welcome");
    quiet.send({ type: "refresh", id: "r", token: await token({ sub: "quiet" }) });
    expect((await quiet.next("refreshed")).permissions).toContain("presence");
    await evictDurableObject(stub(room), { webSockets: "hibernate" });
    expect(await presentUsers(room)).toEqual(["watcher"]);
    quiet.close();
    await quiet.closed;
    await new Promise((r) => setTimeout(r, 100));
    expect(watcher.frames.filter((f) => f.type === "presence_diff")).toEqual([]);
    watcher.close();
  });
});
