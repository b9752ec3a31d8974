/**
 * A token bucket: `burst` tokens at once, refilled at `ratePerSecond`. The room keeps
 * one per user (`UserBuckets`), shared by all of that user's sockets and by the HTTP
 * API, so neither more sockets nor reconnecting buys more. It lives in memory only;
 * after hibernation a user starts with a full bucket, which is harmless because
 * hibernation needs ~10 s of silence, long enough to refill any bucket with the
 * default limits.
 */
export class TokenBucket {
  #tokens: number;
  #updated: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number = Date.now(),
    tokens: number = burst,
  ) {
    this.#tokens = Math.min(tokens, burst);
    this.#updated = now;
  }

  /** Takes `n` tokens (default 1) if that many are available; otherwise takes none. */
  take(n = 1, now: number = Date.now()): boolean {
    this.#refill(now);
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Whole tokens available now. */
  available(now: number = Date.now()): number {
    this.#refill(now);
    return Math.floor(this.#tokens);
  }

  /** Whether the bucket has refilled completely (nothing to remember about its user). */
  full(now: number = Date.now()): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#updated) / 1000;
    this.#tokens = Math.min(this.burst, this.#tokens + elapsed * this.ratePerSecond);
    this.#updated = now;
  }
}

/** History is paid by size too: one token per this many characters of messages (64 KiB). */
export const HISTORY_CHARS_PER_TOKEN = 65_536;

/**
 * Pays for a history page from `bucket`: one token for the request, then one per
 * HISTORY_CHARS_PER_TOKEN of what was read. `read(maxChars)` reads a page cut at
 * `maxChars` and says how many characters it holds; it is offered no more than the
 * bucket can pay for (and always at least one token's worth), so a large history
 * costs the same in big pages or small. Undefined: no token for the request.
 */
export function payForHistory<T>(bucket: TokenBucket, maxChars: number, read: (maxChars: number) => { page: T; chars: number }): T | undefined {
  if (!bucket.take()) return undefined;
  const affordable = Math.max(1, bucket.available()) * HISTORY_CHARS_PER_TOKEN;
  const { page, chars } = read(Math.min(maxChars, affordable));
  bucket.take(Math.min(bucket.available(), Math.floor(chars / HISTORY_CHARS_PER_TOKEN)));
  return page;
}

/** Buckets with more users than this are pruned of the full ones when a new user arrives. */
const PRUNE_AT = 2_000;

/** One bucket per user of a room: WebSocket frames and HTTP requests of that user share it. */
export class UserBuckets {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
  ) {}

  /**
   * The user's bucket. `rate` (a token's `rate` claim) sizes it instead of the room's
   * defaults; a request with another size resizes it, keeping what was left (only a
   * token the app's backend signed can carry one). Requests without a claim use
   * whatever bucket the user has. After hibernation a user starts full: with a small
   * claimed rate that can come earlier than a refill would.
   */
  of(userId: string, rate?: { perSecond: number; burst: number }): TokenBucket {
    let bucket = this.#buckets.get(userId);
    if (!bucket || (rate && (bucket.ratePerSecond !== rate.perSecond || bucket.burst !== rate.burst))) {
      if (!bucket && this.#buckets.size >= PRUNE_AT) this.prune();
      // Resized, not refilled: what the user had left carries over (at most the new burst),
      // so alternating tokens with different claims buys nothing.
      bucket = new TokenBucket(rate?.perSecond ?? this.ratePerSecond, rate?.burst ?? this.burst, Date.now(), bucket?.available() ?? Infinity);
      this.#buckets.set(userId, bucket);
    }
    return bucket;
  }

  /** Forgets users whose bucket has refilled (they would start full anyway). */
  prune(now: number = Date.now()): void {
    for (const [userId, bucket] of this.#buckets) if (bucket.full(now)) this.#buckets.delete(userId);
  }

  get size(): number {
    return this.#buckets.size;
  }
}
