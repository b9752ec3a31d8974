import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_OVERRIDES, bucketOf, checkDefinition, decide, matchesPattern, parseFeatureFlags, type Rollout } from "../src/flags/definition.js";
import { Flags, OverrideCache, featuresFor, mergeFlags, varFlags, type EffectiveFlag } from "../src/flags/flags.js";
import { RoomFlags } from "../src/flags/room-flags.js";
import app from "../src/index.js";
import { FLAG_STORE_NAME, type OverrideList } from "../src/flags/flag-store.js";
import { connect, fetchWorker, token, uniqueRoom } from "./helpers.js";

const adminToken = () => token({ sub: "ops", cap: { "*": ["admin"] } });

async function adminCall(method: string, path: string, body?: unknown, jwt?: string): Promise<Response> {
  return fetchWorker(path, {
    method,
    headers: { Authorization: `Bearer ${jwt ?? (await adminToken())}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
}

/** The `features` of a fresh connection's welcome for `sub` in `room`. */
async function featuresOf(room: string, sub: string): Promise<Record<string, boolean> | undefined> {
  const socket = await connect(room, await token({ sub }));
  const welcome = await socket.next("welcome");
  socket.close();
  return welcome.features;
}

/**
 * Binomial tolerance: a fair hash puts each of n ids on with probability p, so the count
 * is Binomial(n, p) with standard deviation sqrt(n p (1-p)); 4 of them is about 1 in
 * 15,000 for one check. The hash is deterministic, so a pass here passes forever.
 */
function tolerance(n: number, p: number): number {
  return 4 * Math.sqrt(n * p * (1 - p));
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe("flag assignment", () => {
  it("is stable: the same flag and id always land in the same bucket (pinned values)", () => {
    // Pinned: a change of the hash would move users between A and B of a running experiment.
    const pinned = ["alice", "bob", "user-1", "team-42:general", "ünïcødé"].map((id) => bucketOf("new_composer", id));
    expect(pinned).toEqual([7260, 4687, 9922, 9574, 8764]);
    // Another flag name: another, independent bucket for the same id.
    expect(bucketOf("other_flag", "alice")).not.toBe(bucketOf("new_composer", "alice"));
    // By user: the room does not matter; asked again, the same answer.
    for (const id of ids("u", 200)) {
      const here = decide("f", { percent: 37, by: "user" }, "r", id);
      expect(decide("f", { percent: 37, by: "user" }, "other-room", id)).toBe(here);
      expect(decide("f", { percent: 37, by: "user" }, "r", id)).toBe(here);
    }
  });

  it("turns on the stated percentage of 10,000 users and of 10,000 rooms, within 4 standard deviations", () => {
    const n = 10_000;
    for (const percent of [1, 10, 25, 50, 90, 99.5]) {
      const p = percent / 100;
      const users = ids("user-", n).filter((u) => decide("new_composer", { percent, by: "user" }, "room", u)).length;
      const rooms = ids("team-7:room-", n).filter((r) => decide("new_composer", { percent, by: "room" }, r)).length;
      expect(Math.abs(users - n * p), `${percent}% of users: ${users}`).toBeLessThanOrEqual(tolerance(n, p));
      expect(Math.abs(rooms - n * p), `${percent}% of rooms: ${rooms}`).toBeLessThanOrEqual(tolerance(n, p));
    }
    expect(ids("user-", 1_000).some((u) => decide("x", { percent: 0, by: "user" }, "r", u))).toBe(false);
    expect(ids("user-", 1_000).every((u) => decide("x", { percent: 100, by: "user" }, "r", u))).toBe(true);
  });

  it("grows by adding users: raising the percent never turns anyone off", () => {
    for (const u of ids("grow-", 2_000)) {
      if (decide("rollout_x", { percent: 20, by: "user" }, "r", u)) expect(decide("rollout_x", { percent: 40, by: "user" }, "r", u)).toBe(true);
    }
  });

  it("assigns two flags independently (about a quarter of users get both at 50% each)", () => {
    const n = 10_000;
    const both = ids("user-", n).filter((u) => decide("flag_a", { percent: 50, by: "user" }, "r", u) && decide("flag_b", { percent: 50, by: "user" }, "r", u)).length;
    expect(Math.abs(both - n / 4)).toBeLessThanOrEqual(tolerance(n, 0.25));
  });

  it("matches room patterns with * as any run of characters", () => {
    expect(matchesPattern("beta-*", "beta-1")).toBe(true);
    expect(matchesPattern("beta-*", "beta-")).toBe(true);
    expect(matchesPattern("beta-*", "alpha-beta-1")).toBe(false);
    expect(matchesPattern("team-*:general", "team-42:general")).toBe(true);
    expect(matchesPattern("team-*:general", "team-42:random")).toBe(false);
    expect(matchesPattern("*:ops*", "team-1:ops-eu")).toBe(true);
    expect(matchesPattern("a*a", "a")).toBe(false); // the prefix and suffix may not overlap
    expect(matchesPattern("exact", "exact")).toBe(true);
    expect(matchesPattern("exact", "exactly")).toBe(false);
    const rollout: Rollout = { rooms: ["beta-*", "vip"] };
    expect(decide("f", rollout, "beta-9", "u")).toBe(true);
    expect(decide("f", rollout, "vip", "u")).toBe(true);
    expect(decide("f", rollout, "vip-2", "u")).toBe(false);
    // A percentage within matching rooms only.
    expect(decide("f", { percent: 100, by: "user", rooms: ["beta-*"] }, "gamma-1", "u")).toBe(false);
    expect(decide("f", { percent: 100, by: "user", rooms: ["beta-*"] }, "beta-1", "u")).toBe(true);
    // Room behaviour is decided without a user: a by-user rollout is off there.
    expect(decide("f", { percent: 100, by: "user" }, "room")).toBe(false);
  });
});

describe("FEATURE_FLAGS", () => {
  afterEach(() => vi.restoreAllMocks());

  it("keeps the valid definitions and reports each bad one; a bad built-in falls back to its default", () => {
    const parsed = parseFeatureFlags(
      JSON.stringify({
        good: { rollout: { percent: 10, by: "room" }, expose: true },
        too_much: { rollout: { percent: 101, by: "user" } },
        typo: { rollot: "on" },
        "Bad-Name": { rollout: "on" },
        adaptive_batching: { rollout: { percent: 50, by: "user" } },
      }),
    );
    expect([...parsed.flags.keys()]).toEqual(["good"]);
    expect(parsed.errors).toHaveLength(4);
    expect(parsed.errors.find((e) => e.startsWith("FEATURE_FLAGS.too_much"))).toContain("percent must be 0-100");
    expect(parsed.errors.find((e) => e.startsWith("FEATURE_FLAGS.adaptive_batching"))).toMatch(/decided per room.*built-in default applies/);
    expect(parsed.errors.find((e) => e.startsWith("FEATURE_FLAGS.Bad-Name"))).toContain("flag name");
    // The built-in is still there, from its default (on).
    const merged = mergeFlags(parsed.flags, undefined);
    expect(merged.get("adaptive_batching")).toEqual({ definition: { rollout: "on" }, source: "builtin" });
  });

  it("gives no flags from a value that is not a JSON object, and never throws", () => {
    for (const raw of ["{not json", "[1,2]", '"on"', "null", "42"]) {
      const parsed = parseFeatureFlags(raw);
      expect(parsed.flags.size, raw).toBe(0);
      expect(parsed.errors, raw).toHaveLength(1);
    }
    expect(parseFeatureFlags(undefined)).toEqual({ flags: new Map(), errors: [] });
    expect(parseFeatureFlags("")).toEqual({ flags: new Map(), errors: [] });
  });

  it("accepts a [vars] table (the parsed object) and reports any other non-string value, never throwing", () => {
    const table = { beta_rooms: { rollout: { rooms: ["beta-*"] }, expose: true }, adaptive_batching: { rollout: "off" }, bad: { rollout: "sometimes" } };
    const parsed = parseFeatureFlags(table);
    expect([...parsed.flags.keys()]).toEqual(["beta_rooms", "adaptive_batching"]);
    expect(parsed.errors).toHaveLength(1);
    expect(parsed.errors[0]).toMatch(/^FEATURE_FLAGS\.bad: /);
    for (const raw of [42, true, null, [{ rollout: "on" }], () => 1]) {
      const other = parseFeatureFlags(raw);
      expect(other.flags.size, String(raw)).toBe(0);
      expect(other.errors, String(raw)).toHaveLength(1);
      expect(other.errors[0]).toMatch(/FEATURE_FLAGS must be a JSON object/);
    }
    vi.spyOn(console, "error").mockImplementation(() => {});
    expect(varFlags({ ...table, [`t_${Date.now()}`]: { rollout: "on" } }).get("adaptive_batching")).toEqual({ rollout: "off" });
    expect(varFlags(7).size).toBe(0);
  });

  it("GET /v1/admin/flags works with a [vars] table for FEATURE_FLAGS", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const tableEnv = { ...env, FEATURE_FLAGS: { table_flag: { rollout: { percent: 20, by: "room" }, expose: true }, oops: { rollout: 3 } } };
    const res = await app.fetch(
      new Request("https://rc.test/v1/admin/flags", { headers: { Authorization: `Bearer ${await adminToken()}` } }),
      tableEnv,
      createExecutionContext(),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as { flags: { name: string; source: string; rollout: unknown }[]; configErrors?: string[] };
    expect(body.flags.find((f) => f.name === "table_flag")).toMatchObject({ source: "var", rollout: { percent: 20, by: "room" } });
    expect(body.configErrors).toHaveLength(1);
    expect(body.configErrors?.[0]).toMatch(/^FEATURE_FLAGS\.oops: /);
  });

  it("a room whose flags cannot be worked out starts with the built-in defaults and one log line", () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const broken = { current: () => { throw new Error("boom"); }, cache: new OverrideCache() } as unknown as Flags;
    const applied: [boolean, ReadonlyMap<string, EffectiveFlag>][] = [];
    expect(() => new RoomFlags(broken, () => "r", (on, flags) => applied.push([on("adaptive_batching"), flags]))).not.toThrow();
    expect(applied).toHaveLength(1);
    expect(applied[0]?.[0]).toBe(true); // adaptive_batching's built-in default
    expect([...(applied[0]?.[1].values() ?? [])].every((f) => f.source === "builtin")).toBe(true);
    const lines = errors.mock.calls.map((c) => String(c[0])).filter((l) => l.includes("flags.init_failed"));
    expect(lines).toHaveLength(1);
  });

  it("logs one config error per isolate for a bad value, however often it is read", () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const raw = `{"broken_${Date.now()}": {"rollout": "sometimes"}}`;
    for (let i = 0; i < 5; i++) varFlags(raw);
    const lines = errors.mock.calls.map((c) => String(c[0])).filter((l) => l.includes("config.invalid_feature_flags"));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ level: "error", event: "config.invalid_feature_flags" });
  });

  it("exposes only flags marked expose, evaluated for the user and room", () => {
    const flags = mergeFlags(varFlags(env.FEATURE_FLAGS), undefined);
    const a = featuresFor(flags, "beta-1", "someone");
    expect(Object.keys(a).sort()).toEqual(["beta_rooms", "new_composer"]);
    expect(a.beta_rooms).toBe(true);
    expect(featuresFor(flags, "gamma-1", "someone").beta_rooms).toBe(false);
  });
});

describe("the override cache", () => {
  it("reads the store at most once per TTL, again after it, and keeps the last read when the store fails", async () => {
    let now = 0;
    let calls = 0;
    let fail = false;
    const value: OverrideList = { overrides: [{ name: "x", definition: { rollout: "on" }, updatedAt: 1 }], invalid: [] };
    const cache = new OverrideCache({ ttlMs: 5_000, now: () => now });
    cache.setLoader(async () => {
      calls++;
      if (fail) throw new Error("store down");
      return value;
    });
    await cache.fresh();
    await cache.fresh();
    now = 4_999;
    await cache.fresh();
    expect(calls).toBe(1);
    const v1 = cache.version;
    now = 5_000;
    await cache.refreshIfStale(); // fresh() would not wait here: it has a value (stale-while-revalidate)
    expect(calls).toBe(2);
    expect(cache.version).toBe(v1); // same content: nothing to re-apply
    fail = true;
    now = 10_000;
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    await cache.refreshIfStale();
    expect(calls).toBe(3);
    expect(cache.value).toBe(value);
    expect(warn.mock.calls.some((c) => String(c[0]).includes("flags.load_failed"))).toBe(true);
    warn.mockRestore();
    cache.invalidate();
    expect(cache.stale).toBe(true);
  });

  it("lets a connect wait at most the load timeout for a store that does not answer", async () => {
    const cache = new OverrideCache({ ttlMs: 5_000, timeoutMs: 50 });
    cache.setLoader(() => new Promise(() => {}));
    const started = Date.now();
    await cache.fresh();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(cache.value).toBeUndefined();
  });
});

describe("the override cache under a store that never answers, or answers slowly", () => {
  afterEach(() => vi.restoreAllMocks());
  const value = (name: string): OverrideList => ({ overrides: [{ name, definition: { rollout: "on" }, updatedAt: 1 }], invalid: [] });
  const timed = async (p: Promise<void>) => {
    const t0 = Date.now();
    await p;
    return Date.now() - t0;
  };

  it("waits the load timeout once, then not again within the TTL, and reads again after it", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    let now = 0;
    let calls = 0;
    const cache = new OverrideCache({ ttlMs: 5_000, timeoutMs: 200, now: () => now });
    cache.setLoader(() => {
      calls++;
      return new Promise<never>(() => {});
    });
    expect(await timed(cache.fresh())).toBeGreaterThanOrEqual(150);
    expect(cache.stale).toBe(false); // the timed-out read counts as done
    expect(await timed(cache.fresh())).toBeLessThan(100);
    expect(calls).toBe(1);
    now = 5_000;
    expect(cache.stale).toBe(true);
    await cache.fresh();
    expect(calls).toBe(2); // a new read, not the hung one
  });

  it("serves the cached value at once when stale and refreshes in the background; waits only before the first read and after invalidate()", async () => {
    let now = 0;
    let calls = 0;
    let answer: ((v: OverrideList) => void) | undefined;
    const cache = new OverrideCache({ ttlMs: 5_000, timeoutMs: 2_000, now: () => now });
    cache.setLoader(() => {
      calls++;
      return new Promise<OverrideList>((resolve) => (answer = resolve));
    });
    // Nothing read yet: the first connect waits for the read.
    const first = cache.fresh();
    answer!(value("a"));
    await first;
    expect(cache.value?.overrides[0]?.name).toBe("a");
    // Stale: resolves at once with the last value, one read under way for everyone.
    now = 5_000;
    expect(await timed(cache.fresh())).toBeLessThan(500);
    expect(await timed(cache.fresh())).toBeLessThan(500);
    expect(calls).toBe(2);
    expect(cache.value?.overrides[0]?.name).toBe("a");
    const v = cache.version;
    answer!(value("b"));
    await cache.refreshIfStale();
    expect(cache.value?.overrides[0]?.name).toBe("b");
    expect(cache.version).toBe(v + 1);
    // An admin change here: the next connect waits for a new read, even with one already under way.
    now = 10_000;
    void cache.fresh(); // a background read starts (call 3)
    cache.invalidate();
    const afterAdmin = cache.fresh(); // must not reuse read 3, which may predate the change
    expect(calls).toBe(4);
    let settled = false;
    void afterAdmin.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    answer!(value("c"));
    await afterAdmin;
    expect(cache.value?.overrides[0]?.name).toBe("c");
  });
});

describe("a room's flags before a connect", () => {
  it("does not wait for a stale read when it has a value, and applies the read when it answers", async () => {
    let now = 0;
    let answer: ((v: OverrideList) => void) | undefined;
    const cache = new OverrideCache({ ttlMs: 5_000, timeoutMs: 2_000, now: () => now });
    cache.setLoader(() => new Promise<OverrideList>((resolve) => (answer = resolve)));
    const adaptive: boolean[] = [];
    const room = new RoomFlags(new Flags({} as never, cache), () => "r", (on) => adaptive.push(on("adaptive_batching")));
    const first = room.fresh();
    answer!({ overrides: [], invalid: [] });
    await first;
    now = 5_000;
    const t0 = Date.now();
    await room.fresh();
    expect(Date.now() - t0).toBeLessThan(500);
    const applied = adaptive.length;
    expect(adaptive.at(-1)).toBe(true); // the built-in default
    answer!({ overrides: [{ name: "adaptive_batching", definition: { rollout: "off" }, updatedAt: 1 }], invalid: [] });
    await cache.refreshIfStale();
    await new Promise((r) => setTimeout(r, 0));
    expect(adaptive.slice(applied)).toEqual([false]); // applied by the background read, without another connect
  });
});

describe("welcome.features", () => {
  it("holds the exposed flags for this user and room, the same on every connection", async () => {
    const room = uniqueRoom("beta");
    const first = await featuresOf(room, "carol");
    expect(first).toEqual({ new_composer: decide("new_composer", { percent: 50, by: "user" }, room, "carol"), beta_rooms: true });
    expect(await featuresOf(room, "carol")).toEqual(first);
    expect((await featuresOf(uniqueRoom("gamma"), "carol"))?.beta_rooms).toBe(false);
  });

  it("splits users as the hash says (A/B): each user's welcome agrees with bucketOf", async () => {
    const room = uniqueRoom();
    const users = ids("ab-user-", 12);
    for (const u of users) {
      expect((await featuresOf(room, u))?.new_composer, u).toBe(bucketOf("new_composer", u) < 5_000);
    }
  });
});

describe("the admin flag routes", () => {
  const reset = async (name: string) => adminCall("DELETE", `/v1/admin/flags/${name}`);

  it("need admin on * (401 without a token, 403 for anyone else)", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/v1/admin/flags"],
      ["PUT", "/v1/admin/flags/new_composer", { rollout: "on" }],
      ["DELETE", "/v1/admin/flags/new_composer"],
    ];
    for (const [method, path, body] of routes) {
      const none = await fetchWorker(path, { method, ...(body ? { body: JSON.stringify(body) } : {}) });
      expect(none.status, `${method} ${path}`).toBe(401);
      const caps: Record<string, string[]>[] = [{ "*": ["subscribe", "publish", "presence"] }, { "team-1:*": ["admin"] }];
      for (const cap of caps) {
        const res = await adminCall(method, path, body, await token({ sub: "eve", cap }));
        expect(res.status, `${method} ${path} ${JSON.stringify(cap)}`).toBe(403);
      }
    }
    // Nothing was changed by the refused PUT.
    const list = (await (await adminCall("GET", "/v1/admin/flags")).json()) as { flags: { name: string; source: string }[] };
    expect(list.flags.find((f) => f.name === "new_composer")?.source).toBe("var");
  });

  it("lists every flag with its source and default", async () => {
    const res = await adminCall("GET", "/v1/admin/flags");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { flags: { name: string; source: string; expose: boolean; default: unknown }[]; cacheTtlMs: number };
    const byName = Object.fromEntries(body.flags.map((f) => [f.name, f]));
    expect(byName.adaptive_batching).toMatchObject({ source: "var", expose: false, rollout: "on" });
    expect(byName.new_composer).toMatchObject({ source: "var", expose: true, rollout: { percent: 50, by: "user" }, default: { rollout: { percent: 50, by: "user" }, source: "var" } });
    expect(body.cacheTtlMs).toBe(5_000);
  });

  it("an override shows in the next welcome, and DELETE restores the var's default", async () => {
    const room = uniqueRoom();
    // Users on each side of the 50% split.
    const users = ids("split-", 40);
    const on = users.find((u) => decide("new_composer", { percent: 50, by: "user" }, room, u)) as string;
    const off = users.find((u) => !decide("new_composer", { percent: 50, by: "user" }, room, u)) as string;
    expect((await featuresOf(room, on))?.new_composer).toBe(true);
    expect((await featuresOf(room, off))?.new_composer).toBe(false);
    try {
      const put = await adminCall("PUT", "/v1/admin/flags/new_composer", { rollout: "off" });
      expect(put.status).toBe(200);
      // No expose in the body: the default's expose is kept, so the flag stays in the welcome.
      expect(await put.json()).toMatchObject({ flag: { name: "new_composer", source: "override", rollout: "off", expose: true } });
      expect((await featuresOf(room, on))?.new_composer).toBe(false);
      expect((await featuresOf(room, off))?.new_composer).toBe(false);
      // A flag that only exists as an override, exposed.
      expect((await adminCall("PUT", "/v1/admin/flags/dark_mode", { rollout: { rooms: [room] }, expose: true })).status).toBe(200);
      expect(await featuresOf(room, off)).toMatchObject({ dark_mode: true, new_composer: false });
    } finally {
      const del = await reset("new_composer");
      expect(del.status).toBe(200);
      expect(await del.json()).toMatchObject({ deleted: true, flag: { source: "var", rollout: { percent: 50, by: "user" } } });
      await reset("dark_mode");
    }
    expect((await featuresOf(room, on))?.new_composer).toBe(true);
    expect((await featuresOf(room, off))?.new_composer).toBe(false);
    expect((await featuresOf(room, off))?.dark_mode).toBeUndefined();
    // Deleting what is not there says so.
    expect(await (await reset("new_composer")).json()).toMatchObject({ deleted: false });
  });

  it("refuses bad definitions and names with 400 and stores nothing", async () => {
    const bad: [string, unknown][] = [
      ["new_composer", { rollout: { percent: 101, by: "user" } }],
      ["new_composer", { rollout: "sometimes" }],
      ["new_composer", { rollout: "on", extra: 1 }],
      ["new_composer", "on"],
      ["new_composer", "{not json"],
      ["adaptive_batching", { rollout: { percent: 50, by: "user" } }],
      ["Bad-Name", { rollout: "on" }],
    ];
    for (const [name, body] of bad) {
      const res = await adminCall("PUT", `/v1/admin/flags/${name}`, body);
      expect(res.status, `${name} ${JSON.stringify(body)}`).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
    const list = (await (await adminCall("GET", "/v1/admin/flags")).json()) as { flags: { name: string; source: string }[] };
    expect(list.flags.filter((f) => f.source === "override")).toEqual([]);
  });

  it(`refuses a new override past ${MAX_OVERRIDES} with 400 (replacing one still works), and GET states the cap`, async () => {
    const store = env.DIRECTORY!.getByName(FLAG_STORE_NAME);
    const existing = (await store.listFlagOverrides()).overrides.length;
    const fillers = Array.from({ length: MAX_OVERRIDES - existing }, (_, i) => `cap_filler_${i}`);
    try {
      for (const name of fillers) expect((await store.putFlagOverride(name, { rollout: "off" })).ok).toBe(true);
      const refused = await adminCall("PUT", "/v1/admin/flags/cap_one_more", { rollout: "on" });
      expect(refused.status).toBe(400);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_request");
      expect(body.error.message).toContain(`at most ${MAX_OVERRIDES} flag overrides`);
      expect((await store.listFlagOverrides()).overrides.map((o) => o.name)).not.toContain("cap_one_more");
      // Replacing an existing override is not adding one.
      expect((await adminCall("PUT", `/v1/admin/flags/${fillers[0] ?? "new_composer"}`, { rollout: "on" })).status).toBe(200);
      const list = (await (await adminCall("GET", "/v1/admin/flags")).json()) as { maxOverrides: number };
      expect(list.maxOverrides).toBe(MAX_OVERRIDES);
    } finally {
      for (const name of fillers) await store.deleteFlagOverride(name);
      await reset("cap_one_more");
    }
  });

  it("skips a stored override this build cannot apply, and reports it", async () => {
    const { runInDurableObject } = await import("cloudflare:test");
    const stub = env.DIRECTORY!.getByName(FLAG_STORE_NAME);
    await stub.listFlagOverrides(); // the table exists from the first call on
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec("INSERT INTO overrides (name, definition, updated_at) VALUES ('legacy_flag', '{\"rollout\":\"maybe\"}', 1)");
    });
    try {
      const list = (await stub.listFlagOverrides()) as OverrideList;
      expect(list.overrides.map((o) => o.name)).not.toContain("legacy_flag");
      expect(list.invalid).toEqual([{ name: "legacy_flag", message: expect.stringContaining("rollout") }]);
      const body = (await (await adminCall("GET", "/v1/admin/flags")).json()) as { invalidOverrides?: unknown[] };
      expect(body.invalidOverrides).toHaveLength(1);
    } finally {
      await stub.deleteFlagOverride("legacy_flag");
    }
  });

  it("checks definitions the same way everywhere (the var, the API, the store)", () => {
    expect(checkDefinition("x", { rollout: { rooms: [] } })).toMatchObject({ ok: false });
    expect(checkDefinition("x", { rollout: { rooms: ["ok-*"] }, expose: true })).toMatchObject({ ok: true });
    expect(checkDefinition("x", { rollout: { percent: 12.5, by: "room" } })).toMatchObject({ ok: true });
  });
});
