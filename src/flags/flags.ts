/**
 * The flags in force: built-in defaults, then FEATURE_FLAGS, then the overrides the admin
 * API stored (flag-store.ts, in an instance of the directory class), read through a short
 * per-isolate cache so a connect does not pay a round trip to the store each time.
 *
 * When a change takes effect (docs/operations.md "Feature flags"):
 * - a FEATURE_FLAGS change: with the deploy that sets it (a new version, new isolates);
 * - an override: once the cache of the isolate running the room is older than
 *   CACHE_TTL_MS, the next connect or stored message starts a read (the connect's welcome
 *   still uses the last value: stale-while-revalidate); welcomes after the read answered
 *   show it, and the room's own behaviour is re-applied when it answers. A connect waits
 *   for the read (at most LOAD_TIMEOUT_MS) only before this isolate's first read and after
 *   an admin change in this isolate (which forgets its cache at once).
 * - if the store cannot be read or does not answer within LOAD_TIMEOUT_MS, the last
 *   overrides read stay in force (none before the first read), logged as
 *   `flags.load_failed`, and the store is asked again after CACHE_TTL_MS; a connect is never
 *   refused over flags.
 */
import type { Env } from "../env.js";
import { describeError, log } from "../log.js";
import { BUILTIN_FLAGS, decide, parseFeatureFlags, type FlagDefinition, type FlagSource } from "./definition.js";
import { FLAG_STORE_NAME, type OverrideList } from "./flag-store.js";

/** How long overrides read from the store are used before being read again. */
export const CACHE_TTL_MS = 5_000;
/** A read of the store that has not answered by then counts as failed (a waiting connect goes on with what was last read). */
export const LOAD_TIMEOUT_MS = 1_000;

export interface EffectiveFlag {
  readonly definition: FlagDefinition;
  readonly source: FlagSource;
}

/** FEATURE_FLAGS parsed once per distinct value; its problems logged once per isolate. */
const parsedVars = new Map<string, ReadonlyMap<string, FlagDefinition>>();

/** The cache key of a FEATURE_FLAGS value: the string itself, or a [vars] table's JSON. */
function varKey(raw: unknown): string {
  if (raw === undefined) return "";
  if (typeof raw === "string") return raw;
  try {
    return `\u0000${typeof raw}:${JSON.stringify(raw)}`;
  } catch {
    return `\u0000${typeof raw}:unserializable`;
  }
}

export function varFlags(raw: unknown): ReadonlyMap<string, FlagDefinition> {
  const key = varKey(raw);
  let flags = parsedVars.get(key);
  if (!flags) {
    const parsed = parseFeatureFlags(raw);
    if (parsed.errors.length > 0) {
      log("error", "config.invalid_feature_flags", {
        errors: parsed.errors,
        message: `FEATURE_FLAGS has ${parsed.errors.length} problem(s); valid definitions apply, the rest fall back (docs/operations.md "Feature flags")`,
      });
    }
    flags = parsed.flags;
    parsedVars.set(key, flags);
  }
  return flags;
}

/** Built-ins ← var ← overrides, by name. */
export function mergeFlags(vars: ReadonlyMap<string, FlagDefinition>, overrides: OverrideList | undefined): Map<string, EffectiveFlag> {
  const out = new Map<string, EffectiveFlag>();
  for (const [name, builtin] of Object.entries(BUILTIN_FLAGS)) out.set(name, { definition: builtin.definition, source: "builtin" });
  for (const [name, definition] of vars) out.set(name, { definition, source: "var" });
  // An override without `expose` keeps the default's, so changing a rollout never hides an exposed flag.
  for (const o of overrides?.overrides ?? []) {
    const expose = o.definition.expose ?? out.get(o.name)?.definition.expose;
    out.set(o.name, { definition: expose === undefined ? o.definition : { ...o.definition, expose }, source: "override" });
  }
  return out;
}

/** Values of the exposed flags for one user in one room: `welcome.features`. */
export function featuresFor(flags: ReadonlyMap<string, EffectiveFlag>, room: string, userId: string): Record<string, boolean> {
  const features: Record<string, boolean> = {};
  for (const [name, { definition }] of flags) {
    if (definition.expose) features[name] = decide(name, definition.rollout, room, userId);
  }
  return features;
}

/** A room-level flag's value (server behaviour): a by-user rollout is off here. Unknown: off. */
export function roomFlag(flags: ReadonlyMap<string, EffectiveFlag>, name: string, room: string): boolean {
  const flag = flags.get(name);
  return flag ? decide(name, flag.definition.rollout, room) : false;
}

type Load = () => Promise<OverrideList>;

/**
 * Overrides, cached for `ttlMs`. `version` changes whenever a read brings a different set,
 * so a room can tell cheaply whether to re-apply its flags.
 *
 * Stale-while-revalidate: once the cache is older than `ttlMs` the next caller starts one
 * read (shared by every caller while it runs) and goes on with the last value; only when
 * nothing has been read yet in this isolate, or after `invalidate()` (an admin change
 * here), does `fresh()` wait for the read. A read is bounded by `timeoutMs`: one that has
 * not answered by then counts as failed (the last value stays, a new read is allowed after
 * the TTL), so a store that never answers costs one wait per TTL, not every connect.
 */
