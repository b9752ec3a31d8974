/**
 * Client-side pacing to the user's rate budget the server announced in `welcome`
 * (`publishRatePerSecond`, `publishBurst`), so a flush of a long offline outbox is
 * spread out instead of tripping `rate_limited` on the server.
 *
 * The server charges one bucket per user for `publish`, `presence`, `history` (one
 * token per request, plus one per 64 KiB of the answer) and `refresh`
 * (src/room/frame-handlers.ts, rate-limit.ts). The room sends the first three through
 * this pacer; `refresh` is sent by the Connection on its own schedule, so the pacer
 * keeps one token in reserve for it. The bucket is shared with the user's other
 * sockets and HTTP requests, which this pacer cannot see: a `rate_limited` answer
 * still happens, and `drain()` then makes the next frame wait for a refill.
 */

/** One token of history answer per this many characters (the server's HISTORY_CHARS_PER_TOKEN). */
export const HISTORY_CHARS_PER_TOKEN = 65_536;

const DEFAULT_RATE = 20;
const DEFAULT_BURST = 40;

export class Pacer {
  #rate = DEFAULT_RATE;
  #burst = DEFAULT_BURST;
  #tokens = DEFAULT_BURST;
  #updated = Date.now();

  /** Adopts the server's announced budget; a full bucket, as the server's is after a quiet spell. */
  configure(ratePerSecond: number, burst: number, now: number = Date.now()): void {
    // Announced by the server: never trust it to be a sane number.
    this.#rate = Number.isFinite(ratePerSecond) && ratePerSecond > 0 ? Math.max(0.001, ratePerSecond) : DEFAULT_RATE;
    this.#burst = Number.isFinite(burst) && burst >= 1 ? Math.floor(burst) : 1;
    this.#tokens = this.#burst;
    this.#updated = now;
  }

  /** Tokens kept back for the Connection's own `refresh` frame (none when the burst is a single token). */
  get #reserve(): number {
    return this.#burst > 1 ? 1 : 0;
  }

  /** ms until a frame costing one token may go (0: now), keeping the reserve. */
  wait(now: number = Date.now()): number {
    this.#refill(now);
    const needed = 1 + this.#reserve;
    return this.#tokens >= needed ? 0 : Math.ceil(((needed - this.#tokens) / this.#rate) * 1000);
  }

  /** Counts `n` tokens spent (never below empty: the server takes only what is there). */
  take(n = 1, now: number = Date.now()): void {
    this.#refill(now);
    this.#tokens = Math.max(0, this.#tokens - n);
  }

  /** The server said `rate_limited`: its bucket is empty, whatever this estimate thought. */
  drain(now: number = Date.now()): void {
    this.#refill(now);
    this.#tokens = 0;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + (Math.max(0, now - this.#updated) / 1000) * this.#rate);
    this.#updated = now;
  }
}
