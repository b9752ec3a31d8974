/**
 * Exact-match Origin allowlist (OWASP WebSocket cheat sheet): no prefix, suffix or
 * wildcard matching, so `https://app.example.com.evil.test` and `null` are refused.
 */
const parsed = new Map<string, ReadonlySet<string>>();

export function allowedOrigins(setting: string | undefined): ReadonlySet<string> {
  const key = setting ?? "";
  let set = parsed.get(key);
  if (!set) {
    set = new Set(key.split(",").map((o) => o.trim()).filter((o) => o !== ""));
    parsed.set(key, set);
  }
  return set;
}

/**
 * `origin` is the request's Origin header (null when absent). Browsers always send
 * one on WebSocket upgrades; non-browser clients usually do not, which is allowed
 * unless the request looks like a browser's (token in the subprotocol).
 */
export function isOriginAllowed(origin: string | null, setting: string | undefined, browserExpected: boolean): boolean {
  if (origin === null) return !browserExpected;
  if (origin === "null") return false;
  return allowedOrigins(setting).has(origin);
}
