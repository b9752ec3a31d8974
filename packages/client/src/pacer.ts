/**
 * Client-side pacing of publishes to the limits the server announced in `welcome`,
 * so a flush of a long offline outbox is spread out instead of tripping
 * `rate_limited` on the server.
 */
export class PublishPacer {
  #rate = 20;
  #burst = 40;
  #tokens = 40;
  #updated = Date.now();

  configure(ratePerSecond: number, burst: number): void {
    this.#rate = Math.max(0.001, ratePerSecond);
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
    this.#updated = Date.now();
  }

  /** ms until a publish may go (0: now). */
  wait(now: number = Date.now()): number {
    this.#refill(now);
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) / this.#rate) * 1000);
  }

  take(now: number = Date.now()): void {
    this.#refill(now);
    this.#tokens -= 1;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#updated) / 1000) * this.#rate);
    this.#updated = now;
  }
}
