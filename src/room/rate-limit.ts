/**
 * A token bucket per connection: `burst` publishes at once, refilled at
 * `ratePerSecond`. It lives in memory only; after hibernation a connection starts
 * with a full bucket, which is harmless because hibernation needs ~10 s of
 * silence, long enough to refill any bucket with the default limits.
 */
export class TokenBucket {
  #tokens: number;
  #updated: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number = Date.now(),
  ) {
    this.#tokens = burst;
    this.#updated = now;
  }

  /** Takes one token if available. */
  take(now: number = Date.now()): boolean {
    const elapsed = Math.max(0, now - this.#updated) / 1000;
    this.#tokens = Math.min(this.burst, this.#tokens + elapsed * this.ratePerSecond);
    this.#updated = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
