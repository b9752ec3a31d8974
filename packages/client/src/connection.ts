/**
 * One room's socket as a state machine:
 *
 *   idle → connecting → connected → reconnecting → connecting → …
 *                  ↘ failed (terminal close; a fixed token that expired)
 *   closed (left by the app) from any state, failed included
 *
 * One state setter emits `{ oldState, newState }`; one teardown path (`#down`)
 * handles every way a socket ends; one `#clearTimers`. What happens after a close
 * is decided by the protocol's close-code table: retry with backoff, refresh the
 * token first, honour a drain hint, or stop for good.
 *
 * An attempt (token, socket open, welcome) runs under one timer, `connectTimeoutMs`,
 * and carries a number: whatever an older attempt's provider, socket or probe does
 * later is ignored, so nothing can hold the machine in `connecting`.
 */
import {
  ERRORS,
  PING,
  isErrorCode,
  decodeServerFrame,
  errorCodeForClose,
  reconnectAdviceForClose,
  type ProtocolVersion,
  type ServerFrame,
  type WelcomeFrame,
} from "@roomcast/protocol";
import { backoffDelay, retryCeiling, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { RoomcastClientError } from "./errors.js";
import { livenessTiming } from "./limits.js";
import { PROBE_TIMEOUT_MS, probeRefusal } from "./probe.js";
import { tokenFrom, tokenSubject, type TokenProvider } from "./token.js";
import { DEFAULT_PROTOCOLS, NoWebSocketError, abortSocket, closeSocket, describeSelectedProtocol, handshake, negotiated, roomSocketUrl, type SocketFactory, type SocketLike, type TokenTransport } from "./transport.js";
import { frameSummary, type DebugLog } from "./debug.js";
import { closeCodeOf, isKnownOffline, isPushback } from "./close-policy.js";
import { PingClock } from "./stats.js";

export type { TokenProvider } from "./token.js";

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed" | "failed";

export interface StateChange {
  readonly oldState: ConnectionState;
  readonly newState: ConnectionState;
  /** For `reconnecting`: when the next attempt starts. */
  readonly retryInMs?: number;
  /** For `failed`, and for `reconnecting` after an error: why. */
  readonly error?: RoomcastClientError;
}

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
  /** Protocol versions to offer, in order of preference (default: roomcast.v2, roomcast.v1). */
  readonly protocols?: readonly ProtocolVersion[];
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
  /** A pong answered one of our pings after `ms` (room.stats()). */
  rtt?(ms: number): void;
}

const OPEN = 1;
/** While the browser says it is offline, look again this often (in case `online` is missed). */
const OFFLINE_RECHECK_MS = 5_000;

/** The only frames acted on before a socket's welcome; anything else is dropped (and logged). */
const BEFORE_WELCOME: ReadonlySet<ServerFrame["type"]> = new Set(["welcome", "error", "reconnect", "pong"]);

/** How a socket ended, as `#down` needs it. */
interface Ending {
  readonly code: number;
  readonly reason: string;
  readonly welcomed: boolean;
  /** The attempt's token, for the HTTP probe of a socket that never opened; undefined: do not probe. */
  readonly token?: string | undefined;
  /** What the server or the client said about it, when more than the close code. */
  readonly error?: RoomcastClientError | undefined;
}

export class Connection extends Emitter<{ state: StateChange }> {
  readonly #options: ConnectionOptions;
  readonly #handler: ConnectionHandler;
  #state: ConnectionState = "idle";
  #socket: SocketLike | undefined;
  /** Numbers attempts: callbacks of an older attempt compare and do nothing. */
  #attemptId = 0;
  /** Backoff counter: grows with each failure, halves on a welcome, resets after minUptimeMs up. */
  #attempt = 0;
  #connectedAt = 0;
  #drainDelayMs: number | undefined;
  #refreshSeq = 0;
  /** The id of the refresh frame awaiting its answer, if any. */
  #refreshId: string | undefined;
  /** Retries of the current session's refresh (backoff counter). */
  #refreshAttempt = 0;
  /** When the current session ends (`welcome`/`refreshed` `expiresAt`, ms). */
  #sessionEndsAt = 0;
  #pingEveryMs = 15_000;
  #pongTimeoutMs = 10_000;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  /** Times each ping to its pong, on the current socket. */
  readonly #pingClock = new PingClock();
  /** The version the current socket speaks (set at its welcome). */
  #protocol: ProtocolVersion | undefined;

