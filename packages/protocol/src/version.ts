/**
 * The WebSocket subprotocols the server speaks (docs/protocol.md, "Versions"). A
 * client offers the ones it speaks in `Sec-WebSocket-Protocol`; the server selects
 * the first of SUPPORTED_PROTOCOLS (its preference, newest first) that the client
 * offered, echoes it, and names it in `welcome.protocol`. Both are served at once,
 * in the same room.
 *
 * - `roomcast.v1`: every publish is answered by an `ack` (or an `error`).
 * - `roomcast.v2`: the same frames, except that a publish stored while the
 *   publisher's connection is live gets no `ack` frame: the `message`/`messages`
 *   frame carrying it back to the publisher (same `id`, `from` = its user id) is the
 *   ack, with its `seq`. Duplicates, and publishes sent before the connection is
 *   live (during its replay), are still acked explicitly.
 */
export const PROTOCOL_V1 = "roomcast.v1";
export const PROTOCOL_V2 = "roomcast.v2";

export type ProtocolVersion = typeof PROTOCOL_V1 | typeof PROTOCOL_V2;

/** Every version the server speaks, in its order of preference (newest first). */
export const SUPPORTED_PROTOCOLS: readonly ProtocolVersion[] = [PROTOCOL_V2, PROTOCOL_V1];

/**
 * @deprecated `roomcast.v1` only; use PROTOCOL_V1, or SUPPORTED_PROTOCOLS for what the
 * server speaks. Kept because minimal clients and tools import it.
 */
export const PROTOCOL_VERSION = PROTOCOL_V1;

export function isProtocolVersion(x: unknown): x is ProtocolVersion {
  return x === PROTOCOL_V1 || x === PROTOCOL_V2;
}

/**
 * The version a server speaking `supported` selects for a client that offered
 * `offered` (subprotocol entries in the client's order): the first of `supported`
 * that was offered, whatever order the client listed them in; undefined when none was.
 */
export function selectProtocol(offered: readonly string[], supported: readonly ProtocolVersion[] = SUPPORTED_PROTOCOLS): ProtocolVersion | undefined {
  return supported.find((p) => offered.includes(p));
}

/**
 * Browsers cannot set an `Authorization` header on a WebSocket, so they pass the
 * token as one more subprotocol entry: `roomcast.v2, roomcast.v1, roomcast.bearer.<jwt>`.
 * JWT characters (base64url and ".") are all valid subprotocol token characters.
 * The server never selects (echoes) this entry.
 */
export const BEARER_PROTOCOL_PREFIX = "roomcast.bearer.";
