import { isValidRoomName, RoomcastError, type Permission } from "@roomcast/protocol";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env.js";
import { authConfigFromEnv, verifyToken } from "../auth/verify.js";
import { permissionsFor } from "../auth/capabilities.js";
import { readCredentials } from "../auth/token-source.js";
import { isOriginAllowed } from "./origin.js";
import { fail } from "./errors.js";

/** Validates `:room` before anything can create a Durable Object for it. */
export const roomParam = createMiddleware<AppEnv>(async (c, next) => {
  const room = c.req.param("room");
  if (room === undefined || !isValidRoomName(room)) {
    fail("invalid_room", "room names are 1-128 characters of A-Z a-z 0-9 _ . : - and start with a letter or digit");
  }
  c.set("room", room);
  await next();
});

/** Exact-match Origin check; see ./origin.ts. In development the server's own origin is allowed too. */
export const checkOrigin = createMiddleware<AppEnv>(async (c, next) => {
  const browserExpected = readCredentials(c.req.raw).viaSubprotocol;
  const origin = c.req.header("Origin") ?? null;
  const own = c.env.ENVIRONMENT === "development" ? new URL(c.req.url).origin : undefined;
  if (!isOriginAllowed(origin, c.env.ALLOWED_ORIGINS, browserExpected, own)) {
    fail("origin_not_allowed", originRefusal(origin));
  }
  await next();
});

/** What the client is told; the log line (hints.ts) adds what to change. */
function originRefusal(origin: string | null): string {
  if (origin === null) return "a request with its token in the roomcast.bearer. subprotocol must carry an Origin header";
  if (origin === "null") return "Origin null is never allowed";
  const shown = origin.length <= 160 ? origin : `${origin.slice(0, 159)}…`;
  return `Origin ${shown} is not in the server's ALLOWED_ORIGINS`;
}

/**
 * Verifies the bearer token and requires `permission` on the room. Sets `identity`
 * to the permissions resolved for this room only.
 */
export function authorize(permission: Permission) {
  return createMiddleware<AppEnv>(async function authorizeMiddleware(c, next) {
    const { token } = readCredentials(c.req.raw);
    if (token === undefined) fail("unauthorized", "no token: send Authorization: Bearer <jwt> or the roomcast.bearer.<jwt> subprotocol");
    const verified = await verifyToken(token, authConfigFromEnv(c.env));
    const room = c.get("room");
    const permissions = permissionsFor(verified.cap, room);
    if (!permissions.includes(permission)) {
      throw new RoomcastError("forbidden", `the token does not grant "${permission}" on this room`);
    }
    c.set("identity", { userId: verified.userId, room, permissions, expiresAt: verified.expiresAt, ...(verified.rate ? { rate: verified.rate } : {}) });
    await next();
  });
}

// ---- request bodies ----------------------------------------------------------

/**
 * Reads a request body as UTF-8 text of at most `maxBytes` bytes, without ever holding
 * more than that: a `Content-Length` over the cap is refused before a byte is read, and
 * the stream itself is read chunk by chunk and cancelled as soon as it passes the cap
 * (chunked bodies, or a `Content-Length` the stream does not keep to). `tooLarge`
 * throws the route's error. (hono/body-limit trusts a `Content-Length` and then reads
 * the stream uncapped, so it is not used.)
 */
export async function readBodyText(request: Request, maxBytes: number, tooLarge: () => never): Promise<string> {
  const declared = request.headers.get("Content-Length");
  if (declared !== null && /^\d+$/.test(declared.trim()) && Number(declared.trim()) > maxBytes) tooLarge();
  const body = request.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.cancel().catch(() => {});
      tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
