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
 *
 * `ownOrigin` (development only: the request URL's scheme://host:port) is allowed as
 * well, so a page served by `wrangler dev` works on whatever port it got (a second
 * `npm run dev` moves to 8788). Production never passes it.
 */
export function isOriginAllowed(origin: string | null, setting: string | undefined, browserExpected: boolean, ownOrigin?: string): boolean {
  if (origin === null) return !browserExpected;
  if (origin === "null") return false;
  if (ownOrigin !== undefined && origin === ownOrigin) return true;
  return allowedOrigins(setting).has(origin);
}
