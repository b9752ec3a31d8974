import type { ErrorCode, ErrorFrame, ServerFrame } from "@roomcast/protocol";
import { encodeFrame } from "./wire.js";
import type { Connection } from "./connections.js";
import { ERRORS } from "@roomcast/protocol";

/** Sends a frame; a socket that is closing or gone is skipped rather than failing the caller. */
export function sendText(ws: WebSocket, text: string): boolean {
  try {
    ws.send(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends a frame that is not a message frame to a connection, counted in its flow
 * control (flow.ts). The caller checks the budget when it is done sending.
 */
export function sendCounted(conn: Connection, text: string): boolean {
  if (!sendQuiet(conn, text)) return false;
  if (conn.trace.on) conn.trace.out(conn, text);
  return true;
}

/** sendCounted without a trace event: for a fan-out, which is traced once (presence-fanout.ts). */
export function sendQuiet(conn: Connection, text: string): boolean {
  if (!sendText(conn.ws, text)) return false;
  conn.flow.other(text.length);
  return true;
}

/** A frame for one connection, not counted in its flow control (welcome, presence_state, reconnect), traced. */
export function sendFrameTo(conn: Connection, frame: ServerFrame): boolean {
  const text = encodeFrame(frame);
  if (!sendText(conn.ws, text)) return false;
  if (conn.trace.on) conn.trace.out(conn, text);
  return true;
}

/** closeWith for a known connection: its error frame is traced. */
export function closeConnection(conn: Connection, code: ErrorCode): void {
  if (conn.trace.on) conn.trace.out(conn, errorText(code));
  closeWith(conn.ws, code);
}

export function sendFrame(ws: WebSocket, frame: ServerFrame): boolean {
  return sendText(ws, encodeFrame(frame));
}

function errorText(code: ErrorCode, message?: string, id?: string): string {
  const frame = {
    type: "error",
    code,
    message: message ?? ERRORS[code].description,
    ...(id !== undefined ? { id } : {}),
  } satisfies ErrorFrame;
  return encodeFrame(frame);
}

export function sendError(ws: WebSocket, code: ErrorCode, message?: string, id?: string): boolean {
  return sendText(ws, errorText(code, message, id));
}

/** An answer to a client's frame, counted in its flow control. */
export function replyError(conn: Connection, code: ErrorCode, message?: string, id?: string): boolean {
  return sendCounted(conn, errorText(code, message, id));
}

/** An answer to a client's frame, counted in its flow control. */
export function replyFrame(conn: Connection, frame: ServerFrame): boolean {
  return sendCounted(conn, encodeFrame(frame));
}

/**
 * Closes with one of our codes; the reason is the stable error code string.
 * An `error` frame with the same code goes first: some clients only see the close
 * event seconds later (Node's WebSocket waits for the TCP teardown), and the frame
 * lets them act at once.
 */
export function closeWith(ws: WebSocket, code: ErrorCode): void {
  const close = ERRORS[code] as { close?: number };
  sendError(ws, code);
  try {
    ws.close(close.close ?? 1011, code);
  } catch {
    // Already closed.
  }
}
