import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DIRECTORY_SHARDS, shardName, shardOf } from "../src/directory/shard.js";
import { STALE_MS, staleAfterMs } from "../src/directory/directory.js";
import { ACTIVE_REPORT_MS, DirectoryReporter } from "../src/directory/report.js";
import { connect, publish, token, uniqueRoom } from "./helpers.js";

const shardFor = (room: string) => env.DIRECTORY!.getByName(shardName(shardOf(room)));
const listed = async (room: string) => (await shardFor(room).list(null, 500)).rooms.find((r) => r.room === room);

/** Polls `check` until it is true (reports are fire-and-forget); fails after `ms`. */
async function eventually(check: () => Promise<boolean>, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("shards", () => {
  it("picks a stable shard in 0..15 and spreads names over all of them", () => {
    expect(shardOf("demo:lobby")).toBe(shardOf("demo:lobby"));
    // FNV-1a 32 of "a" is 0xe40c292c; mod 16 = 12. Pinned: changing the hash moves every room.
    expect(shardOf("a")).toBe(0xe40c292c % 16);
    const counts = new Array(DIRECTORY_SHARDS).fill(0);
    for (let i = 0; i < 1_600; i++) counts[shardOf(`team-${i}:general`)]++;
    for (const n of counts) expect(n).toBeGreaterThan(50); // 100 expected each
  });
});

describe("the rooms directory", () => {
  it("lists a room from its first connection and forgets it once empty", async () => {
    const room = uniqueRoom("dir");
    expect(await listed(room)).toBeUndefined();
    const a = await connect(room, await token({ sub: "alice" }));
    await a.next("welcome");
    await eventually(async () => (await listed(room)) !== undefined, "the room is listed");
    const entry = await listed(room);
    expect(entry).toMatchObject({ room, connections: 1 });
    expect(entry!.firstSeenAt).toBeLessThanOrEqual(Date.now());
    const b = await connect(room, await token({ sub: "bob" }));
    await b.next("welcome");
    a.ws.close(1000);
    await a.closed;
    // One connection is left: still listed.
    await new Promise((r) => setTimeout(r, 100));
    expect(await listed(room)).toBeDefined();
    b.ws.close(1000);
    await b.closed;
    await eventually(async () => (await listed(room)) === undefined, "the empty room is forgotten");
  });

  it("forgets a room whose last user was kicked", async () => {
    const room = uniqueRoom("dir");
    const a = await connect(room, await token({ sub: "alice" }));
    await a.next("welcome");
    await eventually(async () => (await listed(room)) !== undefined, "the room is listed");
    await env.ROOMS.getByName(room).kick("alice");
    await eventually(async () => (await listed(room)) === undefined, "the room is forgotten");
  });

  it("drops rows that stopped reporting (stale) and ignores reports older than the row", async () => {
    const room = uniqueRoom("dir");
    const shard = shardFor(room);
    const now = Date.now();
    await shard.report({ kind: "joined-first", room, connections: 1, at: now - STALE_MS - 1_000 });
    expect((await shard.list(null, 500)).rooms.some((r) => r.room === room)).toBe(false);

    await shard.report({ kind: "joined-first", room, connections: 1, at: now });
    await shard.report({ kind: "active", room, connections: 3, at: now - 10 }); // overtaken: ignored
    expect(await listed(room)).toMatchObject({ connections: 1, lastActivityAt: now, firstSeenAt: now });
    await shard.report({ kind: "empty", room, connections: 0, at: now - 5 }); // older than the row: ignored
    expect(await listed(room)).toBeDefined();
    await shard.report({ kind: "active", room, connections: 2, at: now + 10 });
    expect(await listed(room)).toMatchObject({ connections: 2, lastActivityAt: now + 10, firstSeenAt: now });
    await shard.report({ kind: "empty", room, connections: 0, at: now + 20 });
    expect(await listed(room)).toBeUndefined();
  });

  it("refuses malformed reports", async () => {
    const shard = shardFor("x");
    for (const bad of [
      { kind: "joined-first", room: "bad room", connections: 1, at: 1 },
      { kind: "nope", room: "x", connections: 1, at: 1 },
      { kind: "active", room: "x", connections: -1, at: 1 },
      { kind: "active", room: "x".repeat(200), connections: 1, at: 1 },
    ]) {
      expect(await shard.report(bad as never)).toMatchObject({ ok: false });
    }
    expect((await shard.list(null, 500)).rooms.some((r) => r.room === "x")).toBe(false);
  });

  it("pages by room name", async () => {
    const prefix = uniqueRoom("page");
    const shard = env.DIRECTORY!.getByName(shardName(0));
    const names = Array.from({ length: 5 }, (_, i) => `${prefix}-${i}`);
    for (const room of names) await shard.report({ kind: "joined-first", room, connections: 1, at: Date.now() });
    const seen: string[] = [];
    let after: string | null = `${prefix}-`;
    for (;;) {
      const page = await shard.list(after, 2);
      expect(page.rooms.length).toBeLessThanOrEqual(2);
      seen.push(...page.rooms.map((r) => r.room).filter((r) => r.startsWith(prefix)));
      if (!page.more) break;
      after = page.rooms.at(-1)!.room;
    }
    expect(seen).toEqual(names);
    for (const room of names) await shard.report({ kind: "empty", room, connections: 0, at: Date.now() });
  });

  it("a failing directory never fails a join (nor a publish, nor a leave)", async () => {
    const room = uniqueRoom("dir");
    const shard = shardFor(room);
    // Break the shard for real: every report it receives now throws (no such table).
    await runInDurableObject(shard, (_instance, state) => state.storage.sql.exec("ALTER TABLE rooms RENAME TO rooms_off"));
    try {
      const a = await connect(room, await token({ sub: "alice" }));
      await a.next("welcome");
      expect((await publish(a, "m1", { n: 1 })).seq).toBe(1);
      const b = await connect(room, await token({ sub: "bob" }));
      await b.next("welcome");
      a.ws.close(1000);
      b.ws.close(1000);
      await a.closed;
      await b.closed;
    } finally {
      await runInDurableObject(shard, (_instance, state) => state.storage.sql.exec("ALTER TABLE rooms_off RENAME TO rooms"));
    }
  });
});

describe("the room's reporter", () => {
  type Sent = { kind: string; room: string; connections: number; at: number };
  const fake = (report: (r: Sent) => Promise<{ ok: boolean }>) => {
    const waited: Promise<unknown>[] = [];
    const namespace = { getByName: () => ({ report }) } as unknown as NonNullable<typeof env.DIRECTORY>;
    return { waited, reporter: new DirectoryReporter(namespace, (p) => waited.push(p)) };
  };

  it("reports the first join, activity at most once a minute, and empty", async () => {
    const sent: Sent[] = [];
    const { reporter, waited } = fake(async (r) => (sent.push(r), { ok: true }));
    reporter.joined("r1", 1, 1_000);
    reporter.joined("r1", 2, 2_000); // within the minute: nothing
    reporter.active("r1", 2, 30_000); // nothing
    reporter.active("r1", 2, 1_000 + ACTIVE_REPORT_MS);
    reporter.left("r1", 1, 70_000); // someone is left: nothing
    reporter.active("r1", 0, 200_000); // no connections: no activity
    reporter.left("r1", 0, 200_001);
    reporter.joined(undefined, 1, 1); // a room without a name yet never reports
    await Promise.all(waited);
    expect(sent.map((r) => [r.kind, r.connections, r.at])).toEqual([
      ["joined-first", 1, 1_000],
      ["active", 2, 1_000 + ACTIVE_REPORT_MS],
      ["empty", 0, 200_001],
    ]);
  });

  it("swallows a failing or missing directory (logged, never thrown)", async () => {
    const { reporter, waited } = fake(() => Promise.reject(new Error("shard down")));
    expect(() => reporter.joined("r1", 1)).not.toThrow();
    await Promise.all(waited); // the rejection was caught
    const throwing = new DirectoryReporter({ getByName: () => { throw new Error("no namespace"); } } as never, () => {});
    expect(() => throwing.joined("r1", 1)).not.toThrow();
    expect(() => new DirectoryReporter(undefined, () => {}).joined("r1", 1)).not.toThrow();
  });
});

describe("staleness", () => {
  it("waits at least three liveness timeouts before taking a silent room for gone (its only reports may be its liveness alarms)", () => {
    expect(staleAfterMs(env)).toBe(STALE_MS); // 60 s liveness: 10 minutes
    expect(staleAfterMs({ ...env, LIVENESS_TIMEOUT_SECONDS: "3600" })).toBe(3 * 3_600_000);
  });
});
