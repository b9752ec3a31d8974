/**
 * `createClient`: defaults in one object, one room handle per room name (one
 * socket per room), and browser signals (online/offline, page visibility) wired to
 * every room.
 */
import { DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import type { TokenProvider } from "./connection.js";
import { debugLog, type DebugOption } from "./debug.js";
import { memoryStorage, type OutboxStorage, type OverflowPolicy } from "./outbox.js";
import { Room } from "./room.js";
import type { ManagedRoom, RoomHandle } from "./tabs/handle.js";
import { shareRoom, type TabSharingOptions } from "./tabs/share.js";
import { checkProtocols, defaultSocketFactory, isBrowser, socketFactoryFrom, type SocketFactory, type TokenTransport, type WebSocketConstructor } from "./transport.js";
import { isValidRoomName, type ProtocolVersion } from "@roomcast/protocol";

export interface ClientOptions {
  /** The service's base URL, http(s) or ws(s), as printed by `npm run dev` (e.g. http://localhost:8787). */
  url: string;
  /**
   * A JWT, or a provider called on every connection attempt and before expiry. The
   * provider may return `null`, or throw a `RoomcastClientError` with a terminal code
   * (`unauthorized`, `forbidden`), to stop for good (state `failed`); anything else it
   * throws is retried with backoff.
   */
  token: TokenProvider;
  /** How the token travels. Default: "subprotocol" in browsers, "header" elsewhere. */
  transport?: TokenTransport;
  /**
   * Protocol versions to offer, in order of preference. Default `["roomcast.v2",
   * "roomcast.v1"]`: the server picks the newest it speaks (v0.1.0 servers: v1).
   * `["roomcast.v1"]` pins v1 (e.g. behind a proxy that inspects frames).
   */
  protocols?: ("roomcast.v1" | "roomcast.v2")[];
  /** A WebSocket constructor to use instead of the global one (e.g. the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Full control over opening sockets; wins over `WebSocket`. */
  createSocket?: SocketFactory;
  /**
   * Reconnect backoff with full jitter. Default { minMs: 500, maxMs: 30000, networkMaxMs: 4000, factor: 2 }:
   * `maxMs` caps the delay after the server refused with a retryable code, `networkMaxMs` when it did not answer.
   */
  backoff?: Partial<BackoffOptions>;
  /** No welcome within this long (token provider, socket open and welcome together): give up the attempt and retry. Default 10,000. */
  connectTimeoutMs?: number;
  /** The retry counter resets only after a connection stayed up this long. Default 5,000. */
  minUptimeMs?: number;
  /** Ping interval; keep it under a third of the server's LIVENESS_TIMEOUT_SECONDS. Default 15,000. */
  pingIntervalMs?: number;
  /** No frame within this long after a ping: the connection is dead. At most a third of the server's liveness timeout. Default 10,000. */
  pongTimeoutMs?: number;
  /** Refresh the token this long before it expires (needs a token provider). Default 60,000. */
  refreshLeadMs?: number;
  outbox?: {
    /** Where queued publishes are kept. Default: memory. Use `indexedDbStorage()` to survive reloads. */
    storage?: OutboxStorage;
    /** Most unacked publishes per room. Default 1,000. */
    maxSize?: number;
    /** What a full outbox does. Default "reject-new". */
    overflow?: OverflowPolicy;
  };
  /** fetch, used (at most 3 s) to learn why a socket failed before it opened, when the server sent no error frame. Default: the global fetch. */
  fetch?: typeof fetch;
  /** How many recent messages each room keeps in `room.messages` (what `useMessages` shows). Default 200. */
  messageBuffer?: number;
  /** Log state transitions and frames (tokens redacted). */
  debug?: DebugOption;
  /**
   * Browsers: all tabs of this origin (same server, room and user) share one socket
   * per room; one tab, elected with Web Locks, holds it and serves the others over
   * BroadcastChannel. Default false (see "Sharing one connection across tabs" in
   * docs/client.md for why). Where Web Locks or BroadcastChannel are missing (Node,
   * plain http pages other than localhost), each tab has its own socket as usual.
   * Pass `true` literally for `room()` to be typed `RoomHandle`.
   */
  shareAcrossTabs?: boolean | TabSharingOptions;
}

export const DEFAULTS = {
  connectTimeoutMs: 10_000,
  minUptimeMs: 5_000,
  pingIntervalMs: 15_000,
  pongTimeoutMs: 10_000,
  refreshLeadMs: 60_000,
  outboxMaxSize: 1_000,
  outboxOverflow: "reject-new" as OverflowPolicy,
};

/** `R`: what `room()` returns: a `Room`, or with `shareAcrossTabs` a `RoomHandle` (a `Room` or a `SharedRoom`). */
export class RoomcastClient<R extends RoomHandle = Room> {
  readonly #options: ClientOptions;
  readonly #rooms = new Map<string, ManagedRoom>();
  readonly #storage: OutboxStorage;
  readonly #createSocket: SocketFactory;
  readonly #protocols: readonly ProtocolVersion[];
  #unlisten: (() => void) | undefined;
  #closed = false;

  constructor(options: ClientOptions) {
    if (!options || typeof options.url !== "string") throw new TypeError("createClient needs { url, token }");
    // Throws a TypeError for a malformed or non-WebSocket URL now rather than at connect time.
    const { protocol } = new URL(options.url);
    if (!["http:", "https:", "ws:", "wss:"].includes(protocol)) throw new TypeError(`url must be http(s) or ws(s), got ${protocol}`);
    if (typeof options.token !== "string" && typeof options.token !== "function") {
      throw new TypeError("token must be a string or a function returning one");
    }
    this.#protocols = checkProtocols(options.protocols);
    this.#options = options;
    this.#storage = options.outbox?.storage ?? memoryStorage();
    this.#createSocket = options.createSocket ?? (options.WebSocket ? socketFactoryFrom(options.WebSocket) : defaultSocketFactory);
  }

  /** The handle for `name`; the same object for every call until it is left. Connects on first use. */
  room(name: string): R {
    if (this.#closed) throw new TypeError("the client is closed: create a new one with createClient");
    if (!isValidRoomName(name)) throw new TypeError(`invalid room name "${name}": 1-128 of A-Z a-z 0-9 _ . : - starting with a letter or digit`);
    let room = this.#rooms.get(name);
    if (!room) {
      const o = this.#options;
      const forget = () => this.#rooms.delete(name);
      const open = (onLeave: () => void) => new Room(name, {
        connection: {
          url: o.url,
          room: name,
          token: o.token,
          transport: o.transport ?? (isBrowser ? "subprotocol" : "header"),
          createSocket: this.#createSocket,
          backoff: { ...DEFAULT_BACKOFF, ...o.backoff },
          connectTimeoutMs: o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
          minUptimeMs: o.minUptimeMs ?? DEFAULTS.minUptimeMs,
          pingIntervalMs: o.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
          pongTimeoutMs: o.pongTimeoutMs ?? DEFAULTS.pongTimeoutMs,
          refreshLeadMs: o.refreshLeadMs ?? DEFAULTS.refreshLeadMs,
          fetch: o.fetch ?? (typeof fetch === "function" ? fetch.bind(globalThis) : undefined),
          debug: debugLog(o.debug, name),
          protocols: this.#protocols,
        },
        outboxStorage: this.#storage,
        outboxMaxSize: o.outbox?.maxSize ?? DEFAULTS.outboxMaxSize,
        outboxOverflow: o.outbox?.overflow ?? DEFAULTS.outboxOverflow,
        onLeave,
        messageBuffer: o.messageBuffer ?? 200,
      });
      const shareSettings = {
        url: o.url,
        token: o.token,
        shareAcrossTabs: o.shareAcrossTabs,
        messageBuffer: o.messageBuffer ?? 200,
        tokenTimeoutMs: o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        storage: this.#storage,
      };
      // Shared: the tab that leads opens the real room; its leave is the shared handle's business.
      room = shareRoom(name, shareSettings, () => open(() => undefined), forget) ?? open(forget);
      this.#rooms.set(name, room);
      this.#listen();
    }
    // R is Room unless the options asked for sharing (see createClient's overloads).
    return room as unknown as R;
  }

  /**
   * Leaves every room and ends the client: `room()` throws afterwards. Durable outbox
   * entries stay stored for a later session (what `leave()` of one room forgets).
   */
  close(): void {
    this.#closed = true;
    for (const room of [...this.#rooms.values()]) room.leave({ keepOutbox: true });
    this.#unlisten?.();
    this.#unlisten = undefined;
  }

  /** Browsers: retry at once when the network returns or the page becomes visible; drop sockets when offline. */
  #listen(): void {
    if (this.#unlisten || typeof window === "undefined" || typeof window.addEventListener !== "function") return;
    const each = (kind: "online" | "offline" | "visible") => () => {
      for (const room of this.#rooms.values()) room.nudge(kind);
    };
    const online = each("online");
    const offline = each("offline");
    const visible = () => {
      if (typeof document !== "undefined" && document.visibilityState === "visible") each("visible")();
    };
    window.addEventListener("online", online);
    window.addEventListener("offline", offline);
    document.addEventListener("visibilitychange", visible);
    this.#unlisten = () => {
      window.removeEventListener("online", online);
      window.removeEventListener("offline", offline);
      document.removeEventListener("visibilitychange", visible);
    };
  }
}

export function createClient(options: ClientOptions & { shareAcrossTabs: true | TabSharingOptions }): RoomcastClient<RoomHandle>;
export function createClient(options: ClientOptions): RoomcastClient;
export function createClient(options: ClientOptions): RoomcastClient<RoomHandle> {
  return new RoomcastClient<RoomHandle>(options);
}
