/**
 * One room's socket as a state machine:
 *
 *   idle → connecting → connected → reconnecting → connecting → …
 *                  ↘ failed (terminal close)      closed (left by the app)
 *
 * One state setter emits `{ oldState, newState }`; one teardown path (`#down`)
 * handles every way a socket ends; one `#clearTimers`. What happens after a close
 * is decided by the protocol's close-code table: retry with backoff, refresh the
 * token first, honour a drain hint, or stop for good.
 */
import {
  ERRORS,
  PING,
  isErrorCode,
  decodeServerFrame,
  type ErrorCode,
  errorCodeForClose,
  reconnectAdviceForClose,
  type ServerFrame,
  type WelcomeFrame,
} from "@roomcast/protocol";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { RoomcastClientError } from "./errors.js";
import { handshake, httpUrl, roomSocketUrl, type SocketFactory, type SocketLike, type TokenTransport } from "./transport.js";
import type { DebugLog } from "./debug.js";

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed" | "failed";

export interface StateChange {
  readonly oldState: ConnectionState;
  readonly newState: ConnectionState;
  /** For `reconnecting`: when the next attempt starts. */
  readonly retryInMs?: number;
  /** For `failed`, and for `reconnecting` after an error: why. */
  readonly error?: RoomcastClientError;
}

export type TokenProvider = string | (() => string | Promise<string>);

export interface ConnectionOptions {
  readonly url: string;
  readonly room: string;
  readonly token: TokenProvider;
  readonly transport: TokenTransport;
  readonly createSocket: SocketFactory;
  readonly backoff: BackoffOptions;
  readonly connectTimeoutMs: number;
  readonly minUptimeMs: number;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly refreshLeadMs: number;
  readonly fetch: typeof fetch | undefined;
  readonly debug: DebugLog;
}

/** What the room layer does with a connection's traffic. */
export interface ConnectionHandler {
  /** The resume position to ask for, if any. */
  resumePosition(): { epoch: string; after: number } | undefined;
  /**
   * Called every time the connection obtained a token for an attempt (before the
   * socket opens), with the token's `sub` decoded WITHOUT verification; undefined
   * when it is not a decodable JWT. `welcome.userId` is authoritative once it arrives.
   */
  identity?(userId: string | undefined): void;
  welcome(frame: WelcomeFrame): void;
  /** A frame after the welcome; `chars` is the length of its text (what flow control counts). */
  frame(frame: ServerFrame, chars: number): void;
  /** The socket is gone (whatever comes next). */
  down(): void;
}

const OPEN = 1;

/** The only frames acted on before a socket's welcome; anything else is dropped (and logged). */
const BEFORE_WELCOME: ReadonlySet<ServerFrame["type"]> = new Set(["welcome", "error", "reconnect", "pong"]);

