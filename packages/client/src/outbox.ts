/**
 * The outbox: publishes wait here, in order, until the server acks them. It is
 * bounded, and it can be durable: with a persistent `OutboxStorage` (IndexedDB in
 * browsers), queued publishes survive a page reload and are sent again after it
 * with the same ids, which the server deduplicates, so each is stored exactly once.
 */
import { RoomcastClientError } from "./errors.js";

export interface OutboxEntry {
  /** Client message id; the server dedupes on (user, id). */
  readonly id: string;
  readonly data: unknown;
  /** ms since the epoch. */
  readonly createdAt: number;
}

/** Where queued publishes are kept. Every method may be async. */
export interface OutboxStorage {
  /** Entries of `room`, oldest first. */
  load(room: string): Promise<OutboxEntry[]> | OutboxEntry[];
  add(room: string, entry: OutboxEntry): Promise<void> | void;
  remove(room: string, id: string): Promise<void> | void;
}

/** The default: kept in memory, gone on reload. */
export function memoryStorage(): OutboxStorage {
  const rooms = new Map<string, OutboxEntry[]>();
  return {
    load: (room) => [...(rooms.get(room) ?? [])],
    add: (room, entry) => {
      const list = rooms.get(room) ?? [];
      list.push(entry);
      rooms.set(room, list);
    },
    remove: (room, id) => {
      const list = rooms.get(room);
      if (list) rooms.set(room, list.filter((e) => e.id !== id));
    },
  };
}

/**
 * What happens to a publish when the outbox is full:
 * - `"reject-new"` (default): the new publish rejects with `outbox_full`;
 * - `"drop-oldest"`: the oldest unsent publish rejects with `outbox_full` and makes room.
 */
export type OverflowPolicy = "reject-new" | "drop-oldest";

export interface PublishAck {
  readonly id: string;
  readonly seq: number;
  /** True when the server had already stored this id (a retry after a lost ack). */
  readonly duplicate: boolean;
}

interface Pending {
  entry: OutboxEntry;
  sent: boolean;
  resolve?: (ack: PublishAck) => void;
  reject?: (err: RoomcastClientError) => void;
}

export class Outbox {
  readonly #room: string;
  readonly #storage: OutboxStorage;
  readonly #maxSize: number;
  readonly #overflow: OverflowPolicy;
  readonly #onError: (err: unknown) => void;
  #queue: Pending[] = [];

  constructor(room: string, options: { storage: OutboxStorage; maxSize: number; overflow: OverflowPolicy; onError: (err: unknown) => void }) {
    this.#room = room;
    this.#storage = options.storage;
    this.#maxSize = options.maxSize;
    this.#overflow = options.overflow;
    this.#onError = options.onError;
  }

  get size(): number {
    return this.#queue.length;
  }

  /** Pending entries, oldest first. */
  entries(): OutboxEntry[] {
    return this.#queue.map((p) => p.entry);
  }

  /** Loads entries a previous page left behind; they go before anything queued since. */
  async restore(): Promise<OutboxEntry[]> {
    const stored = await this.#storage.load(this.#room);
    const known = new Set(this.#queue.map((p) => p.entry.id));
    const restored = stored.filter((e) => !known.has(e.id));
    this.#queue = [...restored.map((entry) => ({ entry, sent: false })), ...this.#queue];
    return restored;
  }

  /** Queues a publish; the promise settles with its ack or error. */
  push(entry: OutboxEntry): Promise<PublishAck> {
    if (this.#queue.length >= this.#maxSize) {
      const victim = this.#overflow === "drop-oldest" ? this.#queue.find((p) => !p.sent) : undefined;
      if (!victim) return Promise.reject(new RoomcastClientError("outbox_full", `the outbox holds ${this.#maxSize} unacked publishes`));
      this.settle(victim.entry.id, new RoomcastClientError("outbox_full", "dropped to make room for a newer publish (overflow: drop-oldest)"));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, sent: false, resolve, reject });
      this.#persist(() => this.#storage.add(this.#room, entry));
    });
  }

  /** The next entry not yet sent on this connection. */
  nextUnsent(): OutboxEntry | undefined {
    return this.#queue.find((p) => !p.sent)?.entry;
  }

  markSent(id: string): void {
    const pending = this.#queue.find((p) => p.entry.id === id);
    if (pending) pending.sent = true;
  }

  isSent(id: string): boolean {
    return this.#queue.find((p) => p.entry.id === id)?.sent ?? false;
  }

  /** After a disconnect everything unacked must be sent again. */
  markAllUnsent(): void {
    for (const p of this.#queue) p.sent = false;
  }

  has(id: string): boolean {
    return this.#queue.some((p) => p.entry.id === id);
  }

  /** Removes an entry and settles its promise: with an ack, or with an error. */
  settle(id: string, outcome: PublishAck | RoomcastClientError): boolean {
    const index = this.#queue.findIndex((p) => p.entry.id === id);
    if (index === -1) return false;
    const [pending] = this.#queue.splice(index, 1);
    this.#persist(() => this.#storage.remove(this.#room, id));
    if (outcome instanceof RoomcastClientError) pending!.reject?.(outcome);
    else pending!.resolve?.(outcome);
    return true;
  }

  /** Rejects every in-memory promise (the room is gone); durable entries stay stored for a later session. */
  rejectAll(err: RoomcastClientError, { forget }: { forget: boolean }): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const p of queue) {
      if (forget) this.#persist(() => this.#storage.remove(this.#room, p.entry.id));
      p.reject?.(err);
    }
  }

  #persist(write: () => Promise<void> | void): void {
    try {
      const result = write();
      if (result instanceof Promise) result.catch(this.#onError);
    } catch (err) {
      this.#onError(err);
    }
  }
}
