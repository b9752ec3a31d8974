import { BEARER_PROTOCOL_PREFIX, selectProtocol, type ProtocolVersion } from "@roomcast/protocol";

export interface OfferedCredentials {
  /** The token, from `Authorization: Bearer` or the `roomcast.bearer.` subprotocol entry. */
  token?: string;
  /** True when the token came through Sec-WebSocket-Protocol (the browser path). */
  viaSubprotocol: boolean;
  /** True when the client offered a protocol version we speak. */
  offersProtocol: boolean;
  /** The version the server selects: the first of SUPPORTED_PROTOCOLS offered (never the bearer entry). */
  protocol?: ProtocolVersion;
}

export function subprotocols(request: Request): string[] {
  const header = request.headers.get("Sec-WebSocket-Protocol");
  if (!header) return [];
  return header.split(",").map((p) => p.trim()).filter((p) => p !== "");
}

/** Reads credentials without ever logging or echoing them. */
export function readCredentials(request: Request): OfferedCredentials {
  const protocols = subprotocols(request);
  const protocol = selectProtocol(protocols);
  const offered = protocol ? { offersProtocol: true, protocol } : { offersProtocol: false };
  const auth = request.headers.get("Authorization");
  if (auth !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return { token: match?.[1] ?? "", viaSubprotocol: false, ...offered };
  }
  const entry = protocols.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  if (entry !== undefined) {
    return { token: entry.slice(BEARER_PROTOCOL_PREFIX.length), viaSubprotocol: true, ...offered };
  }
  return { viaSubprotocol: false, ...offered };
}
