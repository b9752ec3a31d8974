/**
 * The feature-flag overrides live in one instance of the rooms directory class (no class
 * of their own, so no migration): FLAG_STORE_NAME, never a shard. What this must keep
 * true: the overrides survive the instance being evicted (they are in its SQLite storage,
 * not in memory), shards never get the overrides table, and a shard refuses the flag calls.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DIRECTORY_SHARDS, isShardName, shardName, shardOf } from "../src/directory/shard.js";
import { FLAG_STORE_NAME } from "../src/flags/flag-store.js";
import type { RoomsDirectory } from "../src/directory/directory.js";
import { connect, token, uniqueRoom } from "./helpers.js";

const flagsInstance = () => env.DIRECTORY!.getByName(FLAG_STORE_NAME);

const tables = (stub: DurableObjectStub) =>
  runInDurableObject(stub, (_instance, state) =>
    state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name),
  );

describe("the flag overrides' directory instance", () => {
  it("is named apart from every shard", () => {
    for (let i = 0; i < DIRECTORY_SHARDS; i++) expect(isShardName(shardName(i)), shardName(i)).toBe(true);
    expect(isShardName(FLAG_STORE_NAME)).toBe(false);
    expect(Array.from({ length: DIRECTORY_SHARDS }, (_, i) => shardName(i))).not.toContain(FLAG_STORE_NAME);
  });

  it("keeps overrides across a restart of the instance", async () => {
    const stub = flagsInstance();
    const put = await stub.putFlagOverride("restart_probe", { rollout: { percent: 30, by: "room" }, expose: true }, 1_234);
    expect(put.ok).toBe(true);
    try {
      const before = await runInDurableObject(stub, (instance) => instance);
      await evictDurableObject(stub);
      const list = await flagsInstance().listFlagOverrides();
      // A new instance object answered (the old one was evicted), from storage.
      expect(await runInDurableObject(flagsInstance(), (instance) => instance)).not.toBe(before);
      expect(list.overrides.find((o) => o.name === "restart_probe")).toEqual({
        name: "restart_probe",
        definition: { rollout: { percent: 30, by: "room" }, expose: true },
        updatedAt: 1_234,
      });
      expect(list.invalid).toEqual([]);
    } finally {
      expect(await flagsInstance().deleteFlagOverride("restart_probe")).toBe(true);
    }
    expect((await flagsInstance().listFlagOverrides()).overrides.map((o) => o.name)).not.toContain("restart_probe");
  });

  it("is the only instance with the overrides table: a shard has its rooms, never overrides, and refuses flag calls", async () => {
    const room = uniqueRoom("flagshard");
    const shard = env.DIRECTORY!.getByName(shardName(shardOf(room)));
    const s = await connect(room, await token({ sub: "alice" }));
    await s.next("welcome");
    const deadline = Date.now() + 3_000;
    while (!(await shard.list(null, 500)).rooms.some((r) => r.room === room)) {
      if (Date.now() > deadline) throw new Error("the room never reached its shard");
      await new Promise((r) => setTimeout(r, 20));
    }
    s.close();
    // Called inside the shard, not over RPC: a rejecting RPC leaks an unhandled rejection in
    // vitest-pool-workers even when awaited (cloudflare/workers-sdk#14736).
    const refusal = (call: (instance: RoomsDirectory) => Promise<unknown>) =>
      runInDurableObject(shard, async (instance: RoomsDirectory) => {
        try {
          await call(instance);
          return "answered";
        } catch (err) {
          return String(err);
        }
      });
    expect(await refusal((d) => d.putFlagOverride("shard_probe", { rollout: "on" }))).toMatch(/flag overrides live in the directory instance "flags", not "shard-\d+"/);
    expect(await refusal((d) => d.listFlagOverrides())).toMatch(/not "shard-/);
    expect(await refusal((d) => d.deleteFlagOverride("shard_probe"))).toMatch(/not "shard-/);
    expect(await tables(shard)).not.toContain("overrides");
    await flagsInstance().listFlagOverrides();
    expect(await tables(flagsInstance())).toContain("overrides");
  });

  it("refuses flag calls in an instance without a name (made from an id) and never creates the table there", async () => {
    const unnamed = env.DIRECTORY!.get(env.DIRECTORY!.newUniqueId());
    const outcome = await runInDurableObject(unnamed, async (instance: RoomsDirectory, state) => {
      expect(state.id.name).toBeUndefined();
      const results: string[] = [];
      for (const call of [() => instance.listFlagOverrides(), () => instance.putFlagOverride("unnamed_probe", { rollout: "on" }), () => instance.deleteFlagOverride("unnamed_probe")]) {
        try {
          await call();
          results.push("answered");
        } catch (err) {
          results.push(String(err));
        }
      }
      return results;
    });
    for (const r of outcome) expect(r).toMatch(/flag overrides live in the directory instance "flags", not an unnamed instance/);
    expect(await tables(unnamed)).not.toContain("overrides");
  });
});
