/**
 * A room handle: what the app uses. It turns a `Connection`'s traffic into
 * messages delivered exactly once and in order, presence, acked publishes through
 * the outbox, and history.
 */
import type { Member, Message, ServerFrame, WelcomeFrame } from "@roomcast/protocol";
import { Connection, type ConnectionOptions, type ConnectionState, type StateChange } from "./connection.js";
import { Emitter } from "./emitter.js";
import { RoomcastClientError } from "./errors.js";
import { Outbox, type OutboxEntry, type OutboxStorage, type OverflowPolicy, type PublishAck } from "./outbox.js";
import { PublishPacer } from "./pacer.js";

export interface GapInfo {
  /** Why the position could not be resumed. */
  readonly reason: "epoch_changed" | "trimmed" | "ahead";
  /** The room's epoch now. */
  readonly epoch: string;
  /** Messages after this seq follow; anything the app held from before may be incomplete. */
  readonly from: number;
}

export interface RoomEvents {
  state: StateChange;
  /** Every message once, in order: recent history on join, replay on resume, then live. */
  message: Message;
  /** The full member list after every change. */
  presence: Member[];
  /** A reconnect resumed with no gap. */
  recovered: { epoch: string; from: number };
  /** A reconnect could not resume: some messages may be missing; refresh app state. */
  gap: GapInfo;
  /** A publish was acked (also for publishes restored from a durable outbox, which have no promise). */
  ack: PublishAck;
  /** A server error not tied to a publish or history request. */
  error: RoomcastClientError;
}

export interface RoomOptions {
  readonly connection: ConnectionOptions;
  readonly outboxStorage: OutboxStorage;
  readonly outboxMaxSize: number;
  readonly outboxOverflow: OverflowPolicy;
  readonly onLeave: () => void;
  /** How many recent messages `room.messages` keeps (for UIs). */
  readonly messageBuffer: number;
}

export interface PublishOptions {
  /** Your own message id (1-64 of A-Z a-z 0-9 _ . : -); reusing it never stores twice. */
  readonly id?: string;
  /** Reject with `publish_timeout` if not acked within this many ms. Default: wait (the outbox keeps it). */
  readonly timeoutMs?: number;
}

export interface HistoryPage {
  readonly messages: Message[];
  readonly hasMore: boolean;
}

const DEFAULT_MAX_MESSAGE_BYTES = 65_536;
let idCounter = 0;

