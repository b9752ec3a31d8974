import { ERRORS, RoomcastError, type ErrorCode } from "@roomcast/protocol";
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../env.js";
import { describeError, log } from "../log.js";
import { errorResponse } from "../error-response.js";
import { logRefusal } from "./hints.js";
import { refusalCloseCode, refuseUpgrade, roomcastUpgrade } from "./refusal.js";

export { errorResponse };

/** Throw from handlers and middleware; `onError` turns it into the JSON response. */
export function fail(code: ErrorCode, message?: string): never {
  throw new RoomcastError(code, message);
}

/**
 * Codes whose message may carry server-side detail (a key set's URL or fetch error, an
 * exception's text): the client gets the table's description; the detail goes to the log.
 * Every other message is written for the client (server_misconfigured names the setting
 * to fix, never a value of it).
 */
const PRIVATE_MESSAGE: ReadonlySet<ErrorCode> = new Set(["internal_error", "auth_unavailable"]);

/**
 * Every refusal, one path: the message the client may see, one `http.refused` log line,
 * then either a readable WebSocket refusal (an upgrade that offered roomcast.v1 or v2, §5) or
 * the JSON error response.
 */
export function refuse(c: Context<AppEnv>, code: ErrorCode, detail: string, cause?: unknown): Response {
  const message = PRIVATE_MESSAGE.has(code) ? ERRORS[code].description : detail;
  const protocol = roomcastUpgrade(c.req.raw);
  const closeCode = protocol !== undefined ? refusalCloseCode(code) : undefined;
  const status = ERRORS[code].status;
  logRefusal({
    code,
    status,
    message: PRIVATE_MESSAGE.has(code) ? detail : message,
    via: closeCode === undefined ? "http" : "websocket",
    request: c.req.raw,
    env: c.env,
    ...(cause !== undefined ? { cause } : {}),
  });
  if (closeCode !== undefined) return refuseUpgrade(code, message, closeCode, protocol);
  return errorResponse(code, message, code === "upgrade_required" ? { Upgrade: "websocket" } : undefined);
}

export const onError: ErrorHandler<AppEnv> = (err, c) => {
  // The cause (a key set's fetch error, a jose failure) is logged for server faults only.
  if (err instanceof RoomcastError) return refuse(c, err.code, err.message, err.cause);
  if (err instanceof HTTPException) {
    return refuse(c, err.status === 404 ? "not_found" : "invalid_request", err.message || ERRORS.invalid_request.description);
  }
  log("error", "http.unhandled", { path: c.req.path, error: describeError(err) });
  return refuse(c, "internal_error", "unexpected exception (logged as http.unhandled)");
};

export const notFound: NotFoundHandler<AppEnv> = (c) => refuse(c, "not_found", ERRORS.not_found.description);
