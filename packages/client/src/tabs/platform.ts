/**
 * What tab sharing needs from the browser, behind two small interfaces so tests
 * can run several "tabs" in one process: Web Locks for electing the leader,
 * BroadcastChannel for talking.
 */

/** The subset of `navigator.locks` used. */
export interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, callback: (lock: unknown) => Promise<void>): Promise<unknown>;
}

/** The subset of BroadcastChannel used. */
export interface ChannelLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

export interface TabPlatform {
  readonly locks: LockManagerLike;
  channel(name: string): ChannelLike;
}

/**
 * The browser's Web Locks and BroadcastChannel, or undefined where either is
 * missing (Node; Web Locks exist only in secure contexts: https, localhost).
 */
export function browserTabPlatform(): TabPlatform | undefined {
  const g = globalThis as { navigator?: { locks?: LockManagerLike }; BroadcastChannel?: new (name: string) => ChannelLike; document?: unknown };
  const locks = g.navigator?.locks;
  const Channel = g.BroadcastChannel;
  if (g.document === undefined || !locks || typeof locks.request !== "function" || typeof Channel !== "function") return undefined;
  return { locks, channel: (name) => new Channel(name) };
}

/** The token's `sub`, read WITHOUT verification (only to group tabs by user); undefined if not a JWT. */
export function unverifiedSubject(token: string): string | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const payload: unknown = JSON.parse(new TextDecoder().decode(bytes));
    const sub = (payload as { sub?: unknown } | null)?.sub;
    return typeof sub === "string" && sub.length > 0 ? sub : undefined;
  } catch {
    return undefined;
  }
}
