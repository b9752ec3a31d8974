/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
 * And Jitter"): the delay is uniform in [0, min(maxMs, minMs × factor^attempt)).
 * Full jitter spreads a crowd of clients that lost the same server across the whole
 * window instead of bunching them at the same instants.
 */
export interface BackoffOptions {
  /** First ceiling, ms. Default 500. */
  minMs: number;
  /** Largest ceiling, ms. Default 30,000. */
  maxMs: number;
  /** Growth per attempt. Default 2. */
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minMs: 500, maxMs: 30_000, factor: 2 };

/** Delay before retry number `attempt` (0 for the first retry). Pure: inject `random` to test. */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.minMs * options.factor ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}
