/** The WebSocket subprotocol a client must offer; the server echoes only this. */
export const PROTOCOL_VERSION = "roomcast.v1";

/**
 * Browsers cannot set an `Authorization` header on a WebSocket, so they pass the
 * token as a second subprotocol entry: `roomcast.v1, roomcast.bearer.<jwt>`.
 * JWT characters (base64url and ".") are all valid subprotocol token characters.
 */
export const BEARER_PROTOCOL_PREFIX = "roomcast.bearer.";