  constructor(options: ConnectionOptions, handler: ConnectionHandler) {
    super();
    this.#options = options;
    this.#handler = handler;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The protocol version the server selected for the current (or last) welcomed socket. */
  get protocol(): ProtocolVersion | undefined {
    return this.#protocol;
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

  /**
   * The network is gone: drop the socket now (some stacks deliver its `close` seconds
   * late, if at all) and wait in `reconnecting` for the network (`nudge`).
   */
  offline(): void {
    if (this.#state !== "connected" && this.#state !== "connecting") return;
    this.#options.debug("offline", "dropping the socket");
    this.#attemptId++; // a provider or probe still running belongs to a dead attempt
    this.#teardown("abort");
    this.#retryIn(backoffDelay(this.#attempt++, retryCeiling(this.#options.backoff, false)), undefined);
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
    this.#attemptId++;
    this.#teardown("close");
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
    const id = ++this.#attemptId;
    const current = () => id === this.#attemptId && this.#state === "connecting";
    this.#clearTimers();
    this.#setState("connecting");
    let socket: SocketLike | undefined;
    let welcomed = false;
    const timeoutMs = this.#options.connectTimeoutMs;
    // One timer for the whole attempt: a provider that never answers times out too.
    this.#after(timeoutMs, () => {
      if (!current() || welcomed) return;
      const what = socket ? "no welcome" : "no token from the provider";
      this.#options.debug("timeout", `${what} within ${timeoutMs} ms`);
      const error = new RoomcastClientError("connect_timeout", `${what} within connectTimeoutMs (${timeoutMs} ms)`);
      if (socket) this.#down(socket, { code: 4000, reason: "connect timeout", welcomed: false, error }, "abort");
      else this.#retry(error, false);
    });

    const got = await tokenFrom(this.#options.token, this.#options.transport);
    if (!current()) return; // timed out, offline, closed or superseded while the provider ran
    if (!got.ok) {
      if (got.terminal) return this.#fail(got.error);
      return this.#retry(got.error, true);
    }
    const token = got.token;
    this.#handler.identity?.(tokenSubject(token));
    if (!current()) return; // the handler may have left the room

    const offered = this.#options.protocols ?? DEFAULT_PROTOCOLS;
    const { protocols, headers } = handshake(token, this.#options.transport, offered);
    const url = roomSocketUrl(this.#options.url, this.#options.room, this.#handler.resumePosition());
    try {
      socket = this.#options.createSocket(url, protocols, headers);
    } catch (cause) {
      if (cause instanceof NoWebSocketError) return this.#fail(new RoomcastClientError("websocket_unavailable", cause.message, { cause }));
      // Only the error's name in the text: browsers quote the offending subprotocol (the
      // token) in the message, and this text reaches UIs and other tabs.
      const detail = cause instanceof Error ? ` (${cause.name})` : "";
      return this.#retry(new RoomcastClientError("internal_error", `could not open a WebSocket${detail}`, { cause: scrubbed(cause, token) }), true);
    }
    const opened = socket;
    this.#socket = opened;
    this.#pingClock.reset();
    opened.onmessage = (event) => {
      if (opened !== this.#socket) return;
      this.#alive();
      const decoded = decodeServerFrame(event.data);
      if (!decoded.ok) {
        this.#options.debug("invalid-frame", decoded.message);
        return;
      }
      const frame = decoded.frame;
      this.#options.debug("receive", frameSummary(frame));
      if (!welcomed && !BEFORE_WELCOME.has(frame.type)) {
        // Nothing the room acts on can precede the welcome: applying it would move the
        // position before the welcome sets it (and drop the replay that follows).
        this.#options.debug("dropped", `${frameSummary(frame)} (before welcome)`);
        return;
      }
      if (frame.type === "welcome") {
        const protocol = negotiated(typeof opened.protocol === "string" ? opened.protocol : "", frame.protocol, offered);
        if (protocol === undefined) {
          // A server that selected a version we did not offer: we cannot know what its frames mean.
          const error = new RoomcastClientError("unsupported_protocol", `the server selected the subprotocol ${describeSelectedProtocol(String(opened.protocol))}, which this client did not offer (${offered.join(", ")})`);
          return this.#down(opened, { code: 1002, reason: "unexpected subprotocol", welcomed: false, error }, "close");
        }
        if (frame.protocol !== protocol) this.#options.debug("protocol", `welcome says ${frame.protocol}, the socket ${protocol}: speaking ${protocol}`);
        this.#protocol = protocol;
        welcomed = true;
        this.#onWelcome(frame);
      } else if (frame.type === "reconnect") {
        this.#drainDelayMs = frame.delayMs;
      } else if (frame.type === "error" && frame.id === undefined && closeCodeOf(frame.code) !== undefined) {
        // The server announces its close (or its refusal of the upgrade, protocol.md §5)
        // with an error frame first; act on it now rather than wait for a close event
        // that can lag by seconds.
        const error = new RoomcastClientError(frame.code, frame.message || `the server closed the connection: ${frame.code}`);
        this.#down(opened, { code: closeCodeOf(frame.code)!, reason: frame.code, welcomed, error }, "close");
      } else if (frame.type === "error" && frame.id !== undefined && frame.id === this.#refreshId) {
        this.#onRefreshRefused(frame, (event.data as string).length);
      } else if (frame.type === "refreshed") {
        this.#scheduleRefresh(frame.expiresAt);
      } else if (frame.type === "pong") {
        const ms = this.#pingClock.ponged();
        if (ms !== undefined) this.#handler.rtt?.(ms);
      } else {
        this.#handler.frame(frame, (event.data as string).length); // decoded, so a string
      }
    };
    // The probe is for sockets that never opened: one that opened would have carried an error frame.
    let upgraded = false;
    opened.onopen = () => (upgraded = true);
    opened.onclose = (event) => this.#down(opened, { code: event.code, reason: event.reason, welcomed, token: upgraded ? undefined : token }, "close");
    opened.onerror = () => {
      this.#options.debug("socket-error", "(details are not exposed by WebSocket)");
      // Node's WebSocket (undici) fires only `error`, never `close`, when the upgrade
      // is refused; browsers fire both. Before it ever opened, the attempt is over
      // either way (a later `close` for this socket is then ignored).
      if (opened.readyState !== OPEN) this.#down(opened, { code: 1006, reason: "error", welcomed, token: upgraded ? undefined : token }, "abort");
    };
  }

  #onWelcome(frame: WelcomeFrame): void {
    this.#clearTimers();
    this.#connectedAt = Date.now();
    this.#drainDelayMs = undefined;
    // The server answered: what a long outage built up decays (a quick second outage
    // starts low), while a server that welcomes and drops at once still backs off.
    this.#attempt = Math.ceil(this.#attempt / 2);
    this.#setState("connected");
    const timing = livenessTiming(frame.limits.livenessTimeoutSeconds, this.#options);
    this.#pingEveryMs = timing.pingEveryMs;
    this.#pongTimeoutMs = timing.pongTimeoutMs;
    this.#schedulePing();
    this.#scheduleRefresh(frame.expiresAt);
    this.#handler.welcome(frame);
  }

  // ---- liveness and refresh ----------------------------------------------------

  #schedulePing(): void {
    this.#after(this.#pingEveryMs, () => {
      this.#ping();
      this.#schedulePing();
    });
  }

  /** Sends the exact ping text the server auto-answers; no frame back within the pong timeout means the socket is dead. */
  #ping(): void {
    if (this.#socket?.readyState !== OPEN) return;
    this.#socket.send(PING);
    this.#pingClock.pinged();
    if (this.#pongTimer === undefined) {
      this.#pongTimer = setTimeout(() => {
        this.#pongTimer = undefined;
        this.#options.debug("timeout", `no pong within ${this.#pongTimeoutMs} ms`);
        const socket = this.#socket;
        if (socket) this.#down(socket, { code: 4000, reason: "pong timeout", welcomed: true }, "abort");
      }, this.#pongTimeoutMs);
    }
  }

  /** Any frame proves the socket is alive. */
  #alive(): void {
    if (this.#pongTimer !== undefined) clearTimeout(this.#pongTimer);
    this.#pongTimer = undefined;
  }

  /** A new session (welcome) or an extended one (refreshed): refresh `refreshLeadMs` before it ends. */
  #scheduleRefresh(expiresAtSeconds: number): void {
    this.#refreshId = undefined;
    this.#refreshAttempt = 0;
    this.#sessionEndsAt = expiresAtSeconds * 1000;
    if (typeof this.#options.token !== "function") return; // a fixed token cannot be refreshed
    const at = this.#sessionEndsAt - this.#options.refreshLeadMs;
    // Capped: setTimeout fires at once for delays over 2^31-1 ms (~24.8 days).
    this.#after(Math.min(2 ** 31 - 1, Math.max(1_000, at - Date.now())), () => void this.#refresh());
  }

  async #refresh(): Promise<void> {
    const socket = this.#socket;
    const got = await tokenFrom(this.#options.token, this.#options.transport);
    if (socket !== this.#socket || this.#state !== "connected") return; // that session is gone
    if (!got.ok) {
      this.#options.debug("refresh-failed", got.error.message);
      // "Stop for good" (null, a terminal error) ends the session now.
      if (got.terminal) return this.#fail(got.error);
      return this.#retryRefresh();
    }
    if (socket?.readyState !== OPEN) return;
    const id = `refresh-${++this.#refreshSeq}`;
    this.#refreshId = id;
    this.#options.debug("send", `{"type":"refresh","id":"${id}","token":"[redacted]"}`);
    socket.send(JSON.stringify({ type: "refresh", id, token: got.token }));
  }

  /**
   * The server answered our refresh with an error; the session goes on as it was
   * (protocol.md §6.7). A retryable answer (`rate_limited`, `auth_unavailable`,
   * `internal_error`; `token_expired`: the provider handed out a stale token) means
   * "later": ask again with backoff. Any other (`unauthorized`, `forbidden`, a code
   * this version does not know) is the app's to see, as an `error` event.
   */
  #onRefreshRefused(frame: Extract<ServerFrame, { type: "error" }>, chars: number): void {
    this.#refreshId = undefined;
    const retryable = isErrorCode(frame.code) && ERRORS[frame.code].reconnect !== "never";
    this.#options.debug("refresh-refused", `${frame.code}${retryable ? " (retrying)" : ""}`);
    if (retryable) this.#retryRefresh();
    else this.#handler.frame(frame, chars);
  }

  /**
   * Asks again with backoff (the long ceiling: the server asked for patience, and a
   * refresh costs a rate-limit token), until the session would end before the next
   * try: then the server's 4001 close and a reconnect with a fresh token take over.
   */
  #retryRefresh(): void {
    const delay = Math.max(1_000, backoffDelay(this.#refreshAttempt++, retryCeiling(this.#options.backoff, true)));
    if (Date.now() + delay >= this.#sessionEndsAt) {
      this.#options.debug("refresh-failed", "no time left to retry before the session ends; a reconnect will get a fresh token");
      return;
    }
    this.#after(delay, () => void this.#refresh());
  }

  // ---- the one teardown path -------------------------------------------------

  /**
   * A socket ended. `how`: "close" it politely (the peer is there), or "abort" it
   * (a dead link: nothing waits on its closing handshake).
   */
  #down(socket: SocketLike, ending: Ending, how: "close" | "abort"): void {
    if (socket !== this.#socket) return; // an old socket's late event
    this.#options.debug("close", `${ending.code} ${ending.reason}`);
    this.#teardown(how, ending.code === 4000 ? 4000 : 1000, ending.reason);
    if (this.#state === "closed" || this.#state === "failed") return;
    const { code, welcomed, token } = ending;
    if (!welcomed && ending.error === undefined && (code === 1006 || code === 1002 || code === 1015) && token !== undefined && this.#options.fetch) {
      // Failed before any frame: a server that follows protocol.md §5 would have sent
      // an error frame, so this is the network, a proxy or an older server. Ask the
      // HTTP API the same question, for a few seconds at most.
      const id = this.#attemptId;
      const timeoutMs = Math.min(PROBE_TIMEOUT_MS, this.#options.connectTimeoutMs);
      void probeRefusal(this.#options.fetch, this.#options.url, this.#options.room, token, timeoutMs).then((answer) => {
        if (id === this.#attemptId) this.#afterProbe(answer);
      });
      return;
    }
    this.#afterClose(code, welcomed, ending.error);
  }

  /** What the HTTP API said about a refused upgrade decides like the matching close would. */
  #afterProbe(code: string | undefined): void {
    if (this.#state !== "connecting") return;
    if (code !== undefined && isErrorCode(code)) {
      const spec: { close?: number; reconnect: string } = ERRORS[code];
      const error = new RoomcastClientError(code, `the server refused the connection: ${code}`);
      if (spec.close !== undefined) return this.#afterClose(spec.close, false, error);
      if (spec.reconnect === "never") return this.#fail(error);
    }
    this.#afterClose(1006, false, undefined);
  }

  #afterClose(code: number, welcomed: boolean, given: RoomcastClientError | undefined): void {
    if (this.#state === "closed" || this.#state === "failed") return;
    const advice = reconnectAdviceForClose(code);
    const errorCode = errorCodeForClose(code);
    const error = given ?? (errorCode ? new RoomcastClientError(errorCode, `closed with ${code} (${errorCode})`) : undefined);
    if (advice === "never") return this.#fail(error ?? new RoomcastClientError("internal_error", `closed with ${code}`));
    if (advice === "refresh-token" && typeof this.#options.token === "string") {
      // A fixed token that expired stays expired: retrying would only send it again
      // (and again), so this ends here.
      const said = error ? `${error.message}; ` : "";
      return this.#fail(new RoomcastClientError("token_expired", `${said}a fixed token string cannot be renewed: pass a token provider function to keep the session going`, { cause: error }));
    }
    if (welcomed && Date.now() - this.#connectedAt >= this.#options.minUptimeMs) this.#attempt = 0;
    // A fresh token is fetched on every attempt anyway; after token_expired retry at once.
    const delay =
      this.#drainDelayMs ??
      (advice === "refresh-token" && this.#attempt === 0 ? 0 : backoffDelay(this.#attempt, retryCeiling(this.#options.backoff, isPushback(code))));
    this.#drainDelayMs = undefined;
    this.#attempt++;
    this.#retryIn(delay, error);
  }

  /** An attempt failed before it had a socket (the token provider, the factory, the timer). */
  #retry(error: RoomcastClientError, pushback: boolean): void {
    this.#attemptId++;
    this.#teardown("abort");
    if (this.#state === "closed" || this.#state === "failed") return;
    this.#retryIn(backoffDelay(this.#attempt++, retryCeiling(this.#options.backoff, pushback)), error);
  }

  #retryIn(delay: number, error: RoomcastClientError | undefined): void {
    this.#clearTimers();
    this.#setState("reconnecting", { retryInMs: delay, ...(error ? { error } : {}) });
    const due = () => {
      // A browser that knows it is offline would only fail: wait for `online` (nudge),
      // looking again now and then in case the event is missed.
      if (isKnownOffline()) {
        this.#options.debug("offline", "waiting for the network");
        this.#after(OFFLINE_RECHECK_MS, due);
      } else void this.#open();
    };
    this.#after(delay, due);
  }

  #fail(error: RoomcastClientError): void {
    this.#attemptId++;
    this.#teardown("close");
    this.#setState("failed", { error });
  }

  #teardown(how: "close" | "abort", code = 1000, reason = "client closed"): void {
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    if (!socket) return;
    if (how === "abort") abortSocket(socket, code, reason);
    else closeSocket(socket, code, reason);
    this.#handler.down();
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

/** `cause` as it is, unless its message quotes the token: then a copy with the token cut out. */
function scrubbed(cause: unknown, token: string): unknown {
  if (!(cause instanceof Error) || !cause.message.includes(token)) return cause;
  const copy = new Error(cause.message.split(token).join("[redacted]"));
  copy.name = cause.name;
  return copy;
}
