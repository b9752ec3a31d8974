/**
 * Every frame the room sends, encoded in one place. Stored payloads are JSON text
 * and are spliced in as they are (serialised once, when published, never parsed
 * again on the way out); everything else goes through `JSON.stringify` of a value
 * typed against the protocol's frame types.
 */
import type { BroadcastedFrame, HistoryFrame, Message, PresenceDiffFrame, ServerFrame } from "@roomcast/protocol";
import type { StoredMessage } from "./message-log.js";
import type { PresenceDiff } from "./presence.js";

/** Any frame without stored payloads. */
export function encodeFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/** The wire form of a stored message, with `data` spliced in as raw JSON. */
export function encodeMessage(m: StoredMessage): string {
  const head = { seq: m.seq, id: m.id, from: m.from, ts: m.ts } satisfies Omit<Message, "data">;
  return `${JSON.stringify(head).slice(0, -1)},"data":${m.data}}`;
}

/** A `message` frame for one stored message. */
export function messageFrame(m: StoredMessage): string {
  return `{"type":"message",${encodeMessage(m).slice(1)}`;
}

/** One `messages` frame carrying several messages in order. */
export function messagesFrame(messages: readonly StoredMessage[]): string {
  return `{"type":"messages","messages":[${messages.map(encodeMessage).join(",")}]}`;
}

/** `message` for one, `messages` for several (live batches and replay pages). */
export function messagesOrMessage(messages: readonly StoredMessage[]): string {
  return messages.length === 1 ? messageFrame(messages[0]!) : messagesFrame(messages);
}

/** The answer to a `history` frame. */
export function historyFrame(id: string, messages: readonly StoredMessage[], hasMore: boolean): string {
  const head = JSON.stringify({ type: "history", id, hasMore } satisfies Omit<HistoryFrame, "messages">);
  return `${head.slice(0, -1)},"messages":[${messages.map(encodeMessage).join(",")}]}`;
}

/** The body of `GET /v1/rooms/:room/messages`. */
export function historyBody(head: { room: string; epoch: string; head: number; hasMore: boolean }, messages: readonly StoredMessage[]): string {
  return `${JSON.stringify(head).slice(0, -1)},"messages":[${messages.map(encodeMessage).join(",")}]}`;
}

export function presenceDiffFrame(diff: PresenceDiff): string {
  return encodeFrame({ type: "presence_diff", ...diff } satisfies PresenceDiffFrame);
}

/** An ephemeral `broadcast` as relayed, with the sender's `data` (JSON text) spliced in. */
export function broadcastFrame(from: string, connectionId: string, ts: number, data: string): string {
  const head = JSON.stringify({ type: "broadcast", from, connectionId, ts } satisfies Omit<BroadcastedFrame, "data">);
  return `${head.slice(0, -1)},"data":${data}}`;
}
