/**
 * The log's append on the publish path (src/room/message-log.ts): one statement per
 * publish and no savepoint of its own, except for the append whose bytes checkpoint is
 * due; an INSERT that fails changes nothing.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MessageLog } from "../src/room/message-log.js";
import { uniqueRoom } from "./helpers.js";

const inRoom = <T>(fn: (storage: DurableObjectStorage) => T) =>
  runInDurableObject(env.ROOMS.getByName(uniqueRoom("append")), (_instance, state) => fn(state.storage));

/**
 * The room's storage, counting statements and transactions; `failNext` makes the next INSERT
 * into messages throw, `failMetaKey` the next write of that meta key.
 */
function counting(storage: DurableObjectStorage) {
  const counts = { exec: 0, transactions: 0, failNext: false, failMetaKey: "" };
  const sql = new Proxy(storage.sql, {
    get(target, key) {
      if (key === "exec") {
        return (query: string, ...bindings: unknown[]) => {
          counts.exec++;
          if (counts.failNext && query.startsWith("INSERT INTO messages")) {
            counts.failNext = false;
            throw new Error("disk full (test)");
          }
          if (counts.failMetaKey && query.startsWith("INSERT INTO meta") && bindings[0] === counts.failMetaKey) {
            counts.failMetaKey = "";
            throw new Error("meta write failed (test)");
          }
          return target.exec(query, ...bindings);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const wrapped = new Proxy(storage, {
    get(target, key) {
      if (key === "sql") return sql;
      if (key === "transactionSync") {
        return <T>(fn: () => T) => {
          counts.transactions++;
          return target.transactionSync(fn);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { storage: wrapped, counts };
}

describe("MessageLog.append", () => {
  it("runs one statement per publish, in a transaction of its own only when the bytes checkpoint is due", async () => {
    const result = await inRoom((real) => {
      const { storage, counts } = counting(real);
      const log = new MessageLog(storage);
      log.append("u", "first", "1", 1); // creates the schema (its own transactions)
      counts.exec = 0;
      counts.transactions = 0;
      for (let i = 0; i < 600; i++) log.append("u", `m${i}`, `{"i":${i}}`, 2 + i);
      const afterPublishes = { ...counts };
      counts.exec = 0;
      counts.transactions = 0;
      const duplicate = log.append("u", "m7", `"again"`, 9_999);
      return { afterPublishes, afterDuplicate: { ...counts }, duplicate, head: log.head, size: log.size, rows: real.sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages").one().n };
    });
    // 600 INSERTs, plus the checkpoint's two meta writes at seq 500 inside one transaction.
    expect(result.afterPublishes.transactions).toBe(1);
    expect(result.afterPublishes.exec).toBe(602);
    // A repeat: the INSERT that did nothing and the lookup of the original seq; no transaction.
    expect(result.afterDuplicate).toMatchObject({ exec: 2, transactions: 0 });
    expect(result.duplicate).toEqual({ seq: 9, duplicate: true });
    expect(result).toMatchObject({ head: 601, size: 601, rows: 601 });
  });

  it("leaves the log as it was when the INSERT fails, and the next append takes the next seq", async () => {
    const result = await inRoom((real) => {
      const { storage, counts } = counting(real);
      const log = new MessageLog(storage);
      log.append("u", "a", "1", 1);
      counts.failNext = true;
      let error = "";
      try {
        log.append("u", "b", "2", 2);
      } catch (err) {
        error = (err as Error).message;
      }
      const afterFailure = { head: log.head, size: log.size, bytes: log.bytes };
      const next = log.append("u", "b", "2", 3);
      const rows = real.sql.exec<{ seq: number; client_id: string }>("SELECT seq, client_id FROM messages ORDER BY seq").toArray();
      return { error, afterFailure, next, rows, bytes: log.bytes };
    });
    expect(result.error).toBe("disk full (test)");
    expect(result.afterFailure).toEqual({ head: 1, size: 1, bytes: 1 });
    expect(result.next).toMatchObject({ seq: 2, duplicate: false });
    expect(result.rows).toEqual([
      { seq: 1, client_id: "a" },
      { seq: 2, client_id: "b" },
    ]);
    expect(result.bytes).toBe(2);
  });

  it("leaves memory as it was when the checkpoint's meta write fails: the seq is not skipped and the total stays exact", async () => {
    const result = await inRoom((real) => {
      const { storage, counts } = counting(real);
      const log = new MessageLog(storage);
      let expected = 0;
      for (let i = 1; i < 500; i++) {
        const data = JSON.stringify(`é${i}`);
        expected += new TextEncoder().encode(data).length;
        log.append("u", `m${i}`, data, i);
      }
      counts.failMetaKey = "log_bytes_seq"; // the checkpoint's last write, after the INSERT and log_bytes
      let error = "";
      try {
        log.append("u", "m500", `"x"`, 500); // seq 500: the checkpoint is due
      } catch (err) {
        error = (err as Error).message;
      }
      const afterFailure = { head: log.head, size: log.size, bytes: log.bytes };
      const next = log.append("u", "m500", `"x"`, 501);
      expected += 3;
      const rows = real.sql.exec<{ n: number; top: number }>("SELECT count(*) AS n, max(seq) AS top FROM messages").one();
      const meta = Object.fromEntries(real.sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key LIKE 'log_bytes%'").toArray().map((r) => [r.key, r.value]));
      return { error, afterFailure, next, rows, meta, expected, bytes: log.bytes, woken: new MessageLog(real).bytes };
    });
    expect(result.error).toBe("meta write failed (test)");
    expect(result.afterFailure).toEqual({ head: 499, size: 499, bytes: result.expected - 3 });
    expect(result.next).toMatchObject({ seq: 500, duplicate: false });
    expect(result.rows).toEqual({ n: 500, top: 500 });
    expect(result.meta).toEqual({ log_bytes: String(result.expected), log_bytes_seq: "500" });
    expect(result.bytes).toBe(result.expected);
    expect(result.woken).toBe(result.expected);
  });

  it("leaves memory as it was when a trim's meta write fails", async () => {
    const result = await inRoom((real) => {
      const { storage, counts } = counting(real);
      const log = new MessageLog(storage);
      for (let i = 1; i <= 20; i++) log.append("u", `m${i}`, "12345", i); // 5 bytes each
      counts.failMetaKey = "log_bytes";
      let error = "";
      try {
        log.trim(10, 100);
      } catch (err) {
        error = (err as Error).message;
      }
      const afterFailure = { oldest: log.oldestSeq, size: log.size, bytes: log.bytes };
      const removed = log.trim(10, 100);
      return { error, afterFailure, removed, after: { oldest: log.oldestSeq, size: log.size, bytes: log.bytes }, woken: new MessageLog(real).bytes };
    });
    expect(result.error).toBe("meta write failed (test)");
    expect(result.afterFailure).toEqual({ oldest: 1, size: 20, bytes: 100 });
    expect(result.removed).toBe(10);
    expect(result.after).toEqual({ oldest: 11, size: 10, bytes: 50 });
    expect(result.woken).toBe(50);
  });
});
