/**
 * Feature flags: what a flag is, how `FEATURE_FLAGS` is read, and how a flag is decided
 * for a user and a room (docs/operations.md "Feature flags").
 *
 * A definition is `{ "rollout": R, "expose"?: boolean }`, R one of
 * - `"on"` / `"off"`;
 * - `{ "percent": 0..100, "by": "user" | "room", "rooms"?: [patterns] }`: that share of
 *   users (or rooms), picked by a stable hash of the flag name and the id, optionally
 *   only within rooms matching the patterns;
 * - `{ "rooms": [patterns] }`: rooms whose name matches one of the patterns (`*` matches
 *   any run of characters, nothing else is special).
 *
 * `expose: true` puts the flag's value for this user and room in `welcome.features`.
 * Flags that gate server behaviour are built in (BUILTIN_FLAGS) with a default, so a
 * missing or broken FEATURE_FLAGS never changes what the server does.
 */
import * as v from "valibot";

/** Flag names: lower-case identifiers, as apps will use them as keys. */
export const FLAG_NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** Room-name characters (protocol.md §2) plus `*`. */
const PATTERN = /^[A-Za-z0-9_.:*-]{1,128}$/;
export const MAX_FLAGS = 64;
/** Most overrides the store holds: every isolate loads all of them (refused past it, src/flags/flag-store.ts). */
export const MAX_OVERRIDES = 64;
export const MAX_PATTERNS = 100;

const Patterns = v.pipe(
  v.array(v.pipe(v.string(), v.regex(PATTERN, "a room pattern is 1-128 of A-Z a-z 0-9 _ . : - and *"))),
  v.minLength(1, "rooms needs at least one pattern"),
  v.maxLength(MAX_PATTERNS, `at most ${MAX_PATTERNS} room patterns`),
);

export const Rollout = v.union(
  [
    v.picklist(["on", "off"]),
    v.strictObject({
      percent: v.pipe(v.number("percent must be a number"), v.minValue(0, "percent must be 0-100"), v.maxValue(100, "percent must be 0-100")),
      by: v.picklist(["user", "room"], 'by must be "user" or "room"'),
      rooms: v.optional(Patterns),
    }),
    v.strictObject({ rooms: Patterns }),
  ],
  'rollout must be "on", "off", {"percent": 0-100, "by": "user"|"room", "rooms"?: [...]} or {"rooms": ["pattern*", ...]}',
);
export type Rollout = v.InferOutput<typeof Rollout>;

export const FlagDefinition = v.strictObject({
  rollout: Rollout,
  expose: v.optional(v.boolean("expose must be true or false")),
});
export type FlagDefinition = v.InferOutput<typeof FlagDefinition>;

/** Where a flag's effective definition came from. */
export type FlagSource = "builtin" | "var" | "override";

interface Builtin {
  readonly definition: FlagDefinition;
  /** Decided per room (server behaviour): a by-user rollout is refused for it. */
  readonly scope: "room";
  readonly description: string;
}

/** Flags the server itself reads. Their defaults hold when FEATURE_FLAGS does not define them. */
export const BUILTIN_FLAGS: Readonly<Record<string, Builtin>> = {
  adaptive_batching: {
    // On by default: the window sized from the loop's lag (MAX_WAIT_MS less it) measured x1.32 the fixed
    // rules' deliveries per CPU-second at 10 subscribers x 1,000 msg/s, x1.16 at 100 x 200/s, x0.99 at
    // 1,000 x 20/s (interleaved A/B, docs/benchmarks.md "Adaptive batching"), for 1-3.5 ms more median.
    definition: { rollout: "on" },
    scope: "room",
    description: "live fan-out batches by the room's measured load (broadcaster.adaptive); off: the fixed rules",
  },
};

/** A definition that cannot apply to its flag (a by-user rollout of a room-scoped flag), or undefined. */
export function scopeProblem(name: string, definition: FlagDefinition): string | undefined {
  const builtin = BUILTIN_FLAGS[name];
  const r = definition.rollout;
  if (builtin?.scope === "room" && typeof r === "object" && "by" in r && r.by === "user") {
    return `${name} is decided per room (it changes server behaviour): use "on", "off", a percent by room or room patterns`;
  }
  return undefined;
}

