/**
 * The outbox: publishes wait here, in order, until the server acks them. It is
 * bounded, and it can be durable: with a persistent `OutboxStorage` (IndexedDB in
 * browsers), queued publishes survive a page reload and are sent again after it
 * with the same ids, which the server deduplicates, so each is stored exactly once.
 *
 * Entries belong to a user (the server dedupes and attributes on (user, id)): each
 * is stored under (room, user) and only ever sent on a socket of that user. A
 * publish made before the room knows its user (the first token not yet read) is
 * held in memory and stored once the user is known.
 *
 * Nothing of a user is written before that user's stored rows are loaded: an entry
 * pushed meanwhile may already be there (with tab sharing, a new leader's room is
 * handed the old leader's publishes again, with their ids, before its restore ends),
 * and a storage with a unique index (IndexedDB) would refuse a second row. Once
 * loaded, an entry whose id is stored is taken as stored; the others are written.
 */
import { RoomcastClientError } from "./errors.js";

export interface OutboxEntry {
  /** Client message id; the server dedupes on (user, id). */
  readonly id: string;
  readonly data: unknown;
  /** ms since the epoch. */
  readonly createdAt: number;
}

/** Where queued publishes are kept, per room and user. Every method may be async. */
export interface OutboxStorage {
  /** Entries `user` queued in `room`, oldest first. */
  load(room: string, user: string): Promise<OutboxEntry[]> | OutboxEntry[];
  add(room: string, user: string, entry: OutboxEntry): Promise<void> | void;
  remove(room: string, user: string, id: string): Promise<void> | void;
}

/** The default: kept in memory (per client), gone on reload. */
export function memoryStorage(): OutboxStorage {
  const lists = new Map<string, OutboxEntry[]>();
  const key = (room: string, user: string) => JSON.stringify([room, user]);
  return {
    load: (room, user) => [...(lists.get(key(room, user)) ?? [])],
    add: (room, user, entry) => {
      const list = lists.get(key(room, user)) ?? [];
      list.push(entry);
      lists.set(key(room, user), list);
    },
    remove: (room, user, id) => {
      const list = lists.get(key(room, user));
      if (list) lists.set(key(room, user), list.filter((e) => e.id !== id));
    },
  };
}

/**
 * What happens to a publish when the outbox is full:
 * - `"reject-new"` (default): the new publish rejects with `outbox_full`;
 * - `"drop-oldest"`: the oldest never-sent publish rejects with `outbox_full` and makes room.
 */
export type OverflowPolicy = "reject-new" | "drop-oldest";

export interface PublishAck {
  readonly id: string;
  readonly seq: number;
  /** True when the server had already stored this id (a retry after a lost ack). */
  readonly duplicate: boolean;
}

/** A publish that ended without an ack (the `publish_failed` event). */
export interface PublishFailure {
  readonly id: string;
  readonly data: unknown;
  readonly error: RoomcastClientError;
  /**
   * True when the entry stays in the outbox's storage and is sent in a later session
   * of the same user (the room was released, not left, or failed for a reason that
   * says nothing about the message).
   */
  readonly kept: boolean;
}

interface Pending {
  entry: OutboxEntry;
  /** The user it is queued for; undefined until the room learns its user. */
  user: string | undefined;
  /** Written to storage (so it must be removed from there when it settles). */
  stored: boolean;
  /** Sent on the current socket (reset on every disconnect). */
  sent: boolean;
  /** Ever written to a socket: the server may have stored it. */
  everSent: boolean;
  resolve?: (ack: PublishAck) => void;
  reject?: (err: RoomcastClientError) => void;
}

export interface OutboxOptions {
  readonly storage: OutboxStorage;
  readonly maxSize: number;
  readonly overflow: OverflowPolicy;
  /** A storage write failed. */
  readonly onError: (err: unknown) => void;
  /** An entry ended without an ack (whether or not it had a promise). */
  readonly onFailed: (failure: PublishFailure) => void;
}

export class Outbox {
  readonly #room: string;
  readonly #options: OutboxOptions;
  #user: string | undefined;
  #queue: Pending[] = [];
  /** Rejected for good (the room is gone): a late restore adds nothing. */
  #closed = false;
  /** Users whose stored rows have been loaded (or failed to load): their entries are written now. */
  readonly #loaded = new Set<string>();

  constructor(room: string, options: OutboxOptions) {
    this.#room = room;
    this.#options = options;
  }

  /** The user whose entries are sent now (undefined until known). */
  get user(): string | undefined {
    return this.#user;
  }

  get size(): number {
    return this.#queue.length;
  }

  /** The current user's pending entries (and those waiting for a user), oldest first. */
  entries(): OutboxEntry[] {
    return this.#queue.filter((p) => this.#mine(p)).map((p) => p.entry);
  }

  /**
   * The room's user is `user` now. Entries queued before any user was known become
   * theirs (and are stored); another user's entries stay queued (and stored) for
   * that user, but are not sent while `user` is current.
   */
  setUser(user: string): void {
    this.#user = user;
    for (const p of this.#queue) {
      if (p.user !== undefined) continue;
      p.user = user;
      this.#store(p);
    }
  }

