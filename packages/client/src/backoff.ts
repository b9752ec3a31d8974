/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
 * And Jitter"): the delay is uniform in [0, min(ceiling, minMs × factor^attempt)).
 * Full jitter spreads a crowd of clients that lost the same server across the whole
 * window instead of bunching them at the same instants.
 *
 * Two ceilings. When the server answered and asked for patience (room full, too many
 * connections, its own error, a rate limit), delays grow to `maxMs`. When nothing
 * answered (the network, a crash, a restart), they stop at `networkMaxMs`: what ends
 * such an outage is the server coming back, and each client should notice within a
 * few seconds of it, not after a delay that grew while the server was away (300
 * clients once took up to 17 s to come back, on delays capped at 30 s).
 */
export interface BackoffOptions {
  /** First ceiling, ms. Default 500. */
  minMs: number;
  /** Largest ceiling after the server answered with a retryable refusal, ms. Default 30,000. */
  maxMs: number;
  /** Largest ceiling when the server did not answer at all (network, crash, restart), ms. Default 4,000. */
  networkMaxMs: number;
  /** Growth per attempt. Default 2. */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minMs: 500, maxMs: 30_000, networkMaxMs: 4_000, factor: 2 };

/** Delay before retry number `attempt` (0 for the first retry). Pure: inject `random` to test. */
export function backoffDelay(attempt: number, options: Pick<BackoffOptions, "minMs" | "maxMs" | "factor"> = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.minMs * options.factor ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}

/** The options to compute a delay with: `maxMs` after a pushback, the lower `networkMaxMs` otherwise. */
export function retryCeiling(options: BackoffOptions, pushback: boolean): BackoffOptions {
  return pushback ? options : { ...options, maxMs: Math.min(options.maxMs, options.networkMaxMs ?? options.maxMs) };
}
