import * as v from "valibot";
import { ClientFrame, ServerFrame, type PublishFrame } from "./frames.js";
import type { ErrorCode } from "./errors.js";
import { MESSAGE_ID } from "./room-name.js";

export type DecodeResult<T> =
  | { ok: true; frame: T }
  | { ok: false; code: ErrorCode; message: string; id?: string };

/** The literal text of a ping; the server answers it without waking the room. */
export const PING = '{"type":"ping"}';
export const PONG = '{"type":"pong"}';

function decodeWith<T>(schema: v.GenericSchema<unknown, T>, raw: unknown, fast?: (parsed: unknown) => T | undefined): DecodeResult<T> {
  if (typeof raw !== "string") {
    return { ok: false, code: "invalid_frame", message: "binary frames are not supported; send JSON text" };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { ok: false, code: "invalid_frame", message: "frame is not valid JSON" };
  }
  const quick = fast?.(parsed);
  if (quick !== undefined) return { ok: true, frame: quick };
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
    // valibot quotes the received value: cut it, so a frame cannot make its own answer large.
    message: clip(path ? `${path}: ${issue.message}` : issue.message),
    ...(id !== undefined && id.length <= 64 ? { id } : {}),
  };
}

const MAX_ERROR_MESSAGE = 200;
function clip(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE ? text : `${text.slice(0, MAX_ERROR_MESSAGE - 1)}…`;
}

/**
 * The publish frame, checked by hand: the one frame a busy room decodes per message, where
 * valibot's variant (seven options tried in turn, a closure and a dataset per parse) was
 * about 8% of a 10-subscriber room's server CPU (docs/benchmarks.md, "The small-room
 * path"). It accepts only what `ClientFrame` accepts as a publish and builds the same output
 * (the known keys in schema order, unknown ones dropped); anything else, valid or not, is
 * left to the schema (undefined), so every refusal and its message come from valibot as
 * before.
 */
export function fastPublishFrame(parsed: unknown): PublishFrame | undefined {
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const frame = parsed as { type?: unknown; id?: unknown; data?: unknown };
  if (frame.type !== "publish") return undefined;
  const { id, data } = frame;
  // JSON.parse never makes `undefined`: it means `data` is missing ("data is required").
  if (typeof id !== "string" || data === undefined || !MESSAGE_ID.test(id)) return undefined;
  return { type: "publish", id, data };
}

/** Decode and validate a frame received from a client. Never throws. */
export function decodeClientFrame(raw: unknown): DecodeResult<ClientFrame> {
  return decodeWith<ClientFrame>(ClientFrame, raw, fastPublishFrame);
}

/** decodeClientFrame without the publish fast path: the schema alone (tests compare the two). */
export function decodeClientFrameBySchema(raw: unknown): DecodeResult<ClientFrame> {
  return decodeWith(ClientFrame, raw);
}

/** Decode and validate a frame received from the server. Never throws. */
export function decodeServerFrame(raw: unknown): DecodeResult<ServerFrame> {
  return decodeWith(ServerFrame, raw);
}

/**
 * Byte length of a string as UTF-8 (what the wire carries), computed without
 * allocating. Lone surrogates count 3 bytes, as TextEncoder encodes them (U+FFFD).
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}