  /**
   * Loads what `user` left in storage (a previous page); it goes before anything of
   * theirs queued since. Synchronous when the storage is (memory).
   */
  restore(user: string): OutboxEntry[] | Promise<OutboxEntry[]> {
    let stored: OutboxEntry[] | Promise<OutboxEntry[]>;
    try {
      stored = this.#options.storage.load(this.#room, user);
    } catch (err) {
      this.#merge(user, []); // what is queued is written anyway
      throw err;
    }
    if (!(stored instanceof Promise)) return this.#merge(user, stored);
    return stored.then(
      (entries) => this.#merge(user, entries),
      (err: unknown) => {
        this.#merge(user, []);
        throw err;
      },
    );
  }

  #merge(user: string, stored: OutboxEntry[]): OutboxEntry[] {
    this.#loaded.add(user);
    if (this.#closed) return [];
    const storedIds = new Set(stored.map((e) => e.id));
    const queued = this.#queue.filter((p) => p.user === user);
    const known = new Set(queued.map((p) => p.entry.id));
    const restored = stored.filter((e) => !known.has(e.id));
    const rows: Pending[] = restored.map((entry) => ({ entry, user, stored: true, sent: false, everSent: false }));
    this.#queue = [...rows, ...this.#queue];
    // Queued while loading: already stored (same id), or written now.
    for (const p of queued) {
      if (storedIds.has(p.entry.id)) p.stored = true;
      else this.#store(p);
    }
    return restored;
  }

  /** Queues a publish for the current user; the promise settles with its ack or error. */
  push(entry: OutboxEntry): Promise<PublishAck> {
    if (this.#queue.length >= this.#options.maxSize) {
      // Only a publish that never reached a socket can be dropped: it is surely not stored.
      const victim = this.#options.overflow === "drop-oldest" ? this.#queue.find((p) => !p.everSent && this.#mine(p)) : undefined;
      if (!victim) return Promise.reject(new RoomcastClientError("outbox_full", `the outbox holds ${this.#options.maxSize} unacked publishes`));
      this.settle(victim.entry.id, new RoomcastClientError("outbox_full", "dropped to make room for a newer publish (overflow: drop-oldest)"));
    }
    return new Promise((resolve, reject) => {
      const pending: Pending = { entry, user: this.#user, stored: false, sent: false, everSent: false, resolve, reject };
      this.#queue.push(pending);
      if (pending.user !== undefined) this.#store(pending);
    });
  }

  /** The current user's next entry not yet sent on this socket. */
  nextUnsent(): OutboxEntry | undefined {
    if (this.#user === undefined) return undefined;
    return this.#queue.find((p) => p.user === this.#user && !p.sent)?.entry;
  }

  markSent(id: string): void {
    const pending = this.#find(id);
    if (!pending) return;
    pending.sent = true;
    pending.everSent = true;
  }

  /** Send it again on this socket (the server said "later"). */
  markUnsent(id: string): void {
    const pending = this.#find(id);
    if (pending) pending.sent = false;
  }

  /** Whether it was ever written to a socket (then the server may have stored it). */
  wasSent(id: string): boolean {
    return this.#find(id)?.everSent ?? false;
  }

  /** After a disconnect everything unacked must be sent again. */
  markAllUnsent(): void {
    for (const p of this.#queue) p.sent = false;
  }

  /** Whether the current user has this entry queued. */
  has(id: string): boolean {
    return this.#find(id) !== undefined;
  }

  /**
   * The caller stops waiting (a timeout) but the entry stays queued and keeps being
   * retried with the same id until acked; the outcome is reported only by events.
   */
  detach(id: string): void {
    const pending = this.#find(id);
    if (!pending) return;
    delete pending.resolve;
    delete pending.reject;
  }

  /** Removes the current user's entry and settles its promise: with an ack, or with an error. */
  settle(id: string, outcome: PublishAck | RoomcastClientError): boolean {
    const pending = this.#find(id);
    if (!pending) return false;
    this.#queue.splice(this.#queue.indexOf(pending), 1);
    if (pending.stored && pending.user !== undefined) {
      const user = pending.user;
      this.#persist(() => this.#options.storage.remove(this.#room, user, id));
    }
    if (outcome instanceof RoomcastClientError) {
      pending.reject?.(outcome);
      this.#options.onFailed({ id, data: pending.entry.data, error: outcome, kept: false });
    } else {
      pending.resolve?.(outcome);
    }
    return true;
  }

  /**
   * Rejects every entry (the room is gone). With `forget`, stored entries are removed
   * too; without, they stay stored for a later session of their user. An entry that
   * was never stored (no user yet) is gone either way.
   */
  rejectAll(err: RoomcastClientError, { forget }: { forget: boolean }): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#closed = true;
    for (const p of queue) {
      const user = p.user;
      if (forget && p.stored && user !== undefined) this.#persist(() => this.#options.storage.remove(this.#room, user, p.entry.id));
      p.reject?.(err);
      this.#options.onFailed({ id: p.entry.id, data: p.entry.data, error: err, kept: !forget && p.stored });
    }
  }

  #mine(p: Pending): boolean {
    return p.user === undefined || p.user === this.#user;
  }

  #find(id: string): Pending | undefined {
    return this.#queue.find((p) => p.entry.id === id && this.#mine(p));
  }

  #store(p: Pending): void {
    const user = p.user;
    // Before the user's rows are loaded, the restore decides (see the top of this file).
    if (user === undefined || p.stored || !this.#loaded.has(user)) return;
    p.stored = true;
    this.#persist(() => this.#options.storage.add(this.#room, user, p.entry));
  }

  #persist(write: () => Promise<void> | void): void {
    try {
      const result = write();
      if (result instanceof Promise) result.catch(this.#options.onError);
    } catch (err) {
      this.#options.onError(err);
    }
  }
}
