import { describe, expect, it } from "vitest";
import { HISTORY_CHARS_PER_TOKEN, TokenBucket, UserBuckets, payForHistory } from "../src/room/rate-limit.js";

describe("history is paid by size", () => {
  it("costs one token per request and one per 64 KiB read, and cuts the page to what the bucket can pay", () => {
    const bucket = new TokenBucket(1e-9, 40);
    const offered: number[] = [];
    // (A refill too slow to matter.) A reader that always fills what it is offered (a log of large messages).
    const read = (maxChars: number) => {
      offered.push(maxChars);
      return { page: maxChars, chars: maxChars };
    };
    // 1 MiB asked: the bucket (39 left after the request) can pay for all of it: 16 tokens.
    expect(payForHistory(bucket, 1 << 20, read)).toBe(1 << 20);
    expect(bucket.available()).toBe(40 - 1 - 16);
    // Again: 22 after the request, still 16 for the page: 6 left. Then 5 after the
    // request: the page is cut to the 5 tokens' worth the bucket can pay.
    payForHistory(bucket, 1 << 20, read);
    expect(bucket.available()).toBe(6);
    expect(payForHistory(bucket, 1 << 20, read)).toBe(5 * HISTORY_CHARS_PER_TOKEN);
    expect(bucket.available()).toBe(0);
    // Empty: refused before anything is read.
    expect(payForHistory(bucket, 1 << 20, read)).toBeUndefined();
    expect(offered).toHaveLength(3);
  });

  it("charges small pages one token each", () => {
    const bucket = new TokenBucket(1e-9, 10);
    for (let i = 0; i < 10; i++) expect(payForHistory(bucket, 1 << 20, () => ({ page: i, chars: 20_000 }))).toBe(i);
    expect(payForHistory(bucket, 1 << 20, () => ({ page: 99, chars: 1 }))).toBeUndefined();
  });
});

describe("UserBuckets", () => {
  it("gives each user one bucket, sized by a rate claim when there is one, and forgets full ones", () => {
    const buckets = new UserBuckets(5, 10);
    expect(buckets.of("a")).toBe(buckets.of("a"));
    expect(buckets.of("b", { perSecond: 100, burst: 200 }).burst).toBe(200);
    expect(buckets.of("b").burst).toBe(200); // a socket of the backend uses its bucket
    buckets.of("a").take(3);
    buckets.prune();
    expect(buckets.size).toBe(1); // b was full and is forgotten; a still owes tokens
  });
});
