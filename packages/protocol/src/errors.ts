/**
 * One table for every error Roomcast reports, shared by server, clients and docs.
 *
 * - `status`: the HTTP status when the error answers an HTTP request.
 * - `close`: the WebSocket close code when the error ends a connection or refuses an
 *   upgrade that offered `roomcast.v1` (absent when the error is only ever sent as an
 *   `error` frame answering a client frame, or over HTTP).
 * - `reconnect`: what a client should do after such a close.
 *
 * An `error` frame WITHOUT an `id` whose code has a `close` announces that close; the
 * server never sends one otherwise (answers to client frames carry the frame's id).
 *
 * Close-code ranges: 4000-4499 are retryable, 4500-4999 are terminal. A client that
 * meets an unknown code in those ranges can still decide correctly.
 */
export type ReconnectAdvice = "retry" | "refresh-token" | "never";

interface ErrorSpec {
  readonly status: number;
  readonly close?: number;
  readonly reconnect: ReconnectAdvice;
  readonly description: string;
}

export const ERRORS = {
  invalid_request: { status: 400, close: 4506, reconnect: "never", description: "The HTTP request is malformed (bad query, body or header)." },
  invalid_room: { status: 400, close: 4504, reconnect: "never", description: "The room name breaks the naming rules." },
  invalid_frame: { status: 400, reconnect: "never", description: "A WebSocket frame could not be decoded or failed validation." },
  unsupported_protocol: { status: 400, close: 4503, reconnect: "never", description: `The client did not offer a protocol version this server speaks.` },
  unauthorized: { status: 401, close: 4500, reconnect: "never", description: "The token is missing, malformed, badly signed, not yet valid, or for another audience/issuer." },
  token_expired: { status: 401, close: 4001, reconnect: "refresh-token", description: "The token has expired: fetch a fresh one, then reconnect or send a refresh frame." },
  forbidden: { status: 403, close: 4501, reconnect: "never", description: "The token does not grant this permission on this room." },
  origin_not_allowed: { status: 403, close: 4505, reconnect: "never", description: "The browser Origin is not in ALLOWED_ORIGINS." },
  kicked: { status: 403, close: 4502, reconnect: "never", description: "An administrator disconnected this user." },
  not_found: { status: 404, reconnect: "never", description: "No such route." },
  message_too_large: { status: 413, reconnect: "never", description: "The message exceeds MAX_MESSAGE_BYTES." },
  upgrade_required: { status: 426, reconnect: "never", description: "This route only accepts WebSocket upgrades." },
  rate_limited: { status: 429, close: 4008, reconnect: "retry", description: "Faster than the user's rate budget in this room allows (shared by all of the user's sockets and HTTP requests), or too many connection attempts; retry later." },
  internal_error: { status: 500, close: 4002, reconnect: "retry", description: "An unexpected server error; safe to retry with backoff." },
  server_misconfigured: { status: 500, close: 4507, reconnect: "never", description: "The server refuses to run with its current configuration (no JWT key, the dev secret in production, a bad key setting); the message names the setting." },
  too_many_connections: { status: 429, close: 4006, reconnect: "retry", description: "This user already holds MAX_CONNECTIONS_PER_USER connections in the room; close one, or retry with backoff." },
  auth_unavailable: { status: 503, close: 4007, reconnect: "retry", description: "The server could not check the token right now (its key set could not be fetched or read); retry with backoff." },
  room_full: { status: 503, close: 4003, reconnect: "retry", description: "The room holds MAX_CONNECTIONS_PER_ROOM connections already; retry with backoff." },
  connection_stale: { status: 408, close: 4004, reconnect: "retry", description: "No ping reached the server within LIVENESS_TIMEOUT_SECONDS; reconnect and resume." },
  slow_consumer: { status: 503, close: 4005, reconnect: "retry", description: "The connection fell too far behind (unconfirmed traffic over maxUnconfirmedBytes); reconnect and resume from your position." },
  going_away: { status: 503, close: 4000, reconnect: "retry", description: "The server is restarting or draining the room; reconnect (after the hinted delay, if any) and resume." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERRORS, value);
}

/** Base error of every Roomcast package: a stable string `code` plus the usual `cause`. */
export class RoomcastError extends Error {
  override name = "RoomcastError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].description, options);
    this.code = code;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}

/** The error code a close code stands for, if it is one of ours. */
export function errorCodeForClose(closeCode: number): ErrorCode | undefined {
  for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, ErrorSpec][]) {
    if (spec.close === closeCode) return code;
  }
  return undefined;
}

/**
 * What a client should do after the socket closed with `closeCode`.
 * Standard codes: 1000 (normal, by request) and 1008/1009 (policy, too big) are
 * final; everything else that is not ours (1001, 1006, 1011, 1012, 1013, ...)
 * is a network or server hiccup and worth a retry.
 */
export function reconnectAdviceForClose(closeCode: number): ReconnectAdvice {
  const code = errorCodeForClose(closeCode);
  if (code) return ERRORS[code].reconnect;
  if (closeCode >= 4000 && closeCode < 4500) return "retry";
  if (closeCode >= 4500 && closeCode < 5000) return "never";
  if (closeCode === 1000 || closeCode === 1008 || closeCode === 1009) return "never";
  return "retry";
}
