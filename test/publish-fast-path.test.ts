// The publish frame's hand-written check (packages/protocol/src/codec.ts fastPublishFrame)
// must accept exactly what the valibot schema accepts as a publish, build the same frame,
// and leave every other frame (and every refusal, with its message) to the schema.
import { describe, expect, it } from "vitest";
import * as v from "valibot";
import { ClientFrame } from "@roomcast/protocol";
import { decodeClientFrame, decodeClientFrameBySchema, fastPublishFrame } from "../packages/protocol/src/codec.js";

/** A small seeded generator (mulberry32), so a failure names a reproducible case. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

const ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-";
const BAD_CHARS = [" ", "/", "\n", "\u00e9", "\u{1f600}", "\"", "\\", "\u0000", "+", "#", "\t"];

function generator(seed: number) {
  const r = random(seed);
  const goodId = (length = 1 + r.int(64)) => Array.from({ length }, () => r.pick([...ID_CHARS])).join("");
  const id = (): unknown =>
    r.pick([
      () => goodId(),
      () => goodId(64),
      () => goodId(1),
      () => "",
      () => goodId(65 + r.int(5)),
      () => {
        const s = goodId(1 + r.int(63));
        const at = r.int(s.length + 1);
        return s.slice(0, at) + r.pick(BAD_CHARS) + s.slice(at);
      },
      () => `${goodId(3)}\n`,
      () => r.int(1000),
      () => null,
      () => true,
      () => [goodId(2)],
      () => ({ id: goodId(2) }),
    ])();
  const json = (depth = 0): unknown =>
    r.pick([
      () => null,
      () => r.int(2) === 0,
      () => r.int(10_000) - 5_000,
      () => r.next(),
      () => "",
      () => goodId(),
      () => r.pick(BAD_CHARS).repeat(1 + r.int(3)),
      () => (depth > 2 ? 0 : Array.from({ length: r.int(4) }, () => json(depth + 1))),
      () => (depth > 2 ? "x" : Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(["a", "data", "type", "id", "__proto__"]), json(depth + 1)]))),
    ])();
  const type = (): unknown => (r.int(3) > 0 ? "publish" : r.pick(["history", "ping", "presence", "refresh", "progress", "broadcast", "Publish", "publish ", "", 1, null, ["publish"], { type: "publish" }]));
  const KEYS = ["type", "id", "data", "after", "limit", "state", "token", "seq", "extra", "__proto__", "constructor", "toString"] as const;
  const field = (key: (typeof KEYS)[number]): unknown => (key === "type" ? type() : key === "id" ? id() : json());

  /** One raw frame: mostly publish-shaped objects with fields missing, extra, wrong or reordered. */
  return (): string => {
    const shape = r.int(20);
    if (shape === 0) return JSON.stringify(json());
    if (shape === 1) return r.pick(["[]", "null", '"publish"', "1", "{}", "[{\"type\":\"publish\",\"id\":\"a\",\"data\":1}]"]);
    if (shape === 2) {
      // Hand-written text: duplicate keys (the last wins), spacing, escapes.
      return r.pick([
        `{"type":"publish","id":"a","data":1,"type":"history"}`,
        `{"type":"history","id":"a","data":1,"type":"publish"}`,
        `{ "type" : "publish" , "id" : "a1" , "data" : { "x" : [ 1 , 2 ] } }`,
        `{"type":"publish","id":"a","id":"b c","data":1}`,
        `{"type":"publish","id":"\\u0061","data":null}`,
        `{"type":"pu\\u0062lish","id":"x","data":[]}`,
        `{"type":"publish","id":"a","data":1,"__proto__":{"data":2}}`,
        `{"__proto__":{"type":"publish","id":"a","data":1}}`,
        `{"type":"publish","__proto__":{"id":"a"},"data":1}`,
        `{"type":"publish","id":"a","__proto__":{"data":1}}`,
      ]);
    }
    const frame: Record<string, unknown> = {};
    const wanted: (typeof KEYS)[number][] = ["type", "id", "data"].filter(() => r.int(8) > 0) as (typeof KEYS)[number][];
    for (let i = r.int(3); i > 0; i--) wanted.push(r.pick(KEYS));
    // Shuffle, so key order varies too.
    for (let i = wanted.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [wanted[i], wanted[j]] = [wanted[j]!, wanted[i]!];
    }
    for (const key of wanted) {
      // Object.defineProperty: "__proto__" becomes an own key, as JSON.parse makes it.
      Object.defineProperty(frame, key, { value: field(key), enumerable: true, configurable: true, writable: true });
    }
    return JSON.stringify(frame);
  };
}

describe("the publish frame's fast path", () => {
  it("decodes 20,000 generated frames exactly as the schema alone does (same frame, key order, refusal and message)", () => {
    const next = generator(0x5eed);
    let fast = 0;
    let refused = 0;
    let otherAccepted = 0;
    const mismatches: string[] = [];
    for (let n = 0; n < 20_000; n++) {
      const raw = next();
      // Frames are JSON-derived: their JSON text compares values, keys and key order at once.
      const got = JSON.stringify(decodeClientFrame(raw));
      const want = JSON.stringify(decodeClientFrameBySchema(raw));
      if (got !== want) mismatches.push(`${raw}: ${got} != ${want}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        continue;
      }
      const quick = fastPublishFrame(parsed);
      const schema = v.safeParse(ClientFrame, parsed);
      if (quick !== undefined) {
        fast++;
        if (!schema.success || JSON.stringify(quick) !== JSON.stringify(schema.output)) mismatches.push(`fast path accepted ${raw}`);
      } else if (schema.success) {
        // Every publish the schema accepts takes the fast path; other frames do not.
        if (schema.output.type === "publish") mismatches.push(`fast path missed ${raw}`);
        otherAccepted++;
      } else refused++;
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
    // The generator reaches every class, so the comparison above means something.
    expect(fast).toBeGreaterThan(2_000);
    expect(refused).toBeGreaterThan(2_000);
    expect(otherAccepted).toBeGreaterThan(50);
  });

  it("returns the same frame as valibot for the edge cases it must not get wrong", () => {
    const cases: [string, boolean][] = [
      ['{"type":"publish","id":"a","data":null}', true],
      ['{"type":"publish","id":"a","data":false}', true],
      ['{"type":"publish","id":"a"}', false],
      ['{"type":"publish","data":1}', false],
      ['{"type":"publish","id":"","data":1}', false],
      [`{"type":"publish","id":"${"a".repeat(64)}","data":1}`, true],
      [`{"type":"publish","id":"${"a".repeat(65)}","data":1}`, false],
      ['{"type":"publish","id":"a\\n","data":1}', false],
      ['{"type":"publish","id":"a b","data":1}', false],
      ['{"type":"publish","id":1,"data":1}', false],
      ['{"type":"publish","id":"a","data":1,"extra":true}', true],
      ['{"type":"publish","id":"a","data":1,"__proto__":{"x":1}}', true],
      ['{"id":"a","data":1,"type":"publish"}', true],
      ['[{"type":"publish","id":"a","data":1}]', false],
    ];
    for (const [raw, ok] of cases) {
      const got = decodeClientFrame(raw);
      expect(got, raw).toStrictEqual(decodeClientFrameBySchema(raw));
      expect(got.ok, raw).toBe(ok);
      if (got.ok) expect(Object.keys(got.frame), raw).toEqual(["type", "id", "data"]);
    }
    // What a refusal says still comes from the schema, with the frame's id.
    expect(decodeClientFrame('{"type":"publish","id":"a"}')).toMatchObject({ ok: false, code: "invalid_frame", id: "a" });
  });
});