export class Connection extends Emitter<{ state: StateChange }> {
  readonly #options: ConnectionOptions;
  readonly #handler: ConnectionHandler;
  #state: ConnectionState = "idle";
  #socket: SocketLike | undefined;
  #attempt = 0;
  #connectedAt = 0;
  #drainDelayMs: number | undefined;
  #refreshSeq = 0;
  #pingEveryMs = 15_000;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #pongTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: ConnectionOptions, handler: ConnectionHandler) {
    super();
    this.#options = options;
    this.#handler = handler;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Starts connecting (from idle), or retries now (from reconnecting). */
  connect(): void {
    if (this.#state === "idle" || this.#state === "reconnecting") void this.#open();
  }

  /** Network came back or the page became visible: retry now, or check a live socket with a ping. */
  nudge(): void {
    if (this.#state === "reconnecting") {
      this.#attempt = 0;
      this.#clearTimers();
      void this.#open();
    } else if (this.#state === "connected") {
      this.#ping();
    }
  }

  /** The network is gone: drop the socket now instead of waiting for timeouts. */
  offline(): void {
    if (this.#state === "connected" || this.#state === "connecting") this.#socket?.close(4000, "offline");
  }

  /** Sends a frame if the socket is open and welcomed. */
  send(text: string): boolean {
    if (this.#state !== "connected" || this.#socket?.readyState !== OPEN) return false;
    this.#options.debug("send", text);
    this.#socket.send(text);
    return true;
  }

  /** Closes for good (the app left the room). */
  close(): void {
    this.#teardown();
    this.#setState("closed");
  }

  // ---- the one state setter --------------------------------------------------

  #setState(newState: ConnectionState, extra: { retryInMs?: number; error?: RoomcastClientError } = {}): void {
    const oldState = this.#state;
    if (oldState === newState && newState !== "reconnecting") return;
    this.#state = newState;
    this.#options.debug("state", `${oldState} → ${newState}${extra.retryInMs !== undefined ? ` (retry in ${extra.retryInMs} ms)` : ""}${extra.error ? ` (${extra.error.code})` : ""}`);
    this.emit("state", { oldState, newState, ...extra });
  }

  // ---- opening ---------------------------------------------------------------

  async #open(): Promise<void> {
    this.#setState("connecting");
    let token: string;
    try {
      token = await this.#token();
    } catch (cause) {
      return this.#retry(new RoomcastClientError("unauthorized", "the token provider failed", { cause }));
    }
    if (this.#state !== "connecting") return; // closed while the provider ran
    const { protocols, headers } = handshake(token, this.#options.transport);
    const url = roomSocketUrl(this.#options.url, this.#options.room, this.#handler.resumePosition());
    let socket: SocketLike;
    try {
      socket = this.#options.createSocket(url, protocols, headers);
    } catch (cause) {
      return this.#retry(new RoomcastClientError("internal_error", "could not open a WebSocket", { cause }));
    }
    this.#socket = socket;
    let welcomed = false;
    this.#after(this.#options.connectTimeoutMs, () => {
      if (!welcomed) {
        this.#options.debug("timeout", `no welcome within ${this.#options.connectTimeoutMs} ms`);
        socket.close(4000, "connect timeout");
        this.#down(socket, 4000, "connect timeout", false, token);
      }
    });
    socket.onmessage = (event) => {
      if (socket !== this.#socket) return;
      this.#alive();
      const decoded = decodeServerFrame(event.data);
      if (!decoded.ok) {
        this.#options.debug("invalid-frame", decoded.message);
        return;
      }
      const frame = decoded.frame;
      this.#options.debug("receive", summary(frame));
      if (!welcomed && !BEFORE_WELCOME.has(frame.type)) {
        // Nothing the room acts on can precede the welcome: applying it would move the
        // position before the welcome sets it (and drop the replay that follows).
        this.#options.debug("dropped", `${summary(frame)} (before welcome)`);
        return;
      }
      if (frame.type === "welcome") {
        welcomed = true;
        this.#onWelcome(frame);
      } else if (frame.type === "reconnect") {
        this.#drainDelayMs = frame.delayMs;
      } else if (frame.type === "error" && frame.id === undefined && closeCodeOf(frame.code) !== undefined) {
        // The server announces its close with an error frame first; act on it now
        // rather than wait for a close event that can lag by seconds.
        socket.close(1000, "closing on server request");
        this.#down(socket, closeCodeOf(frame.code)!, frame.code, welcomed, token);
      } else if (frame.type === "refreshed") {
        this.#scheduleRefresh(frame.expiresAt);
      } else if (frame.type !== "pong") {
        this.#handler.frame(frame, (event.data as string).length); // decoded, so a string
      }
    };
    socket.onclose = (event) => this.#down(socket, event.code, event.reason, welcomed, token);
    socket.onerror = () => {
      this.#options.debug("socket-error", "(details are not exposed by WebSocket)");
      // Node's WebSocket (undici) fires only `error`, never `close`, when the upgrade
      // is refused; browsers fire both. Before it ever opened, the attempt is over
      // either way (a later `close` for this socket is then ignored).
      if (socket.readyState !== OPEN) this.#down(socket, 1006, "error", welcomed, token);
    };
  }

  #onWelcome(frame: WelcomeFrame): void {
    this.#clearTimers();
    this.#connectedAt = Date.now();
    this.#drainDelayMs = undefined;
    this.#setState("connected");
    // Ping at least three times per server liveness timeout, whatever was configured.
    this.#pingEveryMs = Math.min(this.#options.pingIntervalMs, (frame.limits.livenessTimeoutSeconds * 1000) / 3);
    this.#schedulePing();
    this.#scheduleRefresh(frame.expiresAt);
    this.#handler.welcome(frame);
  }

  async #token(): Promise<string> {
    const provider = this.#options.token;
    const token = typeof provider === "function" ? await provider() : provider;
    if (typeof token !== "string" || token === "") throw new TypeError("the token provider must return a non-empty string");
    return token;
  }

  // ---- liveness and refresh ----------------------------------------------------

  #schedulePing(): void {
    this.#after(this.#pingEveryMs, () => {
      this.#ping();
      this.#schedulePing();
    });
  }

  /** Sends the exact ping text the server auto-answers; no frame back within pongTimeoutMs means the socket is dead. */
  #ping(): void {
    if (this.#socket?.readyState !== OPEN) return;
    this.#socket.send(PING);
    if (this.#pongTimer === undefined) {
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = undefined;
        this.#options.debug("timeout", `no pong within ${this.#options.pongTimeoutMs} ms`);
        const socket = this.#socket;
        socket?.close(4000, "pong timeout");
        if (socket) this.#down(socket, 4000, "pong timeout", true, undefined);
      }, this.#options.pongTimeoutMs);
    }
  }

  /** Any frame proves the socket is alive. */
  #alive(): void {
    if (this.#pongTimer !== undefined) clearTimeout(this.#pongTimer);
    this.#pongTimer = undefined;
  }

  #scheduleRefresh(expiresAtSeconds: number): void {
    if (typeof this.#options.token !== "function") return; // a fixed token cannot be refreshed
    const at = expiresAtSeconds * 1000 - this.#options.refreshLeadMs;
    // Capped: setTimeout fires at once for delays over 2^31-1 ms (~24.8 days).
    this.#after(Math.min(2 ** 31 - 1, Math.max(1_000, at - Date.now())), async () => {
      try {
        const token = await this.#token();
        const id = `refresh-${++this.#refreshSeq}`;
        if (this.#socket?.readyState === OPEN && this.#state === "connected") {
          this.#options.debug("send", `{"type":"refresh","id":"${id}","token":"[redacted]"}`);
          this.#socket.send(JSON.stringify({ type: "refresh", id, token }));
        }
      } catch (err) {
        this.#options.debug("refresh-failed", String(err));
      }
    });
  }

  // ---- the one teardown path -------------------------------------------------

  #down(socket: SocketLike, code: number, reason: string, welcomed: boolean, token: string | undefined): void {
    if (socket !== this.#socket) return; // an old socket's late event
    this.#options.debug("close", `${code} ${reason}`);
    this.#teardown();
    if (this.#state === "closed" || this.#state === "failed") return;
    if (!welcomed && (code === 1006 || code === 1002 || code === 1015) && token !== undefined) {
      // The upgrade was refused before the socket opened; WebSocket hides the HTTP
      // status, so ask the HTTP API the same question to tell a bad token from a blip.
      void this.#probe(token).then((code) => this.#afterProbe(code, welcomed));
      return;
    }
    this.#afterClose(code, welcomed);
  }

  /** What the HTTP API said about a refused upgrade decides like the matching close would. */
  #afterProbe(code: string | undefined, welcomed: boolean): void {
    if (this.#state === "closed" || this.#state === "failed") return;
    if (code !== undefined && isErrorCode(code)) {
      const spec: { close?: number; reconnect: string } = ERRORS[code];
      if (spec.close !== undefined) return this.#afterClose(spec.close, welcomed);
      if (spec.reconnect === "never") {
        this.#setState("failed", { error: new RoomcastClientError(code, `the server refused the connection: ${code}`) });
        return;
      }
    }
    this.#afterClose(1006, welcomed);
  }

  #afterClose(code: number, welcomed: boolean): void {
    if (this.#state === "closed" || this.#state === "failed") return;
    const advice = reconnectAdviceForClose(code);
    const errorCode = errorCodeForClose(code);
    const error = errorCode ? new RoomcastClientError(errorCode, `closed with ${code} (${errorCode})`) : undefined;
    if (advice === "never") {
      this.#setState("failed", { error: error ?? new RoomcastClientError("internal_error", `closed with ${code}`) });
      return;
    }
    if (welcomed && Date.now() - this.#connectedAt >= this.#options.minUptimeMs) this.#attempt = 0;
    // A fresh token is fetched on every attempt anyway; after token_expired retry at once.
    const delay =
      this.#drainDelayMs ?? (advice === "refresh-token" && this.#attempt === 0 ? 0 : backoffDelay(this.#attempt, this.#options.backoff));
    this.#drainDelayMs = undefined;
    this.#attempt++;
    this.#retryIn(delay, error);
  }

  #retry(error: RoomcastClientError): void {
    this.#teardown();
    if (this.#state === "closed") return;
    this.#retryIn(backoffDelay(this.#attempt++, this.#options.backoff), error);
  }

  #retryIn(delay: number, error: RoomcastClientError | undefined): void {
    this.#setState("reconnecting", { retryInMs: delay, ...(error ? { error } : {}) });
    this.#after(delay, () => {
      // A browser that knows it is offline would only fail: wait for `online` (nudge) instead.
      if (isKnownOffline()) this.#options.debug("offline", "waiting for the network");
      else void this.#open();
    });
  }

  /** Asks the HTTP API (same token, same room) why the upgrade failed. Undefined: unknown. */
  async #probe(token: string): Promise<string | undefined> {
    const fetchImpl = this.#options.fetch;
    if (!fetchImpl) return undefined;
    try {
      const res = await fetchImpl(`${httpUrl(this.#options.url, `/v1/rooms/${encodeURIComponent(this.#options.room)}/messages`)}?limit=1`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (res.ok) return undefined;
      const body = (await res.json().catch(() => undefined)) as { error?: { code?: unknown } } | undefined;
      return typeof body?.error?.code === "string" ? body.error.code : undefined;
    } catch {
      return undefined;
    }
  }

  #teardown(): void {
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onmessage = socket.onclose = socket.onerror = socket.onopen = null;
      if (socket.readyState === OPEN || socket.readyState === 0) {
        try {
          socket.close(1000, "client closed");
        } catch {
          // already closing
        }
      }
      this.#handler.down();
    }
  }

  #after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  #clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#alive();
  }
}

function isKnownOffline(): boolean {
  return typeof navigator !== "undefined" && (navigator as { onLine?: boolean }).onLine === false;
}

/** The close code an error code ends a connection with, if it is one that does. */
function closeCodeOf(code: ErrorCode): number | undefined {
  return (ERRORS[code] as { close?: number }).close;
}

/** A frame for the debug log: its type, and the seqs of messages. */
function summary(frame: ServerFrame): string {
  if (frame.type === "message") return `message ${frame.seq}`;
  if (frame.type === "messages") {
    const first = frame.messages[0];
    const last = frame.messages.at(-1);
    return first && last ? `messages ${first.seq}-${last.seq}` : "messages (none)";
  }
  return frame.type;
}
