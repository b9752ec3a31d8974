/**
 * The `cap` claim grants permissions per room pattern:
 *
 *   { "cap": { "team-42:*": ["subscribe", "publish", "presence"], "lobby": ["subscribe"] } }
 *
 * `*` matches any run of characters (including none), so `team-42:*` matches
 * `team-42:general` but not `team-43:general`. Permissions of every matching
 * pattern are combined.
 */
import * as v from "valibot";
import { Permission } from "@roomcast/protocol";

export const CAPABILITY_CLAIM = "cap";
const MAX_PATTERNS = 64;

export const CapabilityClaim = v.pipe(
  v.record(v.pipe(v.string(), v.minLength(1), v.maxLength(256)), v.array(Permission)),
  v.check((cap) => Object.keys(cap).length <= MAX_PATTERNS, `at most ${MAX_PATTERNS} room patterns`),
);
export type CapabilityClaim = v.InferOutput<typeof CapabilityClaim>;

const compiled = new Map<string, RegExp>();

function compile(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    const body = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*");
    re = new RegExp(`^${body}$`);
    if (compiled.size > 10_000) compiled.clear(); // bound the per-isolate cache
    compiled.set(pattern, re);
  }
  return re;
}

export function roomMatches(pattern: string, room: string): boolean {
  return compile(pattern).test(room);
}

/** The permissions `cap` grants on `room`, de-duplicated, in a stable order. */
export function permissionsFor(cap: CapabilityClaim, room: string): Permission[] {
  const granted = new Set<Permission>();
  for (const [pattern, perms] of Object.entries(cap)) {
    if (roomMatches(pattern, room)) for (const p of perms) granted.add(p);
  }
  return (["subscribe", "publish", "presence", "admin"] as const).filter((p) => granted.has(p));
}
