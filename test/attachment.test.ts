import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { connect, httpPublish, presentUsers, publish, token, uniqueRoom } from "./helpers.js";

const stub = (room: string) => env.ROOMS.getByName(room);

/**
 * Rewrites every socket's attachment in the layout the previous release wrote
 * (v1: `{v:1, rc:{connectionId, userId, permissions, expiresAt, protocol, joinedAt,
 * state, replayedTo?}}`, as src/room/attachment.ts of that release defined it), as
 * if the sockets had hibernated before a deploy.
 */
async function downgradeToV1(room: string): Promise<void> {
  await runInDurableObject(stub(room), (_instance, state) => {
    for (const ws of state.getWebSockets()) {
      const { rc } = ws.deserializeAttachment() as { rc: Record<string, unknown> };
      const { announced: _a, confirmed: _c, closing: _x, ...v1 } = rc;
      ws.serializeAttachment({ v: 1, rc: v1 });
    }
  });
  await evictDurableObject(stub(room), { webSockets: "hibernate" });
}

describe("socket attachments from the previous release (v1)", () => {
  it("are read after a deploy: identity, permissions, presence, and the leave on close", async () => {
    const room = uniqueRoom();
    const watcher = await connect(room, await token({ sub: "watcher" }));
    const alice = await connect(room, await token({ sub: "alice" }));
    const reader = await connect(room, await token({ sub: "reader", cap: { [room]: ["subscribe"] } }));
    await watcher.next("presence_diff");
    await downgradeToV1(room);

    expect(await presentUsers(room)).toEqual(["alice", "watcher"]);
    expect(await publish(alice, "after-deploy", 1)).toMatchObject({ seq: 1, duplicate: false });
    expect((await reader.next("message")).id).toBe("after-deploy");
    reader.send({ type: "publish", id: "nope", data: 1 });
    expect(await reader.next("error")).toMatchObject({ code: "forbidden", id: "nope" });

    // The next write of the attachment is v2.
    alice.send({ type: "presence", id: "p", state: { busy: true } });
    await watcher.until((frames) => frames.some((f) => f.type === "presence_diff" && f.updates.length > 0));
    const layouts = await runInDurableObject(stub(room), (_i, state) =>
      state.getWebSockets().map((ws) => (ws.deserializeAttachment() as { v: number; rc: { userId: string } })),
    );
    expect(layouts.find((a) => a.rc.userId === "alice")?.v).toBe(2);

    alice.close();
    await alice.closed;
    await runInDurableObject(stub(room), (_instance, state) => state.storage.sql.exec("UPDATE presence_grace SET grace_until = 0"));
    await runDurableObjectAlarm(stub(room));
    await watcher.until((frames) => frames.some((f) => f.type === "presence_diff" && f.leaves.includes("alice")));
    expect(await presentUsers(room)).toEqual(["watcher"]);
    for (const s of [watcher, reader]) s.close();
  });

  it("resume a replay that was in flight under v1 (replayedTo) where it stopped", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    const welcome = await alice.next("welcome");
    for (let i = 1; i <= 12; i++) await httpPublish(room, `m${i}`, i);
    // A reader resuming from 0 gets 12 messages in pages of 5 (REPLAY_PAGE_SIZE).
    const reader = await connect(room, await token({ sub: "reader" }), { resume: { epoch: welcome.epoch, after: 0 } });
    await reader.until((frames) => frames.filter((f) => f.type === "message").length === 12);
    // Pretend the room hibernated mid-replay under v1, with the reader at seq 5.
    await runInDurableObject(stub(room), (_instance, state) => {
      for (const ws of state.getWebSockets()) {
        const { rc } = ws.deserializeAttachment() as { rc: Record<string, unknown> };
        if (rc.userId !== "reader") continue;
        const { announced: _a, confirmed: _c, closing: _x, ...v1 } = rc;
        ws.serializeAttachment({ v: 1, rc: { ...v1, replayedTo: 5 } });
      }
    });
    await evictDurableObject(stub(room), { webSockets: "hibernate" });
    await httpPublish(room, "wake", 13); // wakes the room; the reader's replay restarts at 6
    await reader.until((frames) => frames.some((f) => f.type === "message" && f.id === "wake"));
    const seqs = reader.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);
    // 1-12 first time round, then 6-12 again from the restarted replay, then 13 live once.
    expect(seqs.slice(12)).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
    for (const s of [alice, reader]) s.close();
  });
});
