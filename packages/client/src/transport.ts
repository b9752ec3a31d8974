/**
 * Opening a socket. Browsers cannot set headers on a WebSocket, so there the token
 * travels as a second subprotocol (`roomcast.bearer.<jwt>`); Node's WebSocket
 * (undici) and most server libraries can send `Authorization: Bearer` instead,
 * which the server requires when no Origin header is present.
 */
import { BEARER_PROTOCOL_PREFIX, PROTOCOL_V1, PROTOCOL_V2, isProtocolVersion, type ProtocolVersion } from "@roomcast/protocol";

/** The subset of the WHATWG WebSocket the client uses. */
export interface SocketLike {
  readonly readyState: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type TokenTransport = "subprotocol" | "header";

/** Opens a socket. Override to inject any WHATWG-compatible implementation. */
export type SocketFactory = (url: string, protocols: string[], headers: Record<string, string>) => SocketLike;

export const isBrowser = typeof document !== "undefined" && typeof window !== "undefined";

/** Thrown by the default factory where there is no global WebSocket (Node 20): retrying cannot help. */
export class NoWebSocketError extends TypeError {
  override name = "NoWebSocketError";
  constructor() {
    super("no global WebSocket here (Node < 22?): pass one to createClient, e.g. `import WebSocket from \"ws\"; createClient({ url, token, WebSocket })`");
  }
}

/** The platform WebSocket: browsers take (url, protocols); Node's undici also takes { protocols, headers }. */
export const defaultSocketFactory: SocketFactory = (url, protocols, headers) => {
  const Impl = (globalThis as { WebSocket?: new (url: string, init?: unknown) => SocketLike }).WebSocket;
  if (!Impl) throw new NoWebSocketError();
  return Object.keys(headers).length > 0 ? new Impl(url, { protocols, headers }) : new Impl(url, protocols);
};

/**
 * A WebSocket constructor: the platform's, or one that takes options third (the `ws`
 * package's `{ headers }`). `options?: never` so that a constructor with typed
 * options (ws's `ClientOptions`) is accepted as it is.
 */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: never) => unknown;

/** Wraps a WebSocket constructor (for example the `ws` package's) as a factory. */
export function socketFactoryFrom(Impl: WebSocketConstructor): SocketFactory {
  return (url, protocols, headers) => new Impl(url, protocols, { headers } as never) as SocketLike;
}

/** What the client offers by default, newest first: the server selects the first of its own list that is offered. */
export const DEFAULT_PROTOCOLS: readonly ProtocolVersion[] = [PROTOCOL_V2, PROTOCOL_V1];

/** The `protocols` option, checked: a non-empty list of versions this client speaks, without repeats. */
export function checkProtocols(protocols: unknown): readonly ProtocolVersion[] {
  if (protocols === undefined) return DEFAULT_PROTOCOLS;
  if (!Array.isArray(protocols) || protocols.length === 0 || !protocols.every(isProtocolVersion) || new Set(protocols).size !== protocols.length) {
    throw new TypeError(`protocols must be a non-empty list of "${PROTOCOL_V2}" and/or "${PROTOCOL_V1}", got ${JSON.stringify(protocols)}`);
  }
  return protocols;
}

export function handshake(token: string, transport: TokenTransport, offered: readonly ProtocolVersion[] = DEFAULT_PROTOCOLS): { protocols: string[]; headers: Record<string, string> } {
  if (transport === "subprotocol") return { protocols: [...offered, `${BEARER_PROTOCOL_PREFIX}${token}`], headers: {} };
  return { protocols: [...offered], headers: { Authorization: `Bearer ${token}` } };
}

/**
 * The version a socket speaks, from what the server selected (`ws.protocol`, the
 * `Sec-WebSocket-Protocol` of its answer) and its `welcome.protocol`:
 * - one we offered: that one (a `welcome.protocol` that disagrees is ignored);
 * - empty (a socket implementation or proxy that does not report it): the welcome's,
 *   if we offered it, else roomcast.v1, which every server speaks the same way;
 * - anything else (never from a standard WebSocket, which fails such a handshake):
 *   undefined, and the caller drops the socket.
 */
export function negotiated(selected: string, welcome: string, offered: readonly ProtocolVersion[]): ProtocolVersion | undefined {
  if (selected !== "") return offered.find((p) => p === selected);
  return offered.find((p) => p === welcome) ?? PROTOCOL_V1;
}

/**
 * A selected subprotocol as it may appear in an error message or a log: a plain
 * `roomcast.vN` quoted, anything else redacted. A proxy that selects (echoes) the
 * offered `roomcast.bearer.<jwt>` entry must not put the token in an error event.
 */
export function describeSelectedProtocol(selected: string): string {
  if (/^roomcast\.v\d{1,6}$/.test(selected)) return `"${selected}"`;
  if (selected.startsWith(BEARER_PROTOCOL_PREFIX)) return `"${BEARER_PROTOCOL_PREFIX}…" (the token entry, redacted)`;
  return "another value (redacted)";
}

/** ws(s)://host/v1/rooms/<room>/ws from an http(s) or ws(s) base URL. */
export function roomSocketUrl(base: string, room: string, resume?: { epoch: string; after: number }): string {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol !== "ws:" && url.protocol !== "wss:") throw new TypeError(`url must be http(s) or ws(s), got ${url.protocol}`);
  url.pathname = `${url.pathname.replace(/\/$/, "")}/v1/rooms/${encodeURIComponent(room)}/ws`;
  url.search = resume ? `?epoch=${encodeURIComponent(resume.epoch)}&after=${resume.after}` : "";
  return url.toString();
}

/** http(s)://host/<path> from the same base URL, for HTTP calls. */
export function httpUrl(base: string, path: string): string {
  const url = new URL(base);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  url.pathname = `${url.pathname.replace(/\/$/, "")}${path}`;
  url.search = "";
  return url.toString();
}

const CONNECTING = 0;
const OPEN = 1;
const ignore = () => {};

/** Stops listening to a socket. `error` keeps a no-op: the `ws` package throws on an error event nobody listens to. */
function detach(socket: SocketLike): void {
  socket.onmessage = socket.onclose = socket.onopen = null;
  socket.onerror = ignore;
}

/** Closes a socket whose peer is there (a clean closing handshake), and stops listening to it. */
export function closeSocket(socket: SocketLike, code = 1000, reason = "client closed"): void {
  detach(socket);
  if (socket.readyState !== CONNECTING && socket.readyState !== OPEN) return;
  try {
    socket.close(code, reason);
  } catch {
    // already closing
  }
}

/**
 * Drops a socket on a dead link at once. A closing handshake would wait for a peer
 * that is gone: Node's WebSocket (undici) then stays CLOSING for minutes, `ws` for
 * its 30 s close timeout. `terminate()` (the `ws` package) destroys the TCP socket
 * now; elsewhere the socket is closed and every handler dropped, so nothing waits on it.
 */
export function abortSocket(socket: SocketLike, code = 4000, reason = "dead link"): void {
  detach(socket);
  const terminate = (socket as { terminate?: unknown }).terminate;
  try {
    if (typeof terminate === "function") (terminate as () => void).call(socket);
    else if (socket.readyState === CONNECTING || socket.readyState === OPEN) socket.close(code, reason);
  } catch {
    // already closing
  }
}
