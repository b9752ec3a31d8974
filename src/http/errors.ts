import { ERRORS, RoomcastError, type ErrorCode } from "@roomcast/protocol";
import type { ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { describeError, log } from "../log.js";
import { errorResponse } from "../error-response.js";

export { errorResponse };

/** Throw from handlers and middleware; `onError` turns it into the JSON response. */
export function fail(code: ErrorCode, message?: string): never {
  throw new RoomcastError(code, message);
}

export const onError: ErrorHandler = (err, c) => {
  if (err instanceof RoomcastError) {
    if (err.status >= 500) log("error", "http.error", { path: c.req.path, code: err.code, error: describeError(err) });
    // Server-side causes and configuration details stay in the log; the client gets
    // the stable code and a generic message.
    const message = err.status >= 500 ? ERRORS[err.code].description : err.message;
    return errorResponse(err.code, message, err.code === "upgrade_required" ? { Upgrade: "websocket" } : undefined);
  }
  if (err instanceof HTTPException) {
    return errorResponse(err.status === 404 ? "not_found" : "invalid_request", err.message || undefined);
  }
  log("error", "http.unhandled", { path: c.req.path, error: describeError(err) });
  return errorResponse("internal_error");
};

export const notFound: NotFoundHandler = () => errorResponse("not_found");
