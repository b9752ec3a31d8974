/**
 * The JSON error body every Roomcast HTTP answer uses, shared by the Worker's routes
 * and the room (which refuses upgrades with it). Kept apart from `http/` so the
 * Durable Object imports nothing from the HTTP layer (Hono).
 */
import { ERRORS, type ErrorCode } from "@roomcast/protocol";

/** Every HTTP error body: `{ "error": { "code": "...", "message": "..." } }`. */
export function errorResponse(code: ErrorCode, message?: string, headers?: HeadersInit): Response {
  return Response.json(
    { error: { code, message: message ?? ERRORS[code].description } },
    { status: ERRORS[code].status, headers },
  );
}
