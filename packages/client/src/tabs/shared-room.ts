/**
 * `SharedRoom`: a room handle whose socket is shared by every tab of the origin
 * (`shareAcrossTabs`). The tabs of one group (same server, room and user) elect a
 * leader with a Web Lock; the lock holder runs the only real `Room` and serves the
 * others over a BroadcastChannel (see leader.ts). Every tab, the leader's
 * included, sees the room through this same class:
 *
 * - its own copy of the log (tabs/log.ts), fed in order by the leader, so every
 *   message shows once in every tab, across takeovers;
 * - its own pending publishes, each with its id fixed here: a publish settles in
 *   the tab that made it, and survives a leader change because the tab submits it
 *   again to the next leader with the same id (the server dedupes on (user, id));
 * - its own pending history requests, submitted again the same way.
 *
 * When the leader's tab closes, the browser releases its lock and the next tab in
 * the lock's queue takes over at once: it opens its own `Room`, whose outbox
 * restores what the old leader had stored durably.
 */
import { MESSAGE_ID, type Member, type Message } from "@roomcast/protocol";
import type { ConnectionState, StateChange } from "../connection.js";
import { Emitter } from "../emitter.js";
import { RoomcastClientError, type ClientErrorCode } from "../errors.js";
import type { OutboxEntry, PublishAck } from "../outbox.js";
import type { HistoryPage, PublishOptions, RoomEvents } from "../room.js";
import type { ManagedRoom } from "./handle.js";
import { Leader } from "./leader.js";
import { TabLog } from "./log.js";
import type { ChannelLike, TabPlatform } from "./platform.js";
import { newId, publishJson, sameFlags, withTimeout } from "../util.js";
import { Stats, type RoomStats } from "../stats.js";
import { WIRE_VERSION, decodeTabMessage, type TabMessage, type TabMessageBody, type WireError } from "./wire.js";

export interface SharedRoomOptions {
  readonly platform: TabPlatform;
  /** The group's lock and channel name (keyed by server, room and user). */
  readonly group: Promise<string>;
  /** Opens the real room when this tab becomes the leader. */
  readonly createRoom: () => ManagedRoom;
  readonly messageBuffer: number;
  readonly onLeave: () => void;
  /**
   * Removes these publishes of `user` (undefined: the tab's token's `sub`) from the
   * outbox storage: what a leaving leader does with its own tab's publishes.
   */
  readonly forget: (user: string | undefined, ids: string[]) => Promise<void>;
  /** For tests; default a random UUID. */
  readonly tabId?: string;
}

interface PendingPublish {
  readonly entry: OutboxEntry;
  /** Unset once the caller stopped waiting (publish_timeout): the entry stays until acked. */
  resolve?: (ack: PublishAck) => void;
  reject?: (err: RoomcastClientError) => void;
  /**
   * Handed to a leader at least once. The leader's outbox then sends it until acked,
   * so it may have reached the server (the tab cannot see the leader's socket: this
   * is the conservative reading of `sent`).
   */
  submitted: boolean;
}

interface PendingHistory {
  readonly after: number | undefined;
  readonly limit: number | undefined;
  readonly resolve: (page: HistoryPage) => void;
  readonly reject: (err: RoomcastClientError) => void;
}

/** How long a leaving leader waits for the storage to forget its tab's publishes before handing over. */
const FORGET_TIMEOUT_MS = 1_000;

export class SharedRoom extends Emitter<RoomEvents> implements ManagedRoom {
  readonly name: string;
  readonly tabId: string;
  readonly #options: SharedRoomOptions;
  readonly #log: TabLog;
  readonly #abort = new AbortController();
  readonly #publishes = new Map<string, PendingPublish>();
  readonly #histories = new Map<string, PendingHistory>();
  /** Ids this tab's `restored` events have listed. */
  readonly #announced = new Set<string>();
  #state: ConnectionState = "connecting";
  #members: Member[] = [];
  #userId: string | undefined;
  #features: Readonly<Record<string, boolean>> = Object.freeze({});
  #channel: ChannelLike | undefined;
  /** The tab serving the group, as far as this tab knows. */
  #leaderId: string | undefined;
  /** Set while this tab is the leader. */
  #leader: Leader | undefined;
  #release: (() => void) | undefined;
  /** True once this tab's log is in step with the leader's (after its snapshot). */
  #synced = false;
  #left = false;
  /** The group's presence state: one connection, so the last state any tab set. */
  #presence: unknown = undefined;
  /** The leader's numbers, as last relayed; before any, an empty set. */
  #stats: RoomStats | undefined;
  readonly #emptyStats = new Stats();

