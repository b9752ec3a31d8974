/**
 * A room handle: what the app uses. It turns a `Connection`'s traffic into
 * messages delivered exactly once and in order, presence, acked publishes through
 * the outbox, and history.
 */
import { ERRORS, MESSAGE_ID, PROTOCOL_V2, isErrorCode, type Member, type Message, type ProtocolVersion, type ServerFrame, type WelcomeFrame } from "@roomcast/protocol";
import { Connection, type ConnectionOptions, type ConnectionState, type StateChange } from "./connection.js";
import { Emitter } from "./emitter.js";
import { RoomcastClientError } from "./errors.js";
import { Outbox, type OutboxEntry, type OutboxStorage, type OverflowPolicy, type PublishAck, type PublishFailure } from "./outbox.js";
import { HISTORY_CHARS_PER_TOKEN, Pacer } from "./pacer.js";
import { Broadcasts, type Broadcast } from "./ephemeral.js";
import { newId, publishJson, sameFlags, withTimeout } from "./util.js";
import { Stats, type RoomStats } from "./stats.js";

export interface GapInfo {
  /** Why the position could not be resumed. */
  readonly reason: "epoch_changed" | "trimmed" | "ahead";
  /** The room's epoch now. */
  readonly epoch: string;
  /** Messages after this seq follow; anything the app held from before may be incomplete. */
  readonly from: number;
  /**
   * True when the server's log is not the one the room held a position in (a new
   * epoch, or `ahead`: the log is behind our position): seqs start over, and
   * `room.messages` was emptied before this event; the replay that follows refills it.
   * (Always set by `Room`; optional for handles that relay a room's events.)
   */
  readonly reset?: boolean;
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
  /**
   * A publish ended without an ack: every one, with a promise or without (restored
   * from a durable outbox, or after its `timeoutMs` ran out once it had been sent).
   */
  publish_failed: PublishFailure;
  /** Publishes a previous page left in a durable outbox were loaded (now in `pending`). */
  restored: OutboxEntry[];
  /** A server error not tied to a publish or history request. */
  error: RoomcastClientError;
  /**
   * After every welcome (each connection and reconnect): the feature flags the server
   * exposes to this user in this room (`room.features`; `{}` from a server without flags).
   */
  features: Readonly<Record<string, boolean>>;
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
/** How long publishes wait for a durable outbox's stored entries to load. */
const RESTORE_DEADLINE_MS = 5_000;

interface PendingHistory {
  readonly frame: string;
  /** Sent on the current socket. */
  sent: boolean;
  readonly resolve: (page: HistoryPage) => void;
  readonly reject: (err: RoomcastClientError) => void;
}

/** This connection's presence state: re-sent after every welcome and after a "later" answer. */
interface PresenceSlot {
  readonly state: unknown;
  /** Waiting to be sent on the current socket. */
  dirty: boolean;
  /** The id of the frame that carried it (to tell its error apart). */
  id?: string;
}

/** A frame waiting for the pacer, and what to remember once it is on the socket. */
interface Outgoing {
  readonly text: string;
  readonly sent: () => void;
}

export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  readonly #connection: Connection;
  readonly #outbox: Outbox;
  readonly #pacer = new Pacer();
  readonly #broadcasts = new Broadcasts();
  readonly #onLeave: () => void;
  readonly #members = new Map<string, Member>();
  readonly #history = new Map<string, PendingHistory>();
  #epoch: string | undefined;
  #lastSeq = 0;
  #userId: string | undefined;
  #maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** The current socket got its welcome (and the pacer, user and position are set for it). */
  #live = false;
  /** Users whose stored outbox was loaded, or is loading (then their publishes wait for it). */
  readonly #restored = new Set<string>();
  readonly #restoring = new Set<string>();
  #recent: Message[] = [];
  readonly #messageBuffer: number;
  #presence: PresenceSlot | undefined;
  /** Flow control: send `progress` once this many characters were handled; undefined: the server does none. */
  #progressEvery: number | undefined;
  /** Characters of frames (all but pongs) handled since the last `progress`. */
  #unconfirmed = 0;
  readonly #stats = new Stats();
  readonly #statsListeners = new Set<() => void>();
  #features: Readonly<Record<string, boolean>> = Object.freeze({});

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
      onFailed: (failure) => {
        this.#stats.forget(failure.id);
        this.emit("publish_failed", failure);
      },
    });
    this.#connection = new Connection(options.connection, {
      resumePosition: () => (this.#epoch ? { epoch: this.#epoch, after: this.#lastSeq } : undefined),
      // The token's user, before the socket opens: a durable outbox is loaded per user.
      identity: (userId) => {
        if (userId !== undefined) this.#setUser(userId);
      },
      welcome: (frame) => this.#onWelcome(frame),
      frame: (frame, chars) => this.#onFrame(frame, chars),
      down: () => this.#onDown(),
      rtt: (ms) => {
        this.#stats.rtt.add(ms);
        for (const listener of this.#statsListeners) listener();
      },
    });
    this.#connection.on("state", (change) => {
      if (change.newState === "failed") this.#fail(change.error ?? new RoomcastClientError("internal_error", "connection failed"));
      this.emit("state", change);
    });
    // A tick late, so listeners attached right after `client.room()` see every state.
    void Promise.resolve().then(() => this.#connection.connect());
  }

  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** Current members, one per user. */
  get members(): Member[] {
    return [...this.#members.values()];
  }

  /** The most recent messages delivered (a new array after each one), oldest first; emptied on a `gap` with `reset`. */
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

  /**
   * The protocol version the server selected for the current connection (after the
   * first welcome): "roomcast.v2" from servers that speak it, "roomcast.v1" from older
   * ones or with `protocols: ["roomcast.v1"]`.
   */
  get protocol(): ProtocolVersion | undefined {
    return this.#connection.protocol;
  }

  /**
   * Feature flags from the latest welcome, stable per user (or room) for A/B tests; `{}`
   * before the first welcome and from servers without flags. Set when the welcome is
   * handled, just after the `state` event for `connected`: read it in a `features` listener.
   */
  get features(): Readonly<Record<string, boolean>> {
    return this.#features;
  }

  /** The current user's publishes waiting for an ack, oldest first. */
  get pending(): OutboxEntry[] {
    return this.#outbox.entries();
  }

  /**
   * Publishes `data` (any JSON value). Resolves with the server's ack once the
   * message is stored and broadcast; while offline it waits in the outbox and is
   * sent after reconnecting. Rejects with a RoomcastClientError: message_too_large,
   * forbidden, invalid_frame, outbox_full, publish_timeout, room_closed. A
   * `rate_limited` answer is not a failure: the publish is sent again later.
   */
  publish(data: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    if (this.state === "closed" || this.state === "failed") {
      return Promise.reject(new RoomcastClientError("room_closed", `the room is ${this.state}`));
    }
    const encoded = publishJson(data);
    if ("error" in encoded) return Promise.reject(encoded.error);
    const { json } = encoded;
    if (new TextEncoder().encode(json).byteLength > this.#maxMessageBytes) {
      return Promise.reject(new RoomcastClientError("message_too_large", `data exceeds ${this.#maxMessageBytes} bytes`));
    }
    const id = options.id ?? newId();
    // The server cannot answer a frame whose id it cannot read with that id: such a
    // publish would never settle, and be resent after every reconnect.
    if (typeof id !== "string" || !MESSAGE_ID.test(id)) {
      return Promise.reject(new TypeError(`publish id must be 1-64 of A-Z a-z 0-9 _ . : - (got ${JSON.stringify(id)})`));
    }
    // A copy of exactly what will be sent (our own JSON, so parsing it back cannot fail).
    const copy: unknown = JSON.parse(json);
    const promise = this.#outbox.push({ id, data: copy, createdAt: Date.now() });
    this.#flush();
    if (options.timeoutMs === undefined) return promise;
    const ms = options.timeoutMs;
    return withTimeout(promise, ms, () => {
      // Once written to a socket the server may have stored it (the ack can be lost):
      // withdrawing it then would lie. It stays queued and is retried with the same id
      // (the server dedupes) until acked; the `ack` event reports that.
      const sent = this.#outbox.wasSent(id);
      const err = new RoomcastClientError(
        "publish_timeout",
        sent ? `no ack within ${ms} ms; the message may be stored, and is still being sent until acked` : `no ack within ${ms} ms; never sent, so withdrawn`,
        { sent },
      );
      if (sent) this.#outbox.detach(id);
      else this.#outbox.settle(id, err);
      return err;
    });
  }

  /**
   * Client-side latency over the last 256 samples each: ping→pong RTT and publish→ack
   * (from the frame going on the socket to its ack; time queued offline or paced is
   * not counted), reconnects, the state, and since when (docs/client.md, "Latency and stats").
   */
  stats(): RoomStats {
    return this.#stats.snapshot(this.state);
  }

  /** @internal Called after each new RTT sample; returns the unsubscribe. */
  onStats(listener: () => void): () => void {
    this.#statsListeners.add(listener);
    return () => this.#statsListeners.delete(listener);
  }

  /** Sets this connection's presence state (any small JSON value; null clears it). */
  setPresence(state: unknown): void {
    // Only the newest state matters: one waiting at the pacer is replaced.
    this.#presence = { state, dirty: true };
    this.#flush();
  }

  /**
   * Sends `data` (any JSON value) to the room's other live connections without
   * storing it (cursors, typing, game state): no seq, no ack, no replay. Volatile:
   * returns false and drops it, never queues it, while not connected, or when the
   * rate budget has no token to spare now or a publish, presence update or history
   * request waits for one (they go first). Throws like `publish` for data that is not
   * JSON (TypeError) or too large (`message_too_large`).
   */
  broadcast(data: unknown): boolean {
    const text = this.#broadcasts.frame(data, this.#maxMessageBytes, (max) => new RoomcastClientError("message_too_large", `data exceeds ${max} bytes`));
    if (!this.#live || this.state !== "connected" || this.#flushTimer !== undefined || this.#next() !== undefined || this.#pacer.wait() > 0) return false;
    if (!this.#connection.send(text)) return false;
    this.#pacer.take();
    return true;
  }

  /**
   * Listens to other connections' broadcasts (live only: never stored, never
   * replayed; not relayed by a room shared across tabs yet). Returns the unsubscribe.
   */
  onBroadcast(listener: (broadcast: Broadcast) => void): () => void {
    return this.#broadcasts.on("broadcast", listener);
  }

  /** A page of stored messages after `after` (default: from the oldest retained). Waits for a live connection. */
  history(options: { after?: number; limit?: number } = {}): Promise<HistoryPage> {
    if (this.state === "closed" || this.state === "failed") {
      return Promise.reject(new RoomcastClientError("room_closed", `the room is ${this.state}`));
    }
    const id = newId();
    const frame = JSON.stringify({ type: "history", id, ...options });
    return new Promise((resolve, reject) => {
      this.#history.set(id, { frame, sent: false, resolve, reject });
      this.#flush(); // if not connected yet, sent after the next welcome
    });
  }

  /**
   * Leaves the room: closes the socket; unacked publishes reject with room_closed.
   *
   * By default they are also dropped from the outbox (a durable one too), so nothing
   * the app saw rejected is delivered later. With `{ keepOutbox: true }` (what the
   * React hooks do on unmount) stored entries stay for the next time this room is
   * opened by the same user, as after a page unload; each still gets a
   * `publish_failed` event, with `kept: true`.
   */
  leave(options: { keepOutbox?: boolean } = {}): void {
    if (this.state === "closed") return;
    this.#connection.close();
    this.#fail(new RoomcastClientError("room_closed", "the room was left"), !options.keepOutbox);
    this.#onLeave();
  }

  /** @internal Network or visibility changed. */
  nudge(kind: "online" | "offline" | "visible"): void {
    if (kind === "offline") this.#connection.offline();
    else this.#connection.nudge();
  }

  // ---- the user ------------------------------------------------------------

  /**
   * The user behind the connection (the token's `sub` before the socket opens, then
   * `welcome.userId`, which is authoritative). Their stored outbox is loaded once;
   * their publishes wait for it, so restored entries go first.
   */
  #setUser(user: string): void {
    if (this.#outbox.user === user) return;
    this.#outbox.setUser(user);
    if (this.#restored.has(user)) return;
    this.#restored.add(user);
    const failed = (err: unknown) => this.emit("error", new RoomcastClientError("internal_error", "could not restore the outbox", { cause: err }));
    const done = (entries: OutboxEntry[]) => {
      if (entries.length > 0) this.emit("restored", entries);
    };
    let loading: OutboxEntry[] | Promise<OutboxEntry[]>;
    try {
      loading = this.#outbox.restore(user);
    } catch (err) {
      return failed(err);
    }
    if (!(loading instanceof Promise)) return done(loading); // a synchronous storage (memory)
    this.#restoring.add(user);
    const proceed = () => {
      clearTimeout(deadline);
      this.#restoring.delete(user);
      this.#flush(); // also sends entries that loaded after the deadline
    };
    // A storage that never answers (an IndexedDB upgrade blocked by an old tab, a broken
    // custom storage) must not hold every publish back: after the deadline they go on, and
    // stored entries that arrive later are sent after them.
    const deadline = setTimeout(() => {
      this.emit("error", new RoomcastClientError("internal_error", `the outbox storage did not load within ${RESTORE_DEADLINE_MS} ms; sending new publishes without waiting for it`));
      proceed();
    }, RESTORE_DEADLINE_MS);
    void loading.then(done, failed).finally(proceed);
  }

  // ---- connection events ---------------------------------------------------

  #onWelcome(frame: WelcomeFrame): void {
    this.#stats.welcomed();
    this.#userId = frame.userId;
    this.#setUser(frame.userId);
    this.#maxMessageBytes = frame.limits.maxMessageBytes;
    // The same object while the flags are the same, so a UI bound to them does not re-render on every reconnect.
    if (!sameFlags(this.#features, frame.features ?? {})) this.#features = Object.freeze({ ...frame.features });
    this.#pacer.configure(frame.limits.publishRatePerSecond, frame.limits.publishBurst);
    // A server without flow control announces no budget, and would refuse a progress frame.
    const budget = frame.limits.maxUnconfirmedBytes;
    this.#progressEvery = budget === undefined ? undefined : budget / 4;
    this.#unconfirmed = 0;
    this.#live = true;
    const replayFrom = frame.seq - frame.replay;
    const previousEpoch = this.#epoch;
    this.#epoch = frame.epoch;
    if (frame.resume?.recovered) {
      this.emit("recovered", { epoch: frame.epoch, from: this.#lastSeq });
    } else {
      // A new epoch, or a server whose log is behind our position ("ahead": it was
      // restored or reset), is a different log: start over from its replay, and never
      // splice it onto what we held (protocol.md §6.3).
      const reset = (previousEpoch !== undefined && frame.epoch !== previousEpoch) || frame.resume?.reason === "ahead";
      if (reset) this.#recent = [];
      // Never deliver a seq twice within one epoch; a new epoch is a new log.
      this.#lastSeq = reset || previousEpoch === undefined ? replayFrom : Math.max(this.#lastSeq, replayFrom);
      if (frame.resume && !frame.resume.recovered) {
        this.emit("gap", { reason: frame.resume.reason ?? "trimmed", epoch: frame.epoch, from: replayFrom, reset });
      }
    }
    this.emit("features", this.#features);
    this.#flush();
  }

  #onFrame(frame: ServerFrame, chars: number): void {
    this.#apply(frame);
    // The server charges a history answer by its size too (rate-limit.ts payForHistory).
    if (frame.type === "history") this.#pacer.take(Math.floor(chars / HISTORY_CHARS_PER_TOKEN));
    // Flow control counts every frame the room sends but pongs (protocol.md §6.9).
    if (frame.type !== "pong") this.#handled(chars, frame.type === "history");
  }

  #apply(frame: ServerFrame): void {
    switch (frame.type) {
      case "message":
        this.#deliver([frame]);
        return this.#ackedByEcho([frame]);
      case "messages":
        this.#deliver(frame.messages);
        return this.#ackedByEcho(frame.messages);
      case "ack":
        this.#acked({ id: frame.id, seq: frame.seq, duplicate: frame.duplicate });
        this.#flush();
        return;
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
      case "broadcast":
        return this.#broadcasts.received(frame);
      default:
        return;
    }
  }

  /**
   * A publish of ours is stored: settle it, once. Under roomcast.v2 both its echo and an
   * explicit ack can come (a publish sent during a replay, or resent after a reconnect
   * and acked as a duplicate): the first settles it, the other finds nothing to do.
   */
  #acked(ack: PublishAck): boolean {
    if (!this.#outbox.has(ack.id)) return false;
    this.#stats.acked(ack.id);
    this.#outbox.settle(ack.id, ack);
    this.emit("ack", ack);
    return true;
  }

  /**
   * roomcast.v2: the server sends no `ack` for a publish stored while this connection is
   * live; the message frame carrying it back (live, batched, or in the replay after a
   * resume) is the ack: our id, `from` our user id, with its seq (docs/protocol.md, "Versions").
   */
  #ackedByEcho(messages: readonly Message[]): void {
    if (this.#connection.protocol !== PROTOCOL_V2 || this.#userId === undefined) return;
    let settled = false;
    for (const m of messages) {
      if (m.from === this.#userId && this.#acked({ id: m.id, seq: m.seq, duplicate: false })) settled = true;
    }
    if (settled) this.#flush();
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

  /**
   * An error answering one of our frames. A retryable code (`rate_limited`, and any
   * the protocol's table says to retry, e.g. `internal_error`) means "send it again
   * later", never "give up": the frame goes back behind the pacer, which waits for the
   * server's bucket to refill. Any other code ends that request.
   */
  #onError(code: Extract<ServerFrame, { type: "error" }>["code"], message: string, id: string | undefined): void {
    const err = new RoomcastClientError(code, message);
    const later = isErrorCode(code) && ERRORS[code].reconnect !== "never";
    const history = id === undefined ? undefined : this.#history.get(id);
    if (id !== undefined && this.#outbox.has(id)) {
      this.#stats.forget(id); // refused: a resend is timed from its own send
      if (later) this.#outbox.markUnsent(id);
      else this.#outbox.settle(id, err);
    } else if (id !== undefined && history) {
      if (later) history.sent = false;
      else {
        this.#history.delete(id);
        history.reject(err);
      }
    } else if (id !== undefined && id === this.#presence?.id && later) {
      this.#presence.dirty = true;
    } else if (id !== undefined && this.#broadcasts.owns(id)) {
      // Volatile: never sent again. A refusal that would recur (forbidden, too large) is the app's to see.
      if (!later) return this.emit("error", err);
    } else {
      return this.emit("error", err);
    }
    if (later) this.#pacer.drain();
    this.#flush();
  }

  #onDown(): void {
    this.#live = false;
    this.#stats.down();
    this.#progressEvery = undefined; // until the next welcome says otherwise
    this.#outbox.markAllUnsent();
    for (const pending of this.#history.values()) pending.sent = false;
    if (this.#presence) this.#presence.dirty = true;
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
  }

  /**
   * Sends what waits, in order (presence, history requests, then the outbox), each
   * through the pacer: no faster than the user's rate budget the server announced,
   * with one token kept for the Connection's `refresh`.
   */
  #flush(): void {
    if (this.#flushTimer !== undefined || !this.#live || this.state !== "connected") return;
    for (let next = this.#next(); next; next = this.#next()) {
      const wait = this.#pacer.wait();
      if (wait > 0) {
        this.#flushTimer = setTimeout(() => {
          this.#flushTimer = undefined;
          this.#flush();
        }, wait);
        return;
      }
      if (!this.#connection.send(next.text)) return;
      this.#pacer.take();
      next.sent();
    }
  }

  /** The next frame that costs a token, if any. */
  #next(): Outgoing | undefined {
    const presence = this.#presence;
    if (presence?.dirty) {
      // With an id, the server's error for it (e.g. forbidden) is not taken for a close announcement.
      const id = newId();
      return {
        text: JSON.stringify({ type: "presence", id, state: presence.state }),
        sent: () => {
          presence.dirty = false;
          presence.id = id;
        },
      };
    }
    for (const pending of this.#history.values()) {
      if (!pending.sent) return { text: pending.frame, sent: () => void (pending.sent = true) };
    }
    // Publishes wait for the user's stored outbox, which goes first.
    const user = this.#outbox.user;
    if (user === undefined || this.#restoring.has(user)) return undefined;
    const entry = this.#outbox.nextUnsent();
    if (!entry) return undefined;
    return {
      text: JSON.stringify({ type: "publish", id: entry.id, data: entry.data }),
      sent: () => {
        this.#outbox.markSent(entry.id);
        this.#stats.published(entry.id);
      },
    };
  }

  /**
   * Ends every pending operation. Stored outbox entries are forgotten only when they can
   * never be sent (`forbidden`: the token lacks publish here; `kicked`: an admin removed
   * the user). An `unauthorized` end (a provider's `null` at sign-out, a rotated key, a
   * clock-skewed `nbf`) keeps them for the user's next session with a good token.
   */
  #fail(err: RoomcastClientError, forget = err.code === "forbidden" || err.code === "kicked"): void {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#stats.down();
    this.#outbox.rejectAll(err, { forget });
    for (const pending of this.#history.values()) pending.reject(err);
    this.#history.clear();
  }
}
