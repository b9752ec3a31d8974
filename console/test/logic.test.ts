import { describe, expect, it } from "vitest";
import { bucketEvents, mergeEvents, MAX_EVENTS } from "../src/flow.js";
import { errorsByRoom, parsePrometheus } from "../src/prom.js";
import { RateTracker } from "../src/rates.js";
import { cleanToken } from "../src/session.js";
import type { TraceEvent } from "../src/api.js";

describe("parsePrometheus", () => {
  it("reads samples with escaped labels and skips comments and broken lines", () => {
    const text = [
      "# HELP roomcast_publishes_total Publishes by outcome",
      "# TYPE roomcast_publishes_total counter",
      'roomcast_publishes_total{room="a\\"b",outcome="accepted"} 7',
      'roomcast_publishes_total{room="a\\"b",outcome="rate_limited"} 2 1700000000000',
      'roomcast_slow_consumer_closes_total{room="x,y"} 1',
      'roomcast_connections{room="x,y"} 3',
      'roomcast_publishes_total{outcome="rate_limited"} 99',
      'broken{room="z" 5',
      "",
    ].join("\n");
    const samples = parsePrometheus(text);
    expect(samples).toHaveLength(5);
    expect(samples[1]).toEqual({ name: "roomcast_publishes_total", labels: { room: 'a"b', outcome: "rate_limited" }, value: 2 });
    // Service totals (no room label) and accepted publishes are not a room's errors.
    expect(Object.fromEntries(errorsByRoom(samples))).toEqual({ 'a"b': 2, "x,y": 1 });
  });
});

describe("RateTracker", () => {
  it("gives the increase per second over the window and starts over when a counter goes down", () => {
    const t = new RateTracker(10_000);
    t.record("r", 0, 0);
    expect(t.rate("r")).toBeNull();
    t.record("r", 2_000, 10);
    expect(t.rate("r")).toBe(5);
    for (let s = 4; s <= 20; s += 2) t.record("r", s * 1000, s * 5);
    // Window of 10 s: from the sample at 10 s (50) to 20 s (100).
    expect(t.rate("r")).toBe(5);
    t.record("r", 22_000, 3); // new epoch: headSeq restarted
    expect(t.rate("r")).toBeNull();
    t.record("r", 24_000, 7);
    expect(t.rate("r")).toBe(2);
    expect(t.increase("r")).toBe(4);
    t.retain(new Set());
    expect(t.rate("r")).toBeNull();
  });
});

const ev = (id: number, at: number, dir: "in" | "out", extra: Partial<TraceEvent> = {}): TraceEvent => ({ id, at, dir, type: "publish", bytes: 10, ...extra });

describe("flow buckets", () => {
  it("counts frames in, out and errors per bucket over the span", () => {
    const now = 1_002_500; // mid-bucket
    const b = bucketEvents([ev(1, now - 100, "in"), ev(2, now - 50, "out", { type: "messages" }), ev(3, now - 6_000, "in", { outcome: "rate_limited" }), ev(4, now - 400_000, "in"), ev(5, now - 10, "out", { type: "error" })], now, 60_000, 5_000);
    expect(b.inbound).toHaveLength(12);
    expect(b.inbound.at(-1)).toBe(1);
    expect(b.outbound.at(-1)).toBe(2);
    expect(b.errors.at(-1)).toBe(1);
    expect(b.inbound.at(-2)).toBe(1);
    expect(b.errors.at(-2)).toBe(1);
    expect(b.inbound.reduce((a, x) => a + x, 0)).toBe(2); // the 400 s old one is outside
  });

  it("merges only new ids, in order, and bounds what is held", () => {
    const now = 10_000_000;
    const held = [ev(1, now, "in"), ev(2, now, "out")];
    const merged = mergeEvents(held, [ev(2, now, "out"), ev(4, now, "in"), ev(3, now, "out")], now);
    expect(merged.map((e) => e.id)).toEqual([1, 2, 3, 4]);
    const many = Array.from({ length: MAX_EVENTS + 10 }, (_, i) => ev(i + 10, now, "in"));
    expect(mergeEvents(merged, many, now)).toHaveLength(MAX_EVENTS);
    expect(mergeEvents([ev(1, now - 11 * 60_000, "in")], [ev(2, now, "in")], now).map((e) => e.id)).toEqual([2]);
  });
});

describe("cleanToken", () => {
  it("takes a pasted JWT (with or without Bearer) and refuses anything else", () => {
    expect(cleanToken("  Bearer aa.bb.cc \n")).toBe("aa.bb.cc");
    expect(cleanToken("aa.bb")).toBeNull();
    expect(cleanToken('aa.bb.cc"')).toBeNull();
    expect(cleanToken("a b.c.d")).toBeNull();
  });
});