  constructor(name: string, options: SharedRoomOptions) {
    super();
    this.name = name;
    this.#options = options;
    this.tabId = options.tabId ?? newId("t");
    this.#log = new TabLog(options.messageBuffer);
    void this.#start();
  }

  get state(): ConnectionState {
    return this.#state;
  }
  get members(): Member[] {
    return this.#members;
  }
  get messages() {
    return this.#log.messages;
  }
  get position(): { epoch: string | undefined; seq: number } {
    return { epoch: this.#log.epoch, seq: this.#log.seq };
  }
  get userId(): string | undefined {
    return this.#userId;
  }
  /** The feature flags of the group's latest welcome, as the leader relays them (`{}` before it). */
  get features(): Readonly<Record<string, boolean>> {
    return this.#features;
  }
  /** This tab's publishes waiting for an ack, oldest first. */
  get pending(): OutboxEntry[] {
    return [...this.#publishes.values()].map((p) => p.entry);
  }
  /** True while this tab holds the group's connection. */
  get isLeader(): boolean {
    return this.#leader !== undefined;
  }

  publish(data: unknown, options: PublishOptions = {}): Promise<PublishAck> {
    if (this.#state === "closed" || this.#state === "failed") {
      return Promise.reject(new RoomcastClientError("room_closed", `the room is ${this.#state}`));
    }
    const encoded = publishJson(data);
    if ("error" in encoded) return Promise.reject(encoded.error);
    const { json } = encoded;
    const id = options.id ?? newId("t");
    // As `Room` does: the leader's room would refuse it, and a refusal there cannot say TypeError.
    if (typeof id !== "string" || !MESSAGE_ID.test(id)) {
      return Promise.reject(new TypeError(`publish id must be 1-64 of A-Z a-z 0-9 _ . : - (got ${JSON.stringify(id)})`));
    }
    if (this.#publishes.has(id)) return Promise.reject(new TypeError(`a publish with id "${id}" is already pending in this tab`));
    // A copy of exactly what will be sent (our own JSON from publishJson, so parsing it back cannot fail).
    const copy: unknown = JSON.parse(json);
    const entry: OutboxEntry = { id, data: copy, createdAt: Date.now() };
    const promise = new Promise<PublishAck>((resolve, reject) => {
      this.#publishes.set(id, { entry, resolve, reject, submitted: false });
    });
    this.#submitPublish(id);
    if (options.timeoutMs === undefined) return promise;
    const timeoutMs = options.timeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const pending = this.#publishes.get(id);
        const sent = pending?.submitted ?? true;
        if (pending && !sent) {
          // No leader ever had it: surely not stored, so withdrawn.
          this.#publishes.delete(id);
        } else if (pending) {
          // A leader has it and keeps sending it: it may be stored. It stays pending here
          // (detached from its promise) and is submitted again to every next leader until
          // acked, as a Room's outbox keeps it; the `ack` event reports the outcome.
          delete pending.resolve;
          delete pending.reject;
        }
        reject(
          new RoomcastClientError(
            "publish_timeout",
            sent ? `no ack within ${timeoutMs} ms; handed to the tabs' connection, so it may be stored, and is still being sent until acked` : `no ack within ${timeoutMs} ms; never sent, so withdrawn`,
            { sent },
          ),
        );
      }, timeoutMs);
      promise.then(
        (ack) => {
          clearTimeout(timer);
          resolve(ack);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /**
   * The group's latency, measured by the leader tab's room on the one socket: live in
   * the leader, in other tabs as relayed after the leader's last pong (so up to a ping
   * interval old; empty until the first). `state` is this tab's.
   */
  stats(): RoomStats {
    const stats = this.#leader?.room.stats() ?? this.#stats ?? this.#emptyStats.snapshot(this.#state);
    return { ...stats, state: this.#state };
  }

  /** @internal A SharedRoom never serves as a leader's room: nothing to relay. */
  onStats(): () => void {
    return () => undefined;
  }

  setPresence(state: unknown): void {
    this.#presence = state;
    this.#broadcast({ t: "presence-set", state }, false);
    this.#leader?.serve(this.#wire({ t: "presence-set", state }));
  }

  history(options: { after?: number; limit?: number } = {}): Promise<HistoryPage> {
    if (this.#state === "closed" || this.#state === "failed") {
      return Promise.reject(new RoomcastClientError("room_closed", `the room is ${this.#state}`));
    }
    const req = newId("t");
    return new Promise((resolve, reject) => {
      this.#histories.set(req, { after: options.after, limit: options.limit, resolve, reject });
      this.#submitHistory(req);
    });
  }

  /**
   * Leaves the room in this tab. A leader hands the connection over: it closes its
   * room and releases the lock, and the next tab takes over; publishes other tabs
   * had handed to it are submitted again to that tab.
   *
   * The leader's room holds the group's outbox (other tabs' publishes, entries
   * restored from an earlier page), so it always leaves keeping it; without
   * `keepOutbox`, only this tab's own publishes are removed from the storage, then
   * the lock is released (so the next leader does not restore them).
   */
  leave(options: { keepOutbox?: boolean } = {}): void {
    if (this.#left) return;
    this.#left = true;
    const leader = this.#leader;
    this.#leader = undefined;
    if (leader) {
      this.#broadcast({ t: "bye" }, false);
      leader.stop();
      const user = leader.room.userId;
      leader.room.leave({ keepOutbox: true });
      const own = options.keepOutbox ? [] : [...this.#publishes.keys()].filter((id) => !leader.awaitedByOthers(id, this.tabId));
      const release = () => this.#release?.();
      if (own.length === 0) release();
      else {
        withTimeout(this.#options.forget(user, own), FORGET_TIMEOUT_MS)
          .catch((err: unknown) => this.emit("error", new RoomcastClientError("internal_error", "could not remove this tab's publishes from the outbox storage", { cause: err })))
          .finally(release);
      }
    }
    this.#abort.abort();
    this.#channel?.close();
    const err = new RoomcastClientError("room_closed", "the room was left");
    for (const p of this.#publishes.values()) p.reject?.(err);
    this.#publishes.clear();
    for (const h of this.#histories.values()) h.reject(err);
    this.#histories.clear();
    this.#setState("closed");
    this.#options.onLeave();
  }

  /** @internal Network or visibility changed: only the leader has a socket to act on. */
  nudge(kind: "online" | "offline" | "visible"): void {
    this.#leader?.room.nudge(kind);
  }

  // ---- joining the group ---------------------------------------------------------

  async #start(): Promise<void> {
    const group = await this.#options.group;
    if (this.#left) return;
    const channel = this.#options.platform.channel(group);
    this.#channel = channel;
    channel.onmessage = (event) => {
      const message = decodeTabMessage(event.data);
      if (message && message.from !== this.tabId && !this.#left) this.#receive(message);
    };
    this.#broadcast({ t: "hello" }, false);
    // Held until this tab leaves or dies; the browser then grants it to the next tab waiting.
    this.#options.platform.locks.request(group, { signal: this.#abort.signal }, () => this.#lead()).catch((err: unknown) => {
      if (!this.#left) this.emit("error", new RoomcastClientError("internal_error", "could not take part in the tab election", { cause: err }));
    });
  }

  #lead(): Promise<void> {
    if (this.#left) return Promise.resolve();
    const held = new Promise<void>((resolve) => (this.#release = resolve));
    this.#leader = new Leader(this.#options.createRoom(), this.#log, (body) => this.#broadcast(body, true), () => this.#presence);
    this.#broadcast({ t: "leader" }, true);
    return held;
  }

  // ---- talking to the group ---------------------------------------------------------

  #wire(body: TabMessageBody): TabMessage {
    return { v: WIRE_VERSION, from: this.tabId, ...body } as TabMessage;
  }

  /** Posts to the other tabs; with `local`, this tab applies it too (first). */
  #broadcast(body: TabMessageBody, local: boolean): void {
    const message = this.#wire(body);
    if (local) this.#receive(message);
    try {
      this.#channel?.postMessage(message);
    } catch (err) {
      this.emit("error", new RoomcastClientError("internal_error", "could not post to the other tabs", { cause: err }));
    }
  }

  /** A request for the leader: served here if this tab leads, else posted (if a leader is known). */
  #request(body: TabMessageBody): boolean {
    if (this.#leader) {
      const leader = this.#leader;
      queueMicrotask(() => leader.serve(this.#wire(body)));
      return true;
    }
    if (this.#leaderId === undefined) return false; // submitted when a leader is known
    this.#broadcast(body, false);
    return true;
  }

  #submitPublish(id: string): void {
    const pending = this.#publishes.get(id);
    if (pending && this.#request({ t: "publish", id, data: pending.entry.data })) pending.submitted = true;
  }

  #submitHistory(req: string): void {
    const h = this.#histories.get(req);
    if (h) this.#request({ t: "history", req, ...(h.after === undefined ? {} : { after: h.after }), ...(h.limit === undefined ? {} : { limit: h.limit }) });
  }

  /** A (new) leader serves the group: everything still open goes to it, with the same ids. */
  #adoptLeader(id: string): void {
    if (this.#leaderId === id) return;
    this.#leaderId = id;
    for (const publishId of this.#publishes.keys()) this.#submitPublish(publishId);
    for (const req of this.#histories.keys()) this.#submitHistory(req);
  }

  #receive(m: TabMessage): void {
    switch (m.t) {
      case "leader":
        if (this.#leader && m.from !== this.tabId) return; // cannot happen while we hold the lock
        this.#synced = m.from === this.tabId;
        this.#adoptLeader(m.from);
        if (!this.#synced) this.#broadcast({ t: "hello" }, false);
        return;
      case "bye":
        if (m.from !== this.#leaderId) return;
        this.#leaderId = undefined;
        this.#synced = false;
        this.#setState("reconnecting");
        return;
      case "snapshot":
        if (m.to === this.tabId) this.#adopt(m);
        return;
      case "result":
        if (m.to === this.tabId) this.#settle(m);
        return;
      case "hello":
      case "publish":
      case "history":
        this.#leader?.serve(m);
        return;
      case "presence-set":
        this.#presence = m.state;
        this.#leader?.serve(m);
        return;
      default:
        break;
    }
    // Events of the room: only from the leader this tab follows.
    if (m.from !== this.#leaderId) return;
    switch (m.t) {
      case "state":
        if (m.userId !== undefined) this.#userId = m.userId;
        this.#setState(m.newState, m.retryInMs, m.error);
        return;
      case "presence":
        this.#members = m.members;
        this.emit("presence", this.#members);
        return;
      case "stats":
        this.#stats = m.stats;
        return;
      case "features":
        this.#setFeatures(m.features, true);
        return;
      case "ack":
        this.emit("ack", m.ack);
        return;
      case "error":
        this.emit("error", clientError(m.error));
        return;
      case "publish_failed":
        this.emit("publish_failed", { id: m.id, data: m.data, error: clientError(m.error), kept: m.kept });
        return;
      case "recovered":
        this.emit("recovered", { epoch: m.epoch, from: m.seq });
        return;
      case "restored":
        this.#announceRestored(m.entries);
        return;
      default:
        break;
    }
    // Log events apply in step with the leader only (the snapshot carries what came before).
    if (!this.#synced) return;
    if (m.t === "gap") {
      if (m.gap.reset !== false) this.#log.reset(m.gap.epoch, m.gap.from);
      else this.#log.skipTo(m.gap.epoch, m.gap.from);
      this.emit("gap", m.gap);
    } else if (m.t === "message") {
      const verdict = this.#log.classify(m.epoch, m.message);
      if (verdict === "next") this.#deliver(m.epoch, m.message);
      else if (verdict !== "old") this.#resync();
    }
  }

  /**
   * The leader's features: after its welcome (`welcomed`: a `features` event, as a Room
   * gives one after every welcome), or from a snapshot (an event only if they changed).
   */
  #setFeatures(features: Record<string, boolean>, welcomed: boolean): void {
    const same = sameFlags(this.#features, features);
    if (!same) this.#features = Object.freeze({ ...features });
    if (welcomed || !same) this.emit("features", this.#features);
  }

  /** This tab missed something (it should not happen): ask the leader for a snapshot. */
  #resync(): void {
    this.#synced = false;
    this.#broadcast({ t: "hello" }, false);
  }

  #adopt(s: Extract<TabMessage, { t: "snapshot" }>): void {
    this.#adoptLeader(s.from);
    this.#synced = true;
    if (s.userId !== undefined) this.#userId = s.userId;
    if (s.presence !== undefined) this.#presence = s.presence;
    if (s.epoch !== undefined) {
      const log = this.#log;
      const fresh = s.epoch === log.epoch ? s.messages.filter((msg) => msg.seq > log.seq) : s.messages;
      const start = fresh[0] ? fresh[0].seq - 1 : s.seq;
      if (log.epoch === undefined) {
        log.reset(s.epoch, start);
      } else if (s.epoch !== log.epoch) {
        // Another log: start over, as a room does after a gap with `reset`.
        log.reset(s.epoch, start);
        this.emit("gap", { reason: "epoch_changed", epoch: s.epoch, from: start, reset: true });
      } else if (start > log.seq) {
        // A hole the snapshot cannot fill (it should not happen): go on after it.
        log.skipTo(s.epoch, start);
        this.emit("gap", { reason: "trimmed", epoch: s.epoch, from: start, reset: false });
      }
      for (const msg of fresh) if (log.classify(s.epoch, msg) === "next") this.#deliver(s.epoch, msg);
    }
    if (s.restored) this.#announceRestored(s.restored);
    this.#members = s.members;
    this.emit("presence", this.#members);
    this.#setState(s.state);
    // After the state, as a Room sets its features just after `connected`.
    if (s.features !== undefined) this.#setFeatures(s.features, false);
  }

  /**
   * The `restored` event, once per entry: not for what this tab has pending itself
   * (after a takeover the old leader had stored it), nor again when a later leader
   * or snapshot lists it.
   */
  #announceRestored(entries: OutboxEntry[]): void {
    const fresh = entries.filter((e) => !this.#publishes.has(e.id) && !this.#announced.has(e.id));
    for (const e of fresh) this.#announced.add(e.id);
    if (fresh.length > 0) this.emit("restored", fresh);
  }

  #deliver(epoch: string, message: Message): void {
    this.#log.add(epoch, message);
    this.emit("message", message);
  }

  #settle(r: Extract<TabMessage, { t: "result" }>): void {
    const publish = this.#publishes.get(r.req);
    if (publish) {
      this.#publishes.delete(r.req);
      if (r.ack) publish.resolve?.(r.ack);
      else publish.reject?.(clientError(r.error ?? { code: "internal_error", message: "the leader sent an empty result" }));
      return;
    }
    const history = this.#histories.get(r.req);
    if (history) {
      this.#histories.delete(r.req);
      if (r.page) history.resolve(r.page);
      else history.reject(clientError(r.error ?? { code: "internal_error", message: "the leader sent an empty result" }));
    }
  }

  #setState(newState: ConnectionState, retryInMs?: number, error?: WireError): void {
    if (this.#state === "closed") return;
    const oldState = this.#state;
    if (oldState === newState && error === undefined) return;
    this.#state = newState;
    const change: StateChange = {
      oldState,
      newState,
      ...(retryInMs === undefined ? {} : { retryInMs }),
      ...(error ? { error: clientError(error) } : {}),
    };
    this.emit("state", change);
  }
}

function clientError(e: WireError): RoomcastClientError {
  return new RoomcastClientError(e.code as ClientErrorCode, e.message, e.sent === undefined ? undefined : { sent: e.sent });
}
