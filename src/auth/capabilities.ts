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

/**
 * Glob match where `*` matches any run of characters. The classic two-pointer
 * algorithm: on a mismatch, retry from the last `*` one character further. It is
 * O(pattern × room) in the worst case; a regex with one `.*` per star backtracks
 * exponentially on near-misses (patterns come from token issuers, who may build
 * them from user input).
 */
export function roomMatches(pattern: string, room: string): boolean {
  let p = 0;
  let r = 0;
  let star = -1;
  let resume = 0;
  while (r < room.length) {
    if (p < pattern.length && pattern[p] !== "*" && pattern[p] === room[r]) {
      p++;
      r++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = r;
    } else if (star !== -1) {
      p = star + 1;
      r = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/** The permissions `cap` grants on `room`, de-duplicated, in a stable order. */
export function permissionsFor(cap: CapabilityClaim, room: string): Permission[] {
  const granted = new Set<Permission>();
  for (const [pattern, perms] of Object.entries(cap)) {
    if (roomMatches(pattern, room)) for (const p of perms) granted.add(p);
  }
  return (["subscribe", "publish", "presence", "admin"] as const).filter((p) => granted.has(p));
}
