import * as v from "valibot";
import { ClientFrame, ServerFrame } from "./frames.js";
import type { ErrorCode } from "./errors.js";

export type DecodeResult<T> =
  | { ok: true; frame: T }
  | { ok: false; code: ErrorCode; message: string; id?: string };

/** The literal text of a ping; the server answers it without waking the room. */
export const PING = '{"type":"ping"}';
export const PONG = '{"type":"pong"}';

function decodeWith<T>(schema: v.GenericSchema<unknown, T>, raw: unknown): DecodeResult<T> {
  if (typeof raw !== "string") {
    return { ok: false, code: "invalid_frame", message: "binary frames are not supported; send JSON text" };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { ok: false, code: "invalid_frame", message: "frame is not valid JSON" };
  }
  const result = v.safeParse(schema, parsed);
  if (result.success) return { ok: true, frame: result.output };
  const issue = result.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join(".");
  const id = typeof parsed === "object" && parsed !== null && typeof (parsed as { id?: unknown }).id === "string"
    ? (parsed as { id: string }).id
    : undefined;
  return {
    ok: false,
    code: "invalid_frame",
    message: path ? `${path}: ${issue.message}` : issue.message,
    ...(id !== undefined && id.length <= 64 ? { id } : {}),
  };
}

/** Decode and validate a frame received from a client. Never throws. */
export function decodeClientFrame(raw: unknown): DecodeResult<ClientFrame> {
  return decodeWith(ClientFrame, raw);
}

/** Decode and validate a frame received from the server. Never throws. */
export function decodeServerFrame(raw: unknown): DecodeResult<ServerFrame> {
  return decodeWith(ServerFrame, raw);
}

/** Byte length of a string as UTF-8, without allocating an encoder per call. */
const encoder = new TextEncoder();
export function utf8Length(text: string): number {
  // Fast path: pure ASCII strings are one byte per UTF-16 unit.
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(text)) return text.length;
  return encoder.encode(text).byteLength;
}
