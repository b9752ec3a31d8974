/**
 * Migration 4's running byte total (src/room/schema.ts, message-log.ts) and the
 * RETENTION_MAX_BYTES retention it serves (lifecycle.ts `trim`), on the log of a real
 * room's storage. A new MessageLog on the same storage is what a wake builds; the room's
 * own instance never writes here (a fresh room that stores nothing by itself).
 * The real-old-state migration is packages/client/test/integration/migration.test.ts.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readLimits } from "../src/config.js";
import { trim } from "../src/room/lifecycle.js";
import { MessageLog } from "../src/room/message-log.js";
import { SCHEMA_VERSION } from "../src/room/schema.js";
import { uniqueRoom } from "./helpers.js";

const inRoom = <T>(fn: (storage: DurableObjectStorage) => T) =>
  runInDurableObject(env.ROOMS.getByName(uniqueRoom("bytes")), (_instance, state) => fn(state.storage));
const utf8 = (s: string) => new TextEncoder().encode(s).length;
/** No replay in flight: nothing holds retention back. */
const noReplays = { lowestCursor: () => undefined } as unknown as Parameters<typeof trim>[0]["replays"];

describe("the log's byte total (migration 4)", () => {
  it("counts each message's UTF-8 size, exactly, across restarts between and at checkpoints", async () => {
    const result = await inRoom((storage) => {
      const log = new MessageLog(storage);
      expect(log.schemaVersion).toBeUndefined(); // lazy: no schema until the first write
      let expected = 0;
      const totals: number[] = [];
      for (let i = 1; i <= 1_203; i++) {
        const data = JSON.stringify({ text: ["plain", "naïve café", "😀 emoji", "中文字符"][i % 4], i });
        expected += utf8(data);
        log.append(`user-${i % 3}`, `m${i}`, data, 1_000 + i);
        if (i === 500 || i === 1_000 || i === 1_203) totals.push(new MessageLog(storage).bytes); // a wake: checkpoint + tail
      }
      log.append("user-1", "m7", "\"a duplicate counts nothing\"", 9_999);
      const stored = storage.sql.exec<{ n: number }>("SELECT sum(bytes) AS n FROM messages").one().n;
      const meta = Object.fromEntries(storage.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key LIKE 'log_bytes%'").toArray().map((r) => [r.key, r.value]));
      return { expected, bytes: log.bytes, afterWake: new MessageLog(storage).bytes, totals, stored, meta, version: log.schemaVersion };
    });
    expect(result.version).toBe(SCHEMA_VERSION);
    expect(result.bytes).toBe(result.expected);
    expect(result.stored).toBe(result.expected);
    expect(result.afterWake).toBe(result.expected);
    expect(result.totals).toHaveLength(3);
    // Checkpoints every 500 appends: a wake sums at most the rows since the last one.
    expect(result.meta.log_bytes_seq).toBe("1000");
  });

  it("RETENTION_MAX_BYTES deletes the oldest messages first, just enough, and the total follows", async () => {
    const result = await inRoom((storage) => {
      const log = new MessageLog(storage);
      const data = JSON.stringify("x".repeat(98)); // 100 bytes each
      for (let i = 1; i <= 50; i++) log.append("alice", `m${i}`, data, Date.now());
      const limits = { ...readLimits(env), RETENTION_MAX_BYTES: 1_024, RETENTION_MAX_MESSAGES: 10_000 };
      const again = trim({ log, limits, replays: noReplays }, Date.now());
      const first = { oldest: log.oldestSeq, head: log.head, bytes: log.bytes, again };
      trim({ log, limits, replays: noReplays }, Date.now()); // idempotent
      const woken = new MessageLog(storage);
      return { first, second: { oldest: log.oldestSeq, bytes: log.bytes }, woken: { oldest: woken.oldestSeq, bytes: woken.bytes, head: woken.head } };
    });
    // 50 × 100 bytes over a 1,024-byte limit: the newest 10 (1,000 bytes) stay.
    expect(result.first).toMatchObject({ oldest: 41, head: 50, bytes: 1_000 });
    expect(result.second).toEqual({ oldest: 41, bytes: 1_000 });
    expect(result.woken).toEqual({ oldest: 41, bytes: 1_000, head: 50 });
  });

  it("RETENTION_MAX_BYTES over more than one batch comes back for the rest", async () => {
    const result = await inRoom((storage) => {
      const log = new MessageLog(storage);
      for (let i = 1; i <= 7_000; i++) log.append("alice", `m${i}`, "1", 0); // 1 byte each
      const limits = { ...readLimits(env), RETENTION_MAX_BYTES: 1_024, RETENTION_MAX_MESSAGES: 10_000_000, RETENTION_MAX_AGE_SECONDS: 3_650 * 24 * 3_600 };
      const now = 1_000_000;
      const next = trim({ log, limits, replays: noReplays }, now);
      const afterFirst = log.oldestSeq;
      trim({ log, limits, replays: noReplays }, now);
      return { next, afterFirst, oldest: log.oldestSeq, bytes: log.bytes, now };
    });
    expect(result.afterFirst).toBe(5_001); // one batch of 5,000 (TRIM_BATCH)
    expect(result.next).toBe(result.now + 100); // more to do: soon
    expect(result.oldest).toBe(7_000 - 1_024 + 1);
    expect(result.bytes).toBe(1_024);
  });
});
