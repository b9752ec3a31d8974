/**
 * A controllable fake of the WebSocket the client opens, plus the server side to
 * drive it. Every frame the fake "server" sends goes through the protocol's
 * `decodeServerFrame` first, and every frame the client sent is read back through
 * `decodeClientFrame`, so a test can never pass on a frame the real peer would
 * reject.
 */
import {
  PROTOCOL_VERSION,
  decodeClientFrame,
  decodeServerFrame,
  type ClientFrame,
  type ErrorCode,
  type Member,
  type Message,
  type ServerFrame,
  type WelcomeFrame,
} from "@roomcast/protocol";
import { afterEach, beforeEach, vi } from "vitest";
import { createClient, type ClientOptions, type RoomcastClient } from "../../src/client.js";
import type { SocketFactory, SocketLike } from "../../src/transport.js";

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

type CloseEvent = { code: number; reason: string; wasClean?: boolean };

export class FakeSocket implements SocketLike {
  readyState = CONNECTING;
  protocol = "";
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  /** Raw text of every frame the client sent while the socket was open. */
  readonly sent: string[] = [];
  /** Every `close()` the client called, in order. */
  readonly closeCalls: { code: number | undefined; reason: string | undefined }[] = [];

  constructor(
    readonly url: string,
    readonly protocols: string[],
    readonly headers: Record<string, string>,
  ) {}

  /** The room name from the URL path (`/v1/rooms/<room>/ws`). */
  get room(): string {
    const match = /\/v1\/rooms\/([^/]+)\/ws$/.exec(new URL(this.url).pathname);
    if (!match) throw new Error(`not a room socket URL: ${this.url}`);
    return decodeURIComponent(match[1]!);
  }

  /** The resume position in the URL, if any. */
  get resume(): { epoch: string | null; after: string | null } | undefined {
    const query = new URL(this.url).searchParams;
    if (!query.has("epoch") && !query.has("after")) return undefined;
    return { epoch: query.get("epoch"), after: query.get("after") };
  }

  // ---- the client's side (SocketLike) ----------------------------------------

  send(data: string): void {
    // A real WebSocket throws while CONNECTING and silently drops after closing.
    if (this.readyState === CONNECTING) throw new Error("InvalidStateError: send() while CONNECTING");
    if (this.readyState !== OPEN) return;
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closeCalls.push({ code, reason });
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    const wasOpen = this.readyState === OPEN;
    this.readyState = CLOSING;
    // Like a browser: the close event comes later, and reads the handler at that time.
    queueMicrotask(() => {
      this.readyState = CLOSED;
      this.onclose?.(wasOpen ? { code: code ?? 1005, reason: reason ?? "", wasClean: true } : { code: 1006, reason: "", wasClean: false });
    });
  }

  /** True once the client called `close()`. */
  get closedByClient(): boolean {
    return this.closeCalls.length > 0;
  }

  /** Every frame the client sent, validated by the protocol's decoder. */
  get frames(): ClientFrame[] {
    return this.sent.map((text) => {
      const decoded = decodeClientFrame(text);
      if (!decoded.ok) throw new Error(`the client sent an invalid frame (${decoded.message}): ${text}`);
      return decoded.frame;
    });
  }

  framesOf<T extends ClientFrame["type"]>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.frames.filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }

  /** Ids of the publish frames sent on this socket, in order. */
  get publishedIds(): string[] {
    return this.framesOf("publish").map((f) => f.id);
  }

  // ---- the server's side -------------------------------------------------------

  /** The upgrade succeeded, selecting `protocol` (what `ws.protocol` reads; a v0.1.0 server selects roomcast.v1). */
  open(protocol: string = PROTOCOL_VERSION): void {
    if (this.readyState !== CONNECTING) throw new Error(`open() on a socket in state ${this.readyState}`);
    this.readyState = OPEN;
    this.protocol = protocol;
    this.onopen?.({});
  }

  /** Delivers raw data as a message event (for invalid frames). */
  receive(data: unknown): void {
    if (this.readyState !== OPEN) throw new Error(`cannot deliver on a socket in state ${this.readyState}`);
    this.onmessage?.({ data });
  }

  /** Delivers a frame, after checking the real decoder accepts it. */
  deliver(frame: ServerFrame): void {
    const text = JSON.stringify(frame);
    const decoded = decodeServerFrame(text);
    if (!decoded.ok) throw new Error(`the fake server built an invalid ${frame.type} frame: ${decoded.message}`);
    this.receive(text);
  }

  /** Opens (if needed, selecting `overrides.protocol` when given) and sends a valid welcome; returns it. */
  welcome(overrides: Partial<Omit<WelcomeFrame, "type">> = {}): WelcomeFrame {
    if (this.readyState === CONNECTING) this.open(overrides.protocol);
    const frame: WelcomeFrame = {
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      room: this.room,
      connectionId: "conn-1",
      userId: "alice",
      epoch: "epoch-1",
      seq: 0,
      replay: 0,
      permissions: ["subscribe", "publish", "presence"],
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
      limits: { maxMessageBytes: 65_536, publishRatePerSecond: 20, publishBurst: 40, livenessTimeoutSeconds: 86_400 }, // a day: out of the way of pingIntervalMs
      ...overrides,
    };
    this.deliver(frame);
    return frame;
  }

  message(seq: number, overrides: Partial<Omit<Message, "seq">> = {}): void {
    this.deliver({ type: "message", ...messageAt(seq), ...overrides });
  }

  /** `message` frames for every seq from `first` to `last`, in order. */
  messages(first: number, last: number): void {
    for (let seq = first; seq <= last; seq++) this.message(seq);
  }

  ack(id: string, seq: number, duplicate = false): void {
    this.deliver({ type: "ack", id, seq, duplicate });
  }

  error(code: ErrorCode, id?: string, message = `server says ${code}`): void {
    this.deliver({ type: "error", code, message, ...(id === undefined ? {} : { id }) });
  }

  history(id: string, messages: Message[], hasMore = false): void {
    this.deliver({ type: "history", id, messages, hasMore });
  }

  pong(): void {
    this.deliver({ type: "pong" });
  }

  presenceState(members: Member[]): void {
    this.deliver({ type: "presence_state", members });
  }

  presenceDiff(diff: { joins?: Member[]; updates?: Member[]; leaves?: string[] }): void {
    this.deliver({ type: "presence_diff", joins: diff.joins ?? [], updates: diff.updates ?? [], leaves: diff.leaves ?? [] });
  }

  refreshed(id: string, expiresAt: number): void {
    this.deliver({ type: "refreshed", id, expiresAt, permissions: ["subscribe", "publish", "presence"] });
  }

  /** The drain hint a server sends before a deploy. */
  reconnect(delayMs: number): void {
    this.deliver({ type: "reconnect", delayMs, reason: "drain" });
  }

  /** The server closes an open socket. */
  serverClose(code: number, reason = ""): void {
    if (this.readyState === CLOSED) throw new Error("serverClose() on a closed socket");
    this.readyState = CLOSED;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /**
   * The upgrade was refused (or the network failed) before the socket opened: as
   * in a browser, readyState becomes CLOSED, then `error`, then `close` 1006.
   */
  refuse(): void {
    if (this.readyState !== CONNECTING) throw new Error(`refuse() on a socket in state ${this.readyState}`);
    this.readyState = CLOSED;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "", wasClean: false });
  }
}

