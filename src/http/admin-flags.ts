/**
 * Feature-flag overrides over HTTP (docs/protocol.md §9 "Feature flags", docs/operations.md
 * "Feature flags"), mounted by the admin API (admin.ts: `admin.route("/", adminFlags)`):
 *
 * - `GET    /flags` → every flag in force: its definition, where it came from, the default
 *   (built-in or FEATURE_FLAGS) and the override, plus FEATURE_FLAGS's problems if any;
 * - `PUT    /flags/:name` `{"rollout": ..., "expose"?: bool}` → stores the override (a new name
 *   is refused with 400 once MAX_OVERRIDES are stored: every isolate loads them all);
 * - `DELETE /flags/:name` → removes it: the default applies again.
 *
 * Like every admin route these need `admin` on `*` (checked by admin.ts; mounted anywhere
 * else, checked here the same way). The overrides are read from the store itself, never
 * from the cache; a change also forgets this isolate's cache (other isolates within
 * CACHE_TTL_MS, src/flags/flags.ts).
 */
import { Hono, type Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv, Env } from "../env.js";
import { BUILTIN_FLAGS, FLAG_NAME, MAX_OVERRIDES, checkDefinition, parseFeatureFlags, type FlagDefinition } from "../flags/definition.js";
import { flagStore, type OverrideList } from "../flags/flag-store.js";
import { CACHE_TTL_MS, mergeFlags, overridesFor, varFlags } from "../flags/flags.js";
import { log } from "../log.js";
import { authorize, checkOrigin, readBodyText } from "./middleware.js";
import { fail } from "./errors.js";

/** 100 patterns of 128 characters fit. */
export const MAX_FLAG_BODY_BYTES = 16_384;

const USAGE = '{"rollout": "on"|"off"|{"percent": 0-100, "by": "user"|"room", "rooms"?: [...]}|{"rooms": ["pattern*", ...]}, "expose"?: boolean}';

/** `admin` on `*`: already checked by admin.ts, or checked here exactly as admin.ts does. */
const adminOnly = createMiddleware<AppEnv>(async (c, next) => {
  const identity = c.get("identity") as AppEnv["Variables"]["identity"] | undefined;
  if (identity?.room === "*" && identity.permissions.includes("admin")) return next();
  c.set("room", "*");
  await checkOrigin(c, async () => {
    await authorize("admin")(c, next);
  });
});

/** The directory instance that holds the overrides (src/flags/flag-store.ts). */
function store(env: Env) {
  const stub = flagStore(env);
  if (!stub) fail("server_misconfigured", "the DIRECTORY Durable Object binding is missing (wrangler.toml): overrides cannot be stored; FEATURE_FLAGS still applies");
  return stub;
}

function nameOf(c: Context<AppEnv>): string {
  const name = c.req.param("name");
  if (name === undefined || !FLAG_NAME.test(name)) fail("invalid_request", "a flag name is 1-64 of a-z 0-9 _ and starts with a letter");
  return name;
}

/** What GET lists for one flag. */
interface FlagListing {
  name: string;
  rollout: FlagDefinition["rollout"];
  expose: boolean;
  source: "builtin" | "var" | "override";
  /** What applies without an override (null: nothing, the flag exists only as an override). */
  default: (FlagDefinition & { source: "builtin" | "var" }) | null;
  override: { definition: FlagDefinition; updatedAt: number } | null;
  /** Set for flags the server itself reads. */
  description?: string;
}

function listing(env: Env, overrides: OverrideList): FlagListing[] {
  const vars = varFlags(env.FEATURE_FLAGS);
  const defaults = mergeFlags(vars, undefined);
  const merged = mergeFlags(vars, overrides);
  return [...merged].map(([name, effective]) => {
    const def = defaults.get(name);
    const override = overrides.overrides.find((o) => o.name === name);
    const builtin = BUILTIN_FLAGS[name];
    return {
      name,
      rollout: effective.definition.rollout,
      expose: effective.definition.expose === true,
      source: effective.source,
      default: def ? { ...def.definition, source: def.source as "builtin" | "var" } : null,
      override: override ? { definition: override.definition, updatedAt: override.updatedAt } : null,
      ...(builtin ? { description: builtin.description } : {}),
    };
  });
}

export const adminFlags = new Hono<AppEnv>();

adminFlags.use("/flags", adminOnly);
adminFlags.use("/flags/*", adminOnly);

adminFlags.get("/flags", async (c) => {
  const overrides: OverrideList = c.env.DIRECTORY ? await store(c.env).listFlagOverrides() : { overrides: [], invalid: [] };
  const configErrors = parseFeatureFlags(c.env.FEATURE_FLAGS).errors;
  return c.json({
    flags: listing(c.env, overrides),
    cacheTtlMs: CACHE_TTL_MS,
    maxOverrides: MAX_OVERRIDES,
    ...(configErrors.length > 0 ? { configErrors } : {}),
    ...(overrides.invalid.length > 0 ? { invalidOverrides: overrides.invalid } : {}),
  });
});

adminFlags.put("/flags/:name", async (c) => {
  const name = nameOf(c);
  const text = await readBodyText(c.req.raw, MAX_FLAG_BODY_BYTES, () => fail("invalid_request", `the body may be at most ${MAX_FLAG_BODY_BYTES} bytes: ${USAGE}`));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail("invalid_request", `body must be JSON: ${USAGE}`);
  }
  const checked = checkDefinition(name, json);
  if (!checked.ok) fail("invalid_request", `${checked.message}; the body is ${USAGE}`);
  const result = await store(c.env).putFlagOverride(name, checked.definition);
  if (!result.ok) fail("invalid_request", result.message);
  overridesFor(c.env).invalidate();
  log("info", "admin.flag_set", { name, definition: result.override.definition });
  const flag = listing(c.env, await store(c.env).listFlagOverrides()).find((f) => f.name === name);
  return c.json({ flag, takesEffectWithinMs: CACHE_TTL_MS });
});

adminFlags.delete("/flags/:name", async (c) => {
  const name = nameOf(c);
  const deleted = await store(c.env).deleteFlagOverride(name);
  overridesFor(c.env).invalidate();
  if (deleted) log("info", "admin.flag_override_deleted", { name });
  const flag = listing(c.env, await store(c.env).listFlagOverrides()).find((f) => f.name === name) ?? null;
  return c.json({ deleted, flag, takesEffectWithinMs: CACHE_TTL_MS });
});