/** Checks one definition (from the var, the admin API or storage): the definition, or why not. */
export function checkDefinition(name: string, input: unknown): { ok: true; definition: FlagDefinition } | { ok: false; message: string } {
  if (!FLAG_NAME.test(name)) return { ok: false, message: "a flag name is 1-64 of a-z 0-9 _ and starts with a letter" };
  const parsed = v.safeParse(FlagDefinition, input);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join(".");
    return { ok: false, message: path ? `${path}: ${issue.message}` : issue.message };
  }
  const problem = scopeProblem(name, parsed.output);
  return problem ? { ok: false, message: problem } : { ok: true, definition: parsed.output };
}

export interface ParsedFlags {
  readonly flags: ReadonlyMap<string, FlagDefinition>;
  /** One line per problem; empty when the var was fine. */
  readonly errors: readonly string[];
}

/**
 * FEATURE_FLAGS: a JSON object `{ "<name>": <definition>, ... }`, as a string (a TOML string
 * in `[vars]`) or as the object itself (wrangler also accepts a table or JSON object in
 * `[vars]`, and then hands the Worker the parsed value). Never throws. A value that is
 * neither gives no flags; within an object each definition stands alone: a bad one is left
 * out (its name falls back to its built-in default, if any) and the good ones apply. Every
 * problem is reported in `errors`.
 */
export function parseFeatureFlags(raw: unknown): ParsedFlags {
  const flags = new Map<string, FlagDefinition>();
  if (raw === undefined || (typeof raw === "string" && raw.trim() === "")) return { flags, errors: [] };
  let json: unknown;
  if (typeof raw === "string") {
    try {
      json = JSON.parse(raw);
    } catch (err) {
      return { flags, errors: [`FEATURE_FLAGS is not JSON (${err instanceof Error ? err.message : String(err)}); no flags from it`] };
    }
  } else if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
    json = raw; // a [vars] table: already parsed
  } else {
    const kind = raw === null ? "null" : Array.isArray(raw) ? "an array" : `a ${typeof raw}`;
    return { flags, errors: [`FEATURE_FLAGS must be a JSON object {"name": {"rollout": ...}} (a string holding one, or a [vars] table), not ${kind}; no flags from it`] };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { flags, errors: ['FEATURE_FLAGS must be a JSON object {"name": {"rollout": ...}}; no flags from it'] };
  }
  const errors: string[] = [];
  const entries = Object.entries(json as Record<string, unknown>);
  if (entries.length > MAX_FLAGS) errors.push(`FEATURE_FLAGS defines ${entries.length} flags; only the first ${MAX_FLAGS} are read`);
  for (const [name, input] of entries.slice(0, MAX_FLAGS)) {
    const checked = checkDefinition(name, input);
    if (checked.ok) flags.set(name, checked.definition);
    else errors.push(`FEATURE_FLAGS.${name}: ${checked.message}; ${BUILTIN_FLAGS[name] ? "its built-in default applies" : "flag left out"}`);
  }
  return { flags, errors };
}

// ---- assignment ------------------------------------------------------------------

const encoder = new TextEncoder();

/**
 * The stable bucket (0..9999) of an id for a flag: FNV-1a (32 bits) over the UTF-8 of
 * `name + ":" + id`, then murmur3's finalizer (FNV's low bits alone are weak for ids that
 * differ in their last characters), modulo 10,000. Pure and deterministic: the same name
 * and id give the same bucket on every isolate, deploy and machine; including the name
 * makes different flags independent of each other.
 */
export function bucketOf(name: string, id: string): number {
  const bytes = encoder.encode(`${name}:${id}`);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % 10_000;
}

/** `*` matches any run of characters (also none); everything else matches itself. */
export function matchesPattern(pattern: string, room: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === room;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (room.length < first.length + last.length || !room.startsWith(first) || !room.endsWith(last)) return false;
  let at = first.length;
  const end = room.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    const found = room.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

/**
 * The flag's value for a room and, when known, a user. Without a user (room behaviour),
 * a by-user rollout is off.
 */
export function decide(name: string, rollout: Rollout, room: string, userId?: string): boolean {
  if (rollout === "on") return true;
  if (rollout === "off") return false;
  if (rollout.rooms && !rollout.rooms.some((p) => matchesPattern(p, room))) return false;
  if (!("percent" in rollout)) return true;
  const id = rollout.by === "user" ? userId : room;
  if (id === undefined) return false;
  // Percent to two decimals: 0.01 % steps over 10,000 buckets.
  return bucketOf(name, id) < Math.round(rollout.percent * 100);
}
