/**
 * Hibernated sockets from earlier code (issue #14 §2): real sockets of a room get their
 * attachments written by the old code's own writer (test/generated/, extracted from git
 * by test/old-attachments.setup.ts), the room hibernates, and the wake migrates them
 * (src/room/migrate-room.ts): every session intact, older layouts rewritten.
 *
 * The session values are the room's own (the sockets' real sessions), passed through the
 * old module's schema, which keeps exactly the fields that code knew; the layout is
 * whatever its writer produces.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
// Generated at test time (ignored by git), so absent for a typecheck before the first test run.
// @ts-ignore
import * as release from "./generated/attachment-release.js";
// @ts-ignore
import * as layoutV1 from "./generated/attachment-v1.js";
import { connect, httpPublish, presentUsers, publish, token, uniqueRoom, type TestSocket } from "./helpers.js";

const stub = (room: string) => env.ROOMS.getByName(room);
type Attachment = { v: number; rc: Record<string, unknown> & { userId: string; connectionId: string; permissions: string[] } };

/**
 * Rewrites every socket's attachment with an old writer (`release` for even sockets,
 * `v1` for odd ones when `mixed`), returns what each socket must read after the wake,
 * and hibernates the room. `meta.attachment_version` is what this code records after
 * its pass; the old code never wrote it, so it is removed, as in a database it left.
 */
async function writeWithOldCode(room: string, mixed: boolean): Promise<Map<string, { from: string; expected: Record<string, unknown> }>> {
  const expected = await runInDurableObject(stub(room), (_instance, state) => {
    const out = new Map<string, { from: string; expected: Record<string, unknown> }>();
    state.getWebSockets().forEach((ws, i) => {
      const { rc } = ws.deserializeAttachment() as Attachment;
      if (mixed && i % 2 === 1) {
        const session = v.parse(layoutV1.SessionV1, rc);
        layoutV1.writeSession(ws, session);
        // v1 had no `announced`: this code decides it from the permissions, as v1 did.
        out.set(rc.connectionId, { from: "v1", expected: { ...session, announced: session.permissions.includes("presence") } });
      } else {
        const session = v.parse(release.SessionV2, rc);
        release.writeAttachment(ws, session);
        out.set(rc.connectionId, { from: "release", expected: session });
      }
    });
    const hasMeta = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'meta'").toArray().length > 0;
    if (hasMeta) state.storage.sql.exec("DELETE FROM meta WHERE key = 'attachment_version'");
    return out;
  });
  await evictDurableObject(stub(room), { webSockets: "hibernate" });
  return expected;
}

/** Each socket's attachment as stored right now (reading it from inside wakes the room: the migration runs first). */
const attachments = (room: string) =>
  runInDurableObject(stub(room), (_instance, state) => state.getWebSockets().map((ws) => ws.deserializeAttachment() as Attachment));

describe("hibernated sockets written by earlier code, after a deploy", () => {
  it("wake with every session intact and v1 layouts rewritten as v2 before any event reads them", async () => {
    const room = uniqueRoom();
    const sockets: TestSocket[] = [];
    for (const sub of ["alice", "bob", "carol", "dave"]) sockets.push(await connect(room, await token({ sub })));
    expect(await publish(sockets[0]!, "before", 1)).toMatchObject({ seq: 1 }); // a stored room
    sockets[1]!.send({ type: "presence", id: "p1", state: { mood: "busy" } });
    await sockets[0]!.until((frames) => frames.some((f) => f.type === "presence_diff" && f.updates.length > 0));

    const expected = await writeWithOldCode(room, true);
    expect([...expected.values()].map((e) => e.from).sort()).toEqual(["release", "release", "v1", "v1"]);
    const raw = await attachments(room);
    expect(raw).toHaveLength(4);
    for (const a of raw) {
      expect(a.v).toBe(2);
      expect(a.rc).toEqual(expected.get(a.rc.connectionId)!.expected);
    }

    // And the room works on them: presence (with bob's state), live delivery, the sequence.
    expect(await presentUsers(room)).toEqual(["alice", "bob", "carol", "dave"]);
    expect(await httpPublish(room, "after", 2)).toBe(2);
    for (const s of sockets) await s.until((frames) => frames.some((f) => f.type === "message" && f.id === "after"));
    for (const s of sockets) s.close();
  });

  it("a room that never stored anything is migrated too (it has no meta: the pass runs at every start)", async () => {
    const room = uniqueRoom();
    const sockets = [await connect(room, await token({ sub: "erin" })), await connect(room, await token({ sub: "frank" }))];
    const expected = await writeWithOldCode(room, true);
    const raw = await attachments(room);
    expect(raw.map((a) => a.v)).toEqual([2, 2]);
    for (const a of raw) expect(a.rc).toEqual(expected.get(a.rc.connectionId)!.expected);
    const lazy = await runInDurableObject(stub(room), (_i, state) => state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'meta'").toArray().length);
    expect(lazy).toBe(0); // the migration wrote nothing to SQLite for it
    expect(await presentUsers(room)).toEqual(["erin", "frank"]);
    for (const s of sockets) s.close();
  });

  it("the previous release's own layout (v2) is read as it is and left alone", async () => {
    const room = uniqueRoom();
    const sockets = [await connect(room, await token({ sub: "gina" })), await connect(room, await token({ sub: "hal", cap: { [room]: ["subscribe"] } }))];
    await httpPublish(room, "m1", 1);
    const expected = await writeWithOldCode(room, false);
    const raw = await attachments(room);
    for (const a of raw) expect(a).toEqual({ v: 2, rc: expected.get(a.rc.connectionId)!.expected });
    expect(await presentUsers(room)).toEqual(["gina"]); // hal cannot be seen (no presence permission)
    sockets[1]!.send({ type: "publish", id: "nope", data: 1 });
    expect(await sockets[1]!.next("error")).toMatchObject({ code: "forbidden", id: "nope" });
    for (const s of sockets) s.close();
  });
});
