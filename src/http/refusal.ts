/**
 * Refused upgrades that browsers and Node can read (docs/protocol.md §5, contract C1).
 *
 * WebSocket APIs hide the status of a refused upgrade (the page sees close 1006 and,
 * in a browser, "Unexpected response code: 403" in the console only). So an upgrade
 * that offered `roomcast.v1` is refused by the Worker itself: it accepts a socket of
 * its own (a `WebSocketPair`, no Durable Object), sends one id-less `error` frame and
 * closes with that error's close code. Requests that did not offer `roomcast.v1`, or
 * are not upgrades, keep the plain HTTP error.
 */
import * as v from "valibot";
import { ERRORS, PROTOCOL_VERSION, RoomcastError, isErrorCode, type ErrorCode, type ErrorFrame } from "@roomcast/protocol";
import { readCredentials } from "../auth/token-source.js";

/** The socket route: `/v1/rooms/:room/ws`, read from the raw path (an encoded `/` stays encoded). */
const SOCKET_ROUTE = /^\/v1\/rooms\/[^/]+\/ws$/;

/** Checks 3 and 4 of §5 answer over HTTP whatever was offered: the client is not speaking our WebSocket protocol. */
const HTTP_ONLY: ReadonlySet<ErrorCode> = new Set(["upgrade_required", "unsupported_protocol"]);

/** True for a GET of the socket route with `Upgrade: websocket` that offers `roomcast.v1`. */
export function isRoomcastUpgrade(request: Request): boolean {
  if (request.method !== "GET" || request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return false;
  if (!SOCKET_ROUTE.test(new URL(request.url).pathname)) return false;
  return readCredentials(request).offersProtocol;
}

/** The close code a refusal of `code` would use, when it may be refused over a socket at all. */
export function refusalCloseCode(code: ErrorCode): number | undefined {
  if (HTTP_ONLY.has(code)) return undefined;
  return (ERRORS[code] as { close?: number }).close;
}

/**
 * `101` selecting `roomcast.v1` (never an offered bearer entry), one `error` frame
 * without `id`, then the close. The runtime buffers what the server end sends until
 * the client end is connected, so the frame always arrives before the close.
 */
export function refuseUpgrade(code: ErrorCode, message: string, closeCode: number): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  server.accept();
  server.send(JSON.stringify({ type: "error", code, message } satisfies ErrorFrame));
  server.close(closeCode, code);
  return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": PROTOCOL_VERSION } });
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
