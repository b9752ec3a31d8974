/**
 * The room's message log in the Durable Object's SQLite storage.
 *
 * `head` (the last sequence number handed out) and `epoch` live in `meta`, not in
 * `max(seq)`: trimming old messages must never let a sequence number be reused.
 * Every write is one `transactionSync`, so a message and the new head commit together.
 */
import type { Message } from "@roomcast/protocol";
import { migrate } from "./schema.js";

/** A message as stored: `data` is kept as its JSON text and never re-parsed on the way out. */
export interface StoredMessage {
  readonly seq: number;
  readonly id: string;
  readonly from: string;
  /** JSON text of the payload. */
  readonly data: string;
  readonly ts: number;
}

export interface AppendResult {
  readonly seq: number;
  readonly duplicate: boolean;
  /** The stored message, absent for a duplicate. */
  readonly message?: StoredMessage;
}

export interface Page {
  readonly messages: StoredMessage[];
  readonly hasMore: boolean;
}

type Row = { seq: number; client_id: string; sender: string; data: string; ts: number };
const toMessage = (r: Row): StoredMessage => ({ seq: r.seq, id: r.client_id, from: r.sender, data: r.data, ts: r.ts });

export class MessageLog {
  readonly #storage: DurableObjectStorage;
  readonly #sql: SqlStorage;
  #head = 0;
  #epoch = "";
  /** The oldest retained message's seq and ts, cached; undefined when the log is empty. */
  #oldest: { seq: number; ts: number } | undefined;

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
    this.#sql = storage.sql;
    migrate(storage);
    this.#load();
  }

  /** Sequence number of the newest message ever appended (0: none). */
  get head(): number {
    return this.#head;
  }

  /** Identifies this log; a client's position is only meaningful within one epoch. */
  get epoch(): string {
    return this.#epoch;
  }

  getMeta(key: string): string | undefined {
    const row = this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.#sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);
  }

  #load(): void {
    this.#storage.transactionSync(() => {
      let epoch = this.getMeta("epoch");
      if (!epoch) this.setMeta("epoch", (epoch = crypto.randomUUID()));
      this.#epoch = epoch;
      this.#head = Number(this.getMeta("head") ?? "0");
      this.#oldest = this.#sql.exec<{ seq: number; ts: number }>("SELECT seq, ts FROM messages ORDER BY seq LIMIT 1").toArray()[0];
    });
  }

  /** Sequence number of the oldest retained message; `head + 1` when none is retained. */
  get oldestSeq(): number {
    return this.#oldest?.seq ?? this.#head + 1;
  }

  /** Receive time of the oldest retained message, if any. */
  get oldestTs(): number | undefined {
    return this.#oldest?.ts;
  }

  /** How many messages are retained. */
  get size(): number {
    return this.#oldest ? this.#head - this.#oldest.seq + 1 : 0;
  }

  /**
   * Appends a message unless `(sender, clientId)` is already stored, in which case
   * the original sequence number is returned and nothing is written.
   */
  append(sender: string, clientId: string, data: string, ts: number): AppendResult {
    return this.#storage.transactionSync(() => {
      const existing = this.#sql
        .exec<{ seq: number }>("SELECT seq FROM messages WHERE sender = ? AND client_id = ?", sender, clientId)
        .toArray()[0];
      if (existing) return { seq: existing.seq, duplicate: true };
      const seq = this.#head + 1;
      this.#sql.exec("INSERT INTO messages (seq, client_id, sender, data, ts) VALUES (?, ?, ?, ?, ?)", seq, clientId, sender, data, ts);
      this.setMeta("head", String(seq));
      this.#head = seq;
      this.#oldest ??= { seq, ts };
      return { seq, duplicate: false, message: { seq, id: clientId, from: sender, data, ts } };
    });
  }

  /**
   * Deletes messages with `seq <= upTo`, at most `batch` of them, and returns how
   * many went. Sequence numbers are never reused (`head` is kept in meta).
   */
  trim(upTo: number, batch: number): number {
    if (!this.#oldest || upTo < this.#oldest.seq) return 0;
    const bound = Math.min(upTo, this.#oldest.seq + batch - 1, this.#head);
    const before = this.oldestSeq;
    this.#storage.transactionSync(() => {
      this.#sql.exec("DELETE FROM messages WHERE seq <= ?", bound);
      this.#oldest = this.#sql.exec<{ seq: number; ts: number }>("SELECT seq, ts FROM messages ORDER BY seq LIMIT 1").toArray()[0];
    });
    // Sequence numbers are contiguous and trimming only ever removes the oldest.
    return this.oldestSeq - before;
  }

  /** The newest seq whose message is older than `ts` (0 when none is). */
  lastSeqBefore(ts: number): number {
    const row = this.#sql.exec<{ seq: number | null }>("SELECT max(seq) AS seq FROM messages WHERE ts < ?", ts).toArray()[0];
    return row?.seq ?? 0;
  }

  /** Messages with `seq > after`, oldest first, at most `limit`. */
  page(after: number, limit: number): Page {
    const rows = this.#sql
      .exec<Row>("SELECT seq, client_id, sender, data, ts FROM messages WHERE seq > ? ORDER BY seq LIMIT ?", after, limit + 1)
      .toArray();
    const hasMore = rows.length > limit;
    if (hasMore) rows.pop();
    return { messages: rows.map(toMessage), hasMore };
  }

  /** The newest `count` messages, oldest first. */
  recent(count: number): StoredMessage[] {
    if (count <= 0) return [];
    return this.#sql
      .exec<Row>("SELECT seq, client_id, sender, data, ts FROM messages ORDER BY seq DESC LIMIT ?", count)
      .toArray()
      .reverse()
      .map(toMessage);
  }
}

/** The wire form of a stored message, with `data` spliced in as raw JSON (serialised once). */
export function encodeMessage(m: StoredMessage): string {
  const head = { seq: m.seq, id: m.id, from: m.from, ts: m.ts } satisfies Omit<Message, "data">;
  return `${JSON.stringify(head).slice(0, -1)},"data":${m.data}}`;
}

/** A `message` frame for a stored message. */
export function messageFrame(m: StoredMessage): string {
  return `{"type":"message",${encodeMessage(m).slice(1)}`;
}