export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  readonly #connection: Connection;
  readonly #outbox: Outbox;
  readonly #pacer = new PublishPacer();
  readonly #onLeave: () => void;
  readonly #members = new Map<string, Member>();
  readonly #history = new Map<string, { frame: string; resolve: (page: HistoryPage) => void; reject: (err: RoomcastClientError) => void }>();
  #epoch: string | undefined;
  #lastSeq = 0;
  #userId: string | undefined;
  #maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #restored: Promise<void>;
  #recent: Message[] = [];
  readonly #messageBuffer: number;
  #presenceState: unknown = undefined;
  /** Flow control: send `progress` once this many characters were handled; undefined: the server does none. */
  #progressEvery: number | undefined;
  /** Characters of frames (all but pongs) handled since the last `progress`. */
  #unconfirmed = 0;

  constructor(name: string, options: RoomOptions) {
    super();
    this.name = name;
    this.#onLeave = options.onLeave;
    this.#messageBuffer = options.messageBuffer;
    this.#outbox = new Outbox(name, {
      storage: options.outboxStorage,
      maxSize: options.outboxMaxSize,
      overflow: options.outboxOverflow,
      onError: (err) => this.emit("error", new RoomcastClientError("internal_error", "outbox storage failed", { cause: err })),
    });
    this.#connection = new Connection(options.connection, {
      resumePosition: () => (this.#epoch ? { epoch: this.#epoch, after: this.#lastSeq } : undefined),
      welcome: (frame) => this.#onWelcome(frame),
      frame: (frame, chars) => this.#onFrame(frame, chars),
      down: () => this.#onDown(),
    });
    this.#connection.on("state", (change) => {
      if (change.newState === "failed") this.#fail(change.error ?? new RoomcastClientError("internal_error", "connection failed"));
      this.emit("state", change);
    });
    // Entries a previous page left in a durable outbox go first, then we connect.
    this.#restored = this.#outbox.restore().then(
      () => undefined,
      (err) => this.emit("error", new RoomcastClientError("internal_error", "could not restore the outbox", { cause: err })),
    );
    void this.#restored.then(() => this.#connection.connect());
  }

  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Current members, one per user. */
  get members(): Member[] {
    return [...this.#members.values()];
  }

  /** The most recent messages delivered (a new array after each one), oldest first. */
  get messages(): Message[] {
    return this.#recent;
  }

  /** The position this room has delivered up to: resume starts after it. */
  get position(): { epoch: string | undefined; seq: number } {
    return { epoch: this.#epoch, seq: this.#lastSeq };
  }

  /** The user id the server knows us as (after the first welcome). */
  get userId(): string | undefined {
    return this.#userId;
  }

  /** Publishes waiting for an ack, oldest first. */
  get pending(): OutboxEntry[] {
    return this.#outbox.entries();
  }

  /**
   * Publishes `data` (any JSON value). Resolves with the server's ack once the
   * message is stored and broadcast; while offline it waits in the outbox and is
   * sent after reconnecting. Rejects with a RoomcastClientError: message_too_large,
   * rate_limited, forbidden, invalid_frame, outbox_full, publish_timeout, room_closed.
   */
  publish(data: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    if (this.state === "closed" || this.state === "failed") {
      return Promise.reject(new RoomcastClientError("room_closed", `the room is ${this.state}`));
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(data);
    } catch (cause) {
      return Promise.reject(new TypeError("publish data must be JSON-serialisable", { cause }));
    }
    if (json === undefined) return Promise.reject(new TypeError("publish data must be a JSON value (not undefined or a function)"));
    if (new TextEncoder().encode(json).byteLength > this.#maxMessageBytes) {
      return Promise.reject(new RoomcastClientError("message_too_large", `data exceeds ${this.#maxMessageBytes} bytes`));
    }
    const id = options.id ?? newId();
    // A copy of exactly what will be sent (our own JSON, so parsing it back cannot fail).
    const copy: unknown = JSON.parse(json);
    const promise = this.#outbox.push({ id, data: copy, createdAt: Date.now() });
    this.#flush();
    if (options.timeoutMs === undefined) return promise;
    return withTimeout(promise, options.timeoutMs, () => {
      const sent = this.#outbox.isSent(id);
      const err = new RoomcastClientError("publish_timeout", `no ack within ${options.timeoutMs} ms`, { sent });
      this.#outbox.settle(id, err);
      return err;
    });
  }

  /** Sets this connection's presence state (any small JSON value; null clears it). */
  setPresence(state: unknown): void {
    this.#presenceState = state;
    // With an id, the server's error for it (e.g. forbidden) is not taken for a close announcement.
    this.#connection.send(JSON.stringify({ type: "presence", id: newId(), state }));
  }

  /** A page of stored messages after `after` (default: from the oldest retained). Needs a live connection. */
  history(options: { after?: number; limit?: number } = {}): Promise<HistoryPage> {
    if (this.state === "closed" || this.state === "failed") {
      return Promise.reject(new RoomcastClientError("room_closed", `the room is ${this.state}`));
    }
    const id = newId();
    const frame = JSON.stringify({ type: "history", id, ...options });
    return new Promise((resolve, reject) => {
      this.#history.set(id, { frame, resolve, reject });
      this.#connection.send(frame); // if not connected yet, sent after the next welcome
    });
  }

  /**
   * Leaves the room for good: closes the socket, and unacked publishes reject with
   * room_closed and are dropped from the outbox (also a durable one), so nothing the
   * app saw rejected is delivered later. A page that unloads without leaving keeps
   * its durable outbox for the next load.
   */
  leave(): void {
    if (this.state === "closed") return;
    this.#connection.close();
    this.#fail(new RoomcastClientError("room_closed", "the room was left"), true);
    this.#onLeave();
  }

  /** @internal Network or visibility changed. */
  nudge(kind: "online" | "offline" | "visible"): void {
    if (kind === "offline") this.#connection.offline();
    else this.#connection.nudge();
  }

  // ---- connection events ---------------------------------------------------

  #onWelcome(frame: WelcomeFrame): void {
    this.#userId = frame.userId;
    this.#maxMessageBytes = frame.limits.maxMessageBytes;
    this.#pacer.configure(frame.limits.publishRatePerSecond, frame.limits.publishBurst);
    // A server without flow control announces no budget, and would refuse a progress frame.
    const budget = frame.limits.maxUnconfirmedBytes;
    this.#progressEvery = budget === undefined ? undefined : budget / 4;
    this.#unconfirmed = 0;
    const replayFrom = frame.seq - frame.replay;
    if (frame.resume?.recovered) {
      this.emit("recovered", { epoch: frame.epoch, from: this.#lastSeq });
    } else {
      // A new epoch, or a server whose log is behind our position ("ahead": it was
      // restored or reset), is a different log: start over from its replay.
      const epochChanged = (this.#epoch !== undefined && frame.epoch !== this.#epoch) || frame.resume?.reason === "ahead";
      if (frame.resume && !frame.resume.recovered) {
        this.emit("gap", { reason: frame.resume.reason ?? "trimmed", epoch: frame.epoch, from: replayFrom });
      }
      // Never deliver a seq twice within one epoch; a new epoch is a new log.
      this.#lastSeq = epochChanged || this.#epoch === undefined ? replayFrom : Math.max(this.#lastSeq, replayFrom);
    }
    this.#epoch = frame.epoch;
    if (this.#presenceState !== undefined) this.#connection.send(JSON.stringify({ type: "presence", id: newId(), state: this.#presenceState }));
    for (const pending of this.#history.values()) this.#connection.send(pending.frame);
    this.#flush();
  }

  #onFrame(frame: ServerFrame, chars: number): void {
    this.#apply(frame);
    // Flow control counts every frame the room sends but pongs (protocol.md §6.9).
    if (frame.type !== "pong") this.#handled(chars, frame.type === "history");
  }

  #apply(frame: ServerFrame): void {
    switch (frame.type) {
      case "message":
        return this.#deliver([frame]);
      case "messages":
        return this.#deliver(frame.messages);
      case "ack": {
        const ack = { id: frame.id, seq: frame.seq, duplicate: frame.duplicate };
        this.#outbox.settle(frame.id, ack);
        this.emit("ack", ack);
        this.#flush();
        return;
      }
      case "history": {
        const pending = this.#history.get(frame.id);
        this.#history.delete(frame.id);
        pending?.resolve({ messages: frame.messages, hasMore: frame.hasMore });
        return;
      }
      case "presence_state":
        this.#members.clear();
        for (const m of frame.members) this.#members.set(m.userId, m);
        this.emit("presence", this.members);
        return;
      case "presence_diff":
        for (const m of [...frame.joins, ...frame.updates]) this.#members.set(m.userId, m);
        for (const userId of frame.leaves) this.#members.delete(userId);
        this.emit("presence", this.members);
        return;
      case "error":
        return this.#onError(frame.code, frame.message, frame.id);
      default:
        return;
    }
  }

  /** Delivers each message once, in order; anything at or below the position was delivered already. */
  #deliver(messages: readonly Message[]): void {
    const fresh: Message[] = [];
    for (const m of messages) {
      if (m.seq <= this.#lastSeq) continue;
      this.#lastSeq = m.seq;
      fresh.push({ seq: m.seq, id: m.id, from: m.from, data: m.data, ts: m.ts });
    }
    if (fresh.length === 0) return;
    if (this.#messageBuffer > 0) this.#recent = [...this.#recent, ...fresh].slice(-this.#messageBuffer);
    for (const m of fresh) this.emit("message", m);
  }

  /**
   * Flow control: counts a handled frame (any but a pong), and reports how far the
   * room has applied (`progress`) once a quarter of the server's budget was handled
   * since the last report, and after every history answer. Only ever in answer to a
   * frame received, so an idle room sends nothing.
   */
  #handled(chars: number, history: boolean): void {
    if (this.#progressEvery === undefined) return;
    this.#unconfirmed += chars;
    if (!history && this.#unconfirmed < this.#progressEvery) return;
    this.#unconfirmed = 0;
    this.#connection.send(JSON.stringify({ type: "progress", seq: this.#lastSeq }));
  }

  #onError(code: Extract<ServerFrame, { type: "error" }>["code"], message: string, id: string | undefined): void {
    const err = new RoomcastClientError(code, message);
    if (id !== undefined && this.#outbox.has(id)) {
      this.#outbox.settle(id, err);
      this.#flush();
    } else if (id !== undefined && this.#history.has(id)) {
      this.#history.get(id)!.reject(err);
      this.#history.delete(id);
    } else {
      this.emit("error", err);
    }
  }

  #onDown(): void {
    this.#progressEvery = undefined; // until the next welcome says otherwise
    this.#outbox.markAllUnsent();
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
  }

  /** Sends unsent outbox entries in order, no faster than the server's publish limit. */
  #flush(): void {
    if (this.#flushTimer !== undefined || this.state !== "connected") return;
    for (let entry = this.#outbox.nextUnsent(); entry; entry = this.#outbox.nextUnsent()) {
      const wait = this.#pacer.wait();
      if (wait > 0) {
        this.#flushTimer = setTimeout(() => {
          this.#flushTimer = undefined;
          this.#flush();
        }, wait);
        return;
      }
      if (!this.#connection.send(JSON.stringify({ type: "publish", id: entry.id, data: entry.data }))) return;
      this.#pacer.take();
      this.#outbox.markSent(entry.id);
    }
  }

  #fail(err: RoomcastClientError, forget = err.code === "forbidden" || err.code === "kicked" || err.code === "unauthorized"): void {
    this.#outbox.rejectAll(err, { forget });
    for (const pending of this.#history.values()) pending.reject(err);
    this.#history.clear();
  }
}

function newId(): string {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `${random}-${(idCounter++).toString(36)}`.slice(0, 64);
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
