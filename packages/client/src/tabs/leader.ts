/**
 * The leader's half of tab sharing: the one tab holding the group's lock runs a
 * real `Room` (one socket, one outbox, one resume position) and serves the group:
 * it relays the room's events to every tab, gap-free, and publishes, fetches
 * history and sets presence for any tab.
 *
 * A new leader's room joins afresh, so its replay may start after the position the
 * tabs had reached (a takeover while messages flowed): the relay fills that hole
 * with `history` before it passes on anything newer, so every tab's log stays
 * contiguous. Messages are relayed only through the leader's own `TabLog`, which
 * drops what the group already saw.
 */
import type { Message } from "@roomcast/protocol";
import type { RoomcastClientError } from "../errors.js";
import type { GapInfo } from "../room.js";
import type { ManagedRoom } from "./handle.js";
import type { TabLog } from "./log.js";
import type { TabMessage, TabMessageBody, WireError } from "./wire.js";

/** History page size used to fill a hole after a takeover. */
const FILL_PAGE = 100;

type Item = { kind: "message"; epoch: string; message: Message } | { kind: "gap"; gap: GapInfo } | { kind: "position"; epoch: string; seq: number };

export function wireError(err: unknown): WireError {
  const e = err as Partial<RoomcastClientError> | undefined;
  return {
    code: typeof e?.code === "string" ? e.code : "internal_error",
    message: typeof e?.message === "string" ? e.message : String(err),
    ...(typeof e?.sent === "boolean" ? { sent: e.sent } : {}),
  };
}

export class Leader {
  readonly #room: ManagedRoom;
  readonly #log: TabLog;
  readonly #emit: (body: TabMessageBody) => void;
  readonly #presence: () => unknown;
  readonly #unsubscribe: (() => void)[] = [];
  /** Publish id → the tabs waiting for its outcome. */
  readonly #publishes = new Map<string, Set<string>>();
  readonly #queue: Item[] = [];
  #pumping = false;
  #stopped = false;