export class OverrideCache {
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #load: Load | undefined;
  #value: OverrideList | undefined;
  #json = "";
  #readAt = -Infinity;
  #loading: Promise<void> | undefined;
  /** Bumped by invalidate(): a read started before it must not count as fresh. */
  #generation = 0;
  /** True until a read answered in this isolate, and again after invalidate(). */
  #mustWait = true;
  version = 0;

  constructor(options: { ttlMs?: number; timeoutMs?: number; now?: () => number } = {}) {
    this.#ttlMs = options.ttlMs ?? CACHE_TTL_MS;
    this.#timeoutMs = options.timeoutMs ?? LOAD_TIMEOUT_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Where overrides come from (undefined: nowhere, only the var and built-ins apply). */
  setLoader(load: Load | undefined): void {
    this.#load = load;
  }

  get value(): OverrideList | undefined {
    return this.#value;
  }

  get stale(): boolean {
    return this.#load !== undefined && this.#now() - this.#readAt >= this.#ttlMs;
  }

  /** The next `fresh()` reads the store and waits for it (after an admin change in this isolate). */
  invalidate(): void {
    this.#generation++;
    this.#readAt = -Infinity;
    this.#loading = undefined; // a read already under way may predate the change: start another
    this.#mustWait = true;
  }

  /** Starts a read if the cache is stale (or joins the one running); settles when it answered or timed out (never rejects). */
  refreshIfStale(): Promise<void> {
    return this.stale ? this.#refresh() : Promise.resolve();
  }

  /**
   * Before a connect. Fresh: resolves at once. Stale with a value read before: starts a
   * read in the background and resolves at once (the caller uses the last value). Nothing
   * read yet, or invalidated: waits for the read, at most `timeoutMs`. Never rejects.
   */
  async fresh(): Promise<void> {
    if (!this.stale) return;
    const read = this.#refresh();
    if (this.#mustWait) await read;
  }

  #refresh(): Promise<void> {
    const load = this.#load;
    if (!load) return Promise.resolve();
    const generation = this.#generation;
    this.#loading ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#timeoutMs);
      });
      let answered = false;
      try {
        const value = await Promise.race([load(), timedOut]);
        if (generation !== this.#generation) return; // invalidated meanwhile: a newer read decides
        if (value === "timeout") {
          log("warn", "flags.load_failed", {
            error: `the store did not answer within ${this.#timeoutMs} ms`,
            message: "using the overrides read last (none before the first read); read again after the TTL",
          });
          return;
        }
        answered = true;
        for (const bad of value.invalid) log("error", "flags.invalid_override", { name: bad.name, message: bad.message });
        const json = JSON.stringify(value.overrides.map((o) => [o.name, o.definition]));
        if (json !== this.#json) {
          this.#json = json;
          this.version++;
        }
        this.#value = value;
      } catch (err) {
        if (generation === this.#generation) log("warn", "flags.load_failed", { error: describeError(err), message: "using the overrides read last (none before the first read)" });
      } finally {
        clearTimeout(timer);
        if (generation === this.#generation) {
          // A failure or a timeout waits for the next TTL too: a broken store is not asked on every connect.
          this.#readAt = this.#now();
          this.#loading = undefined;
          // Waiting is for "nothing read yet" and for an admin change here: a failed attempt ends the
          // latter (the next connects use the last value); the former lasts until a read answers.
          this.#mustWait = !answered && this.#value === undefined;
        }
      }
    })();
    return this.#loading;
  }
}

/** The isolate's cache: one store per deployment, so one cache per isolate. */
export const overrides = new OverrideCache();

/** The isolate's cache, pointed at this deployment's store (if it has the DIRECTORY binding). */
export function overridesFor(env: Env): OverrideCache {
  // The stub is made per read, in the context that reads (a stub made in one Durable Object cannot be used from another).
  const namespace = env.DIRECTORY;
  overrides.setLoader(namespace ? () => namespace.getByName(FLAG_STORE_NAME).listFlagOverrides() : undefined);
  return overrides;
}

/** The flags in force now for this deployment, from the var and the cached overrides. */
export class Flags {
  readonly #env: Env;
  readonly #cache: OverrideCache;
  #merged: Map<string, EffectiveFlag> | undefined;
  #mergedVersion = -1;
  #mergedVar: unknown;

  constructor(env: Env, cache: OverrideCache = overridesFor(env)) {
    this.#env = env;
    this.#cache = cache;
  }

  get cache(): OverrideCache {
    return this.#cache;
  }

  /** Effective definitions by name (recomputed only when the var or the overrides changed). */
  current(): ReadonlyMap<string, EffectiveFlag> {
    const raw = this.#env.FEATURE_FLAGS;
    if (!this.#merged || this.#mergedVersion !== this.#cache.version || this.#mergedVar !== raw) {
      this.#merged = mergeFlags(varFlags(raw), this.#cache.value);
      this.#mergedVersion = this.#cache.version;
      this.#mergedVar = raw;
    }
    return this.#merged;
  }
}

/** The built-in defaults alone: what applies when the flags cannot be worked out at all. */
export function builtinFlags(): Map<string, EffectiveFlag> {
  return mergeFlags(new Map(), undefined);
}
