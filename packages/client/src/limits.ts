/**
 * What the server announces in `welcome.limits` is input like any other: a buggy or
 * hostile server must not make the client spin (a liveness timeout of 0 once meant
 * 835 pings a second). (The flow-control budget needs no clamp: progress is only
 * ever sent in answer to a frame received, so even a budget of 0 cannot spin.)
 */

/** Never ping more often than this, whatever the server or the app says. */
export const MIN_PING_INTERVAL_MS = 1_000;
/** Never wait less than this for a pong (a slow but healthy link must survive). */
export const MIN_PONG_TIMEOUT_MS = 1_000;
/** setTimeout fires at once for delays over 2^31-1 ms (~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Liveness {
  /** How often to ping. */
  readonly pingEveryMs: number;
  /** How long to wait for any frame after a ping before the socket counts as dead. */
  readonly pongTimeoutMs: number;
}

/**
 * Ping at least three times per server liveness timeout, and give up on a pong
 * within a third of it, so a dead link is noticed (ping + pong timeout ≤ ⅔ of it)
 * before the server reaps the connection (which drops presence without grace).
 * The app's `pingIntervalMs` and `pongTimeoutMs` are upper bounds. A liveness
 * timeout that is not a positive finite number is ignored (the app's values hold).
 */
export function livenessTiming(livenessTimeoutSeconds: unknown, options: { pingIntervalMs: number; pongTimeoutMs: number }): Liveness {
  const ping = clamp(options.pingIntervalMs, MIN_PING_INTERVAL_MS, MAX_TIMER_MS);
  const pong = clamp(options.pongTimeoutMs, MIN_PONG_TIMEOUT_MS, MAX_TIMER_MS);
  if (typeof livenessTimeoutSeconds !== "number" || !Number.isFinite(livenessTimeoutSeconds) || livenessTimeoutSeconds <= 0) {
    return { pingEveryMs: ping, pongTimeoutMs: pong };
  }
  const third = (livenessTimeoutSeconds * 1000) / 3;
  return {
    pingEveryMs: Math.floor(clamp(Math.min(ping, third), MIN_PING_INTERVAL_MS, MAX_TIMER_MS)),
    pongTimeoutMs: Math.floor(clamp(Math.min(pong, third), MIN_PONG_TIMEOUT_MS, MAX_TIMER_MS)),
  };
}

function clamp(value: number, min: number, max: number): number {
  if (!Number.isFinite(value)) return value > 0 ? max : min;
  return Math.min(max, Math.max(min, value));
}
