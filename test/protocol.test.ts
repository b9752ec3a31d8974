import { describe, expect, it } from "vitest";
import {
  ERRORS,
  decodeClientFrame,
  decodeServerFrame,
  errorCodeForClose,
  isValidRoomName,
  reconnectAdviceForClose,
  utf8Length,
  type ErrorCode,
} from "@roomcast/protocol";

describe("decodeClientFrame", () => {
  it("accepts each client frame type", () => {
    expect(decodeClientFrame('{"type":"publish","id":"a1","data":{"x":[1,2]}}')).toEqual({
      ok: true,
      frame: { type: "publish", id: "a1", data: { x: [1, 2] } },
    });
    expect(decodeClientFrame('{"type":"history","id":"h","after":3,"limit":10}')).toMatchObject({ ok: true });
    expect(decodeClientFrame('{"type":"ping"}')).toEqual({ ok: true, frame: { type: "ping" } });
  });

  it("accepts null, false and 0 as data but not a missing field", () => {
    for (const data of ["null", "false", "0", '""']) {
      expect(decodeClientFrame(`{"type":"publish","id":"a","data":${data}}`).ok).toBe(true);
    }
    expect(decodeClientFrame('{"type":"publish","id":"a"}')).toMatchObject({ ok: false, code: "invalid_frame", id: "a" });
  });

  it("reports the offending field and echoes a usable id", () => {
    const result = decodeClientFrame('{"type":"history","id":"h9","limit":0}');
    expect(result).toMatchObject({ ok: false, code: "invalid_frame", id: "h9" });
    expect(!result.ok && result.message).toContain("limit");
  });

  it("keeps its error message short however long the value it quotes (an answer never outgrows the frame)", () => {
    const result = decodeClientFrame(JSON.stringify({ type: "x".repeat(5_000) }));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message.length).toBeLessThanOrEqual(200);
  });

  it("never throws on hostile input", () => {
    for (const raw of ["", "null", "1", '"str"', "{}", '{"type":null}', '{"__proto__":{"type":"ping"}}', new ArrayBuffer(4), undefined]) {
      const result = decodeClientFrame(raw);
      expect(result.ok).toBe(false);
    }
  });
});

describe("decodeServerFrame", () => {
  it("decodes an error frame with a code it does not know (a newer server's), keeping the code", () => {
    expect(decodeServerFrame('{"type":"error","code":"nope","message":"x"}')).toEqual({ ok: true, frame: { type: "error", code: "nope", message: "x" } });
    expect(decodeServerFrame('{"type":"error","code":"rate_limited","message":"x"}').ok).toBe(true);
    expect(decodeServerFrame('{"type":"error","code":"","message":"x"}').ok).toBe(false);
    expect(decodeServerFrame('{"type":"error","code":7,"message":"x"}').ok).toBe(false);
  });

  it("decodes a reconnect frame with a reason it does not know", () => {
    expect(decodeServerFrame('{"type":"reconnect","delayMs":5,"reason":"maintenance"}').ok).toBe(true);
  });

  it("stays strict about client frames", () => {
    expect(decodeClientFrame('{"type":"publish","id":"a","data":1,"extra":true}').ok).toBe(true); // unknown fields are ignored
    expect(decodeClientFrame('{"type":"nope"}').ok).toBe(false);
    expect(decodeClientFrame('{"type":"history","id":"a","limit":0}').ok).toBe(false);
  });
});

describe("close codes", () => {
  it("keeps every retryable code in 4000-4499 and every terminal one in 4500-4999", () => {
    for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, (typeof ERRORS)[ErrorCode]][]) {
      if (!("close" in spec)) continue;
      const close = spec.close as number;
      if (spec.reconnect === "never") expect(close, code).toBeGreaterThanOrEqual(4500);
      else expect(close, code).toBeLessThan(4500);
      expect(errorCodeForClose(close)).toBe(code);
    }
  });

  it("gives a distinct code, with refresh advice, for an expired token", () => {
    expect(reconnectAdviceForClose(ERRORS.token_expired.close)).toBe("refresh-token");
    expect(ERRORS.token_expired.close).not.toBe(ERRORS.unauthorized.close);
  });

  it("advises on codes it does not know by range and on standard codes", () => {
    expect(reconnectAdviceForClose(4321)).toBe("retry");
    expect(reconnectAdviceForClose(4999)).toBe("never");
    expect(reconnectAdviceForClose(1006)).toBe("retry");
    expect(reconnectAdviceForClose(1012)).toBe("retry");
    expect(reconnectAdviceForClose(1000)).toBe("never");
    expect(reconnectAdviceForClose(1009)).toBe("never");
  });
});

describe("room names", () => {
  it("accepts letters, digits and _ . : - up to 128 characters", () => {
    for (const name of ["a", "team-42:general", "x.y_z", "A".repeat(128)]) expect(isValidRoomName(name), name).toBe(true);
  });
  it("rejects empty, too long, wildcard, slash, space and leading punctuation", () => {
    for (const name of ["", "A".repeat(129), "team:*", "a/b", "a b", ":lead", "-lead", "é"]) {
      expect(isValidRoomName(name), name).toBe(false);
    }
  });
});

describe("utf8Length", () => {
  it("counts UTF-8 bytes", () => {
    expect(utf8Length("abc")).toBe(3);
    expect(utf8Length("é")).toBe(2);
    expect(utf8Length("😀")).toBe(4);
  });
});

describe("utf8Length agrees with TextEncoder", () => {
  it("on ASCII, 2-, 3- and 4-byte characters and lone surrogates", () => {
    for (const s of ["", "plain", "ñandú", "日本語", "a😀b😀", "\ud800x", "x\udc00", "\ud83d"]) {
      expect(utf8Length(s), JSON.stringify(s)).toBe(new TextEncoder().encode(s).byteLength);
    }
  });
});
