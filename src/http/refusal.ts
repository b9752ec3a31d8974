/**
 * Refused upgrades that browsers and Node can read (docs/protocol.md §5, contract C1).
 *
 * WebSocket APIs hide the status of a refused upgrade (the page sees close 1006 and,
 * in a browser, "Unexpected response code: 403" in the console only). So an upgrade
 * that offered a version we speak (`roomcast.v1` or `roomcast.v2`) is refused by the
 * Worker itself: it accepts a socket of its own (a `WebSocketPair`, no Durable
 * Object) selecting the version the client would have got, sends one id-less `error`
 * frame and closes with that error's close code. Requests that offered neither, or
 * are not upgrades, keep the plain HTTP error.
 */
import * as v from "valibot";
import { ERRORS, PROTOCOL_V1, RoomcastError, isErrorCode, type ErrorCode, type ErrorFrame, type ProtocolVersion } from "@roomcast/protocol";
import { readCredentials } from "../auth/token-source.js";

/** The socket route: `/v1/rooms/:room/ws`, read from the raw path (an encoded `/` stays encoded). */
const SOCKET_ROUTE = /^\/v1\/rooms\/[^/]+\/ws$/;

/** Checks 3 and 4 of §5 answer over HTTP whatever was offered: the client is not speaking our WebSocket protocol. */
const HTTP_ONLY: ReadonlySet<ErrorCode> = new Set(["upgrade_required", "unsupported_protocol"]);

/**
 * For a GET of the socket route with `Upgrade: websocket` that offers a version we
 * speak: the version the server selects (SUPPORTED_PROTOCOLS order); else undefined.
 */
export function roomcastUpgrade(request: Request): ProtocolVersion | undefined {
  if (request.method !== "GET" || request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return undefined;
  if (!SOCKET_ROUTE.test(new URL(request.url).pathname)) return undefined;
  return readCredentials(request).protocol;
}

/** True for an upgrade of the socket route that offers `roomcast.v1` or `roomcast.v2`. */
export function isRoomcastUpgrade(request: Request): boolean {
  return roomcastUpgrade(request) !== undefined;
}

/** The close code a refusal of `code` would use, when it may be refused over a socket at all. */
export function refusalCloseCode(code: ErrorCode): number | undefined {
  if (HTTP_ONLY.has(code)) return undefined;
  return (ERRORS[code] as { close?: number }).close;
}

/**
 * `101` selecting `protocol` (the version the client would have been served; never
 * an offered bearer entry: a browser fails a socket whose selected subprotocol it
 * did not offer, and would see no frame), one `error` frame without `id`, then the
 * close. The runtime buffers what the server end sends until the client end is
 * connected, so the frame always arrives before the close.
 */
export function refuseUpgrade(code: ErrorCode, message: string, closeCode: number, protocol: ProtocolVersion = PROTOCOL_V1): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  server.send(JSON.stringify({ type: "error", code, message } satisfies ErrorFrame));
  server.close(closeCode, code);
  return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": protocol } });
}

const RoomErrorBody = v.object({ error: v.object({ code: v.custom<ErrorCode>(isErrorCode, "unknown error code"), message: v.string() }) });

/**
 * The room refused the upgrade (banned, full, too many connections of the user, or a
 * failure) with a JSON error response: throw it as a `RoomcastError`, so it takes the
 * same path as the Worker's own refusals. The room never accepted a socket for it.
 */
export async function throwRoomRefusal(response: Response): Promise<never> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  const parsed = v.safeParse(RoomErrorBody, body);
  if (!parsed.success) {
    throw new RoomcastError("internal_error", `the room answered the upgrade with HTTP ${response.status} and no error body`);
  }
  throw new RoomcastError(parsed.output.error.code, parsed.output.error.message);
}
