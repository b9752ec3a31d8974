import { describe, expect, it } from "vitest";
import { DEFAULT_BACKOFF, backoffDelay, retryCeiling } from "../../src/backoff.js";

const options = { minMs: 500, maxMs: 30_000, factor: 2 };
const lowest = () => 0;
const highest = () => 0.999_999_999;

describe("backoffDelay (full jitter)", () => {
  it.each([
    [0, 500],
    [1, 1_000],
    [2, 2_000],
    [3, 4_000],
    [4, 8_000],
    [5, 16_000],
  ])("retry %i waits somewhere in [0, %i ms)", (attempt, ceiling) => {
    expect(backoffDelay(attempt, options, lowest)).toBe(0);
    expect(backoffDelay(attempt, options, highest)).toBe(ceiling - 1);
    expect(backoffDelay(attempt, options, () => 0.5)).toBe(ceiling / 2);
  });

  it("never waits maxMs or longer, however many retries failed", () => {
    for (const attempt of [6, 7, 10, 50, 1_000]) {
      expect(backoffDelay(attempt, options, highest)).toBe(29_999);
    }
    // 500 × 2^6 = 32,000 is the first ceiling over the cap.
    expect(backoffDelay(5, options, highest)).toBeLessThan(backoffDelay(6, options, highest));
  });

  it("grows by the configured factor", () => {
    const triple = { minMs: 100, maxMs: 1_000_000, factor: 3 };
    const ceilings = [0, 1, 2, 3, 4].map((attempt) => backoffDelay(attempt, triple, highest) + 1);
    expect(ceilings).toEqual([100, 300, 900, 2_700, 8_100]);
  });

  it("treats a negative attempt as the first retry", () => {
    expect(backoffDelay(-3, options, highest)).toBe(499);
  });

  it("returns whole milliseconds within the window with the default random source", () => {
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(2);
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(DEFAULT_BACKOFF.minMs * DEFAULT_BACKOFF.factor ** 2);
    }
  });

  it("defaults to 500 ms doubling up to 30 s, and up to 4 s when the server did not answer", () => {
    expect(DEFAULT_BACKOFF).toEqual({ minMs: 500, maxMs: 30_000, networkMaxMs: 4_000, factor: 2 });
  });
});

describe("retryCeiling", () => {
  it("keeps maxMs after a pushback and caps at networkMaxMs otherwise", () => {
    const o = { minMs: 500, maxMs: 30_000, networkMaxMs: 4_000, factor: 2 };
    expect(backoffDelay(10, retryCeiling(o, true), highest)).toBe(29_999);
    expect(backoffDelay(10, retryCeiling(o, false), highest)).toBe(3_999);
    expect(backoffDelay(1, retryCeiling(o, false), highest)).toBe(999); // below the cap: unchanged
  });

  it("never raises the ceiling above maxMs", () => {
    const o = { minMs: 500, maxMs: 2_000, networkMaxMs: 4_000, factor: 2 };
    expect(backoffDelay(10, retryCeiling(o, false), highest)).toBe(1_999);
  });
});
