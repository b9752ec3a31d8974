import type { ErrorCode } from "@roomcast/protocol";

/**
 * Every error the client reports: the server's stable codes (see the protocol's
 * error table) plus a few of the client's own.
 */
export type ClientErrorCode =
  | ErrorCode
  /** `publish(data, { timeoutMs })` ran out before the ack. */
  | "publish_timeout"
  /** The outbox was full (see `outbox.maxSize` and `outbox.overflow`). */
  | "outbox_full"
  /** The room was left, or the client closed, before the operation finished. */
  | "room_closed"
  /** No welcome within `connectTimeoutMs` (token provider, socket open and welcome together). */
  | "connect_timeout"
  /**
   * The token provider threw, or returned something other than a string or null: a
   * transient failure (say, the app's backend is unreachable), retried with backoff.
   * The provider's error is the `cause`.
   */
  | "token_unavailable"
  /** No WebSocket implementation: pass `WebSocket` (e.g. the `ws` package) or `createSocket`. Terminal. */
  | "websocket_unavailable"
  /** A code from a newer server this version does not know: a generic error, its string kept. */
  | (string & {});

export class RoomcastClientError extends Error {
  override name = "RoomcastClientError";
  readonly code: ClientErrorCode;
  /**
   * For `publish_timeout`: whether the message was ever written to a socket (on any
   * connection). If it was, the server may have stored it: it stays in the outbox and
   * is sent again with the same id (the server dedupes) until acked, which the room's
   * `ack` event reports. If not, it was withdrawn and is surely not stored.
   */
  readonly sent?: boolean;
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown; sent?: boolean }) {
    super(message, options);
    this.code = code;
    if (options?.sent !== undefined) this.sent = options.sent;
  }
}