  constructor(room: ManagedRoom, log: TabLog, emit: (body: TabMessageBody) => void, presence: () => unknown) {
    this.#room = room;
    this.#log = log;
    this.#emit = emit;
    this.#presence = presence;
    const on = this.#unsubscribe;
    on.push(
      room.on("state", (change) => {
        this.#emit({
          t: "state",
          oldState: change.oldState,
          newState: change.newState,
          ...(change.retryInMs === undefined ? {} : { retryInMs: change.retryInMs }),
          ...(change.error ? { error: wireError(change.error) } : {}),
          ...(room.userId === undefined ? {} : { userId: room.userId }),
        });
        // The room sets its position in the welcome, right after announcing `connected`.
        if (change.newState === "connected") {
          queueMicrotask(() => {
            const { epoch, seq } = room.position;
            if (epoch !== undefined) this.#enqueue({ kind: "position", epoch, seq });
            // The user id, known from the welcome now (the state change came before it).
            if (room.userId !== undefined && room.state === "connected") this.#emit({ t: "state", oldState: "connected", newState: "connected", userId: room.userId });
          });
        }
      }),
      room.on("message", (message) => {
        const epoch = room.position.epoch;
        if (epoch !== undefined) this.#enqueue({ kind: "message", epoch, message });
      }),
      room.on("gap", (gap) => this.#enqueue({ kind: "gap", gap })),
      room.on("recovered", (info) => this.#emit({ t: "recovered", epoch: info.epoch, seq: info.from })),
      // To every tab: the entries are the user's, and any tab may show them.
      room.on("restored", (entries) => this.#emit({ t: "restored", entries: entries.map((e) => ({ id: e.id, data: e.data, createdAt: e.createdAt })) })),
      room.on("presence", (members) => this.#emit({ t: "presence", members })),
      room.on("features", (features) => this.#emit({ t: "features", features: { ...features } })),
      room.on("error", (err) => this.#emit({ t: "error", error: wireError(err) })),
      room.on("publish_failed", (failure) => {
        const error = wireError(failure.error);
        this.#emit({ t: "publish_failed", id: failure.id, data: failure.data, error, kept: failure.kept });
        this.#finish(failure.id, { error });
      }),
      room.on("ack", (ack) => {
        this.#emit({ t: "ack", ack: { id: ack.id, seq: ack.seq, duplicate: ack.duplicate } });
        this.#finish(ack.id, { ack: { id: ack.id, seq: ack.seq, duplicate: ack.duplicate } });
      }),
    );
    // The group's latency, as the leader's room measures it, after each pong (once a ping interval).
    on.push(room.onStats(() => this.#emit({ t: "stats", stats: room.stats() })));
    const state = this.#presence();
    if (state !== undefined) room.setPresence(state);
  }

  get room(): ManagedRoom {
    return this.#room;
  }

  /** A request from a tab (this one included). */
  serve(message: TabMessage): void {
    if (this.#stopped) return;
    switch (message.t) {
      case "hello": {
        // What the room restored from a previous page and no tab submitted: a tab that opens later shows them too.
        const restored = this.#room.pending.filter((e) => !this.#publishes.has(e.id)).map((e) => ({ id: e.id, data: e.data, createdAt: e.createdAt }));
        this.#emit({
          t: "snapshot",
          to: message.from,
          state: this.#room.state,
          members: this.#room.members,
          ...(this.#room.userId === undefined ? {} : { userId: this.#room.userId }),
          ...(this.#log.epoch === undefined ? {} : { epoch: this.#log.epoch }),
          seq: this.#log.seq,
          messages: this.#log.recent,
          ...(this.#presence() === undefined ? {} : { presence: this.#presence() }),
          ...(restored.length === 0 ? {} : { restored }),
          // Only once this leader's room has been welcomed (as `userId`): before that its `{}` is
          // "not known yet", and would reset the tabs' flags during a takeover.
          ...(this.#room.userId === undefined ? {} : { features: { ...this.#room.features } }),
        });
        return;
      }
      case "publish":
        return this.#publish(message.from, message.id, message.data);
      case "history":
        this.#room.history({ ...(message.after === undefined ? {} : { after: message.after }), ...(message.limit === undefined ? {} : { limit: message.limit }) }).then(
          (page) => this.#result(message.from, message.req, { page: { messages: page.messages, hasMore: page.hasMore } }),
          (err: unknown) => this.#result(message.from, message.req, { error: wireError(err) }),
        );
        return;
      case "presence-set":
        this.#room.setPresence(message.state);
        return;
      default:
        return;
    }
  }

  /** Whether a tab other than `tab` waits for the outcome of publish `id`. */
  awaitedByOthers(id: string, tab: string): boolean {
    return [...(this.#publishes.get(id) ?? [])].some((t) => t !== tab);
  }

  /** Stops relaying; outcomes of requests still open are not reported (the tabs re-submit to the next leader). */
  stop(): void {
    this.#stopped = true;
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  #publish(tab: string, id: string, data: unknown): void {
    const waiting = this.#publishes.get(id);
    if (waiting) {
      waiting.add(tab); // a re-submission of a publish already under way
      return;
    }
    this.#publishes.set(id, new Set([tab]));
    // Restored from the durable outbox (a previous leader queued it): its ack event settles it.
    if (this.#room.pending.some((e) => e.id === id)) return;
    this.#room.publish(data, { id }).then(
      (ack) => this.#finish(id, { ack: { id: ack.id, seq: ack.seq, duplicate: ack.duplicate } }),
      (err: unknown) => this.#finish(id, { error: wireError(err) }),
    );
  }

  #finish(id: string, outcome: { ack: { id: string; seq: number; duplicate: boolean } } | { error: WireError }): void {
    const tabs = this.#publishes.get(id);
    if (!tabs) return;
    this.#publishes.delete(id);
    for (const tab of tabs) this.#result(tab, id, outcome);
  }

  #result(to: string, req: string, outcome: Omit<Extract<TabMessageBody, { t: "result" }>, "t" | "to" | "req">): void {
    if (this.#stopped) return;
    this.#emit({ t: "result", to, req, ...outcome });
  }

  // ---- the relay: room events → the group's log, in order, without holes ----------

  #enqueue(item: Item): void {
    this.#queue.push(item);
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && !this.#stopped) {
        const item = this.#queue[0]!;
        if (item.kind === "gap") {
          this.#queue.shift();
          // The room's own verdict on a resume: another log (reset) or a hole left by retention.
          const { reason, epoch, from } = item.gap;
          this.#reset({ reason, epoch, from, reset: item.gap.reset ?? (reason !== "trimmed" || epoch !== this.#log.epoch) });
          continue;
        }
        if (item.kind === "position") {
          this.#queue.shift();
          const log = this.#log;
          if (log.epoch === undefined) log.reset(item.epoch, item.seq);
          else if (item.epoch !== log.epoch) this.#reset({ reason: "epoch_changed", epoch: item.epoch, from: item.seq, reset: true });
          else if (item.seq > log.seq && !(await this.#fill(item.epoch, item.seq))) this.#reset({ reason: "trimmed", epoch: item.epoch, from: item.seq, reset: false });
          continue;
        }
        const verdict = this.#log.classify(item.epoch, item.message);
        if (verdict === "epoch") {
          this.#reset({ reason: "epoch_changed", epoch: item.epoch, from: item.message.seq - 1, reset: true });
          continue;
        }
        if (verdict === "gap") {
          if (!(await this.#fill(item.epoch, item.message.seq - 1))) this.#reset({ reason: "trimmed", epoch: item.epoch, from: item.message.seq - 1, reset: false });
          continue;
        }
        this.#queue.shift();
        if (verdict === "next") this.#deliver(item.epoch, item.message);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Fetches what lies between the log's position and `upTo`; false if it is not all there. */
  async #fill(epoch: string, upTo: number): Promise<boolean> {
    while (this.#log.seq < upTo) {
      let page;
      try {
        page = await this.#room.history({ after: this.#log.seq, limit: Math.min(FILL_PAGE, upTo - this.#log.seq) });
      } catch {
        return false;
      }
      if (this.#stopped || this.#room.position.epoch !== epoch) return false;
      const first = page.messages[0];
      if (!first || first.seq > this.#log.seq + 1) return false; // retention deleted part of it
      for (const message of page.messages) {
        if (message.seq > upTo) break;
        if (this.#log.classify(epoch, message) === "next") this.#deliver(epoch, message);
      }
      if (!page.hasMore && this.#log.seq < upTo) return false;
    }
    return true;
  }

  #deliver(epoch: string, message: Message): void {
    if (this.#stopped) return;
    this.#emit({ t: "message", epoch, message });
  }

  #reset(gap: GapInfo): void {
    if (this.#stopped) return;
    this.#emit({ t: "gap", gap: { reason: gap.reason, epoch: gap.epoch, from: gap.from, reset: gap.reset ?? true } });
  }
}