/** A message as the server stores it; `data` and `id` derive from `seq`. */
export function messageAt(seq: number, from = "bob"): Message {
  return { seq, id: `m-${seq}`, from, data: { n: seq }, ts: 1_700_000_000_000 + seq };
}

/** One presence member with a single connection. */
export function member(userId: string, state: unknown = null): Member {
  return { userId, connections: [{ connectionId: `${userId}-conn`, state, joinedAt: 1_700_000_000_000 }] };
}

export interface FakeSockets {
  /** Pass as `createSocket` to createClient. */
  readonly createSocket: SocketFactory;
  /** Every socket opened, oldest first. */
  readonly sockets: FakeSocket[];
  /** The newest socket; throws if none was opened. */
  last(): FakeSocket;
}

export function fakeSockets(): FakeSockets {
  const sockets: FakeSocket[] = [];
  return {
    sockets,
    createSocket: (url, protocols, headers) => {
      const socket = new FakeSocket(url, [...protocols], { ...headers });
      sockets.push(socket);
      return socket;
    },
    last: () => {
      const socket = sockets.at(-1);
      if (!socket) throw new Error("no socket was opened");
      return socket;
    },
  };
}

export const TOKEN = "tok.en-1";
export const BASE_URL = "http://rc.test";

/** A client on fake sockets; probes fail like a network error unless `fetch` is given. */
export function testClient(options: Partial<ClientOptions> = {}): { client: RoomcastClient; server: FakeSockets } {
  const server = fakeSockets();
  const client = createClient({
    url: BASE_URL,
    token: TOKEN,
    createSocket: server.createSocket,
    fetch: () => Promise.reject(new TypeError("fetch failed (no network in unit tests)")),
    ...options,
  });
  return { client, server };
}

/**
 * Lets pending promises and due timers run: with fake timers, advances `ms`;
 * with real timers, waits `ms` (at least one macrotask).
 */
export async function advance(ms = 0): Promise<void> {
  if (vi.isFakeTimers()) await vi.advanceTimersByTimeAsync(ms);
  else await new Promise((resolve) => setTimeout(resolve, ms));
  // The client chains a few awaits (outbox restore, token provider) before it acts.
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Watches a promise without letting it reject unhandled. */
export interface Observed<T> {
  readonly promise: Promise<T>;
  readonly status: "pending" | "resolved" | "rejected";
  readonly value: T | undefined;
  readonly error: unknown;
}

export function observe<T>(promise: Promise<T>): Observed<T> {
  const state: { status: Observed<T>["status"]; value: T | undefined; error: unknown } = { status: "pending", value: undefined, error: undefined };
  promise.then(
    (value) => {
      state.status = "resolved";
      state.value = value;
    },
    (error: unknown) => {
      state.status = "rejected";
      state.error = error;
    },
  );
  return {
    promise,
    get status() {
      return state.status;
    },
    get value() {
      return state.value;
    },
    get error() {
      return state.error;
    },
  };
}

/**
 * The per-test clock every client unit test shares: fake timers at a fixed date, `Math.random`
 * pinned to 0 (backoff retries happen at once); after each test `cleanup` (close the client)
 * runs, then real timers and mocks come back.
 */
export function useFakeTime(cleanup: () => void): void {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2030-01-01T00:00:00Z"));
    vi.spyOn(Math, "random").mockReturnValue(0);
  });
  afterEach(() => {
    cleanup();
    vi.useRealTimers();
    vi.restoreAllMocks();
  });
}
