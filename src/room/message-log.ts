/**
 * The room's message log in the Durable Object's SQLite storage.
 *
 * `head` is the last sequence number handed out: `max(seq)`, or `meta.head` when
 * trimming removed the newest rows (trimming writes it first), so a sequence number
 * is never reused. `epoch` lives in `meta`.
 * Every write of several statements is one `transactionSync`; a publish is one INSERT,
 * atomic by itself, with no savepoint around it (`append`).
 */
import { utf8Length, type Message } from "@roomcast/protocol";
import { hasSchema, migrate, schemaVersion } from "./schema.js";

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

/** About 1 MiB: the largest history answer or replay page, in characters of encoded messages. */
export const MAX_PAGE_CHARS = 1 << 20;
/** A message's encoding beyond its data, id and sender (`{"seq":…,"id":"","from":"","ts":…,"data":}`). */
const MESSAGE_ENVELOPE_CHARS = 64;

type Row = { seq: number; client_id: string; sender: string; data: string; ts: number };
/** The running byte total (schema.ts migration 4) goes back to meta after this many appends: a wake sums at most these. */
const BYTES_CHECKPOINT_EVERY = 500;

const toMessage = (r: Row): StoredMessage => ({ seq: r.seq, id: r.client_id, from: r.sender, data: r.data, ts: r.ts });

/** What the stores beside the log need of it: whether the room has a schema yet, and to create it before a write. */
export interface LazyStorage {
  readonly stored: boolean;
  ensureStored(): void;
}

export class MessageLog implements LazyStorage {
  readonly #storage: DurableObjectStorage;
  readonly #sql: SqlStorage;
  #head = 0;
  #epoch = "";
  /** The oldest retained message's seq and ts, cached; undefined when the log is empty. */
  #oldest: { seq: number; ts: number } | undefined;
  /** False until the first write: a room that is only read stores nothing (schema.ts). */
  #stored: boolean;
  /** Meta values waiting for the first write (the room's name, remembered on a read path). */
  readonly #pendingMeta = new Map<string, string>();
  /** UTF-8 bytes of the retained messages' data (RETENTION_MAX_BYTES), exact; meta has it as of `#bytesSeq`. */
  #bytes = 0;
  #bytesSeq = 0;

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
    this.#sql = storage.sql;
    this.#stored = hasSchema(this.#sql);
    if (this.#stored) {
      // An existing room's schema was migrated at the start (migrate-room.ts, in blockConcurrencyWhile).
      this.#load();
    } else {
      // A room never written: its epoch lives in memory until something is stored. If
      // the instance goes before that, the next one draws another epoch, which is
      // lossless: a client holding this one gets `epoch_changed` for an empty log.
      this.#epoch = crypto.randomUUID();
    }
  }

  /**
   * A room that has stored nothing keeps its epoch in memory; after a wake with
   * clients still connected, the epoch they were told (from their attachments) is
   * taken back, so it does not change under them.
   */
  adoptEpoch(epoch: string): void {
    if (!this.#stored) this.#epoch = epoch;
  }

  /** Whether the room has stored anything yet. */
  get stored(): boolean {
    return this.#stored;
  }

  /** Creates the schema and writes what waited for it, before the room's first write. */
  ensureStored(): void {
    if (this.#stored) return;
    migrate(this.#storage); // one transaction of its own
    this.#storage.transactionSync(() => {
      this.#writeMeta("epoch", this.#epoch);
      for (const [key, value] of this.#pendingMeta) this.#writeMeta(key, value);
    });
    this.#pendingMeta.clear();
    this.#stored = true;
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
    if (!this.#stored) return this.#pendingMeta.get(key);
    const row = this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row?.value;
  }

  /** Sets a meta value; in a room that has stored nothing yet, it waits for the first write. */
  setMeta(key: string, value: string): void {
    if (!this.#stored) this.#pendingMeta.set(key, value);
    else this.#writeMeta(key, value);
  }

  #writeMeta(key: string, value: string): void {
    this.#sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);
  }

  #load(): void {
    this.#storage.transactionSync(() => {
      let epoch = this.getMeta("epoch");
      if (!epoch) this.#writeMeta("epoch", (epoch = crypto.randomUUID()));
      this.#epoch = epoch;
      // `head` is written to meta only when trimming could empty the log; otherwise it
      // is the newest stored seq (one write fewer per publish).
      const newest = this.#sql.exec<{ seq: number | null }>("SELECT max(seq) AS seq FROM messages").toArray()[0]?.seq ?? 0;
      this.#head = Math.max(Number(this.getMeta("head") ?? "0"), newest);
      this.#oldest = this.#sql.exec<{ seq: number; ts: number }>("SELECT seq, ts FROM messages ORDER BY seq LIMIT 1").toArray()[0];
      // The checkpointed total plus the appends since (at most BYTES_CHECKPOINT_EVERY rows, by the primary key).
      this.#bytesSeq = Number(this.getMeta("log_bytes_seq") ?? "0");
      const tail = this.#sql.exec<{ n: number | null }>("SELECT sum(bytes) AS n FROM messages WHERE seq > ?", this.#bytesSeq).toArray()[0]?.n ?? 0;
      this.#bytes = Number(this.getMeta("log_bytes") ?? "0") + tail;
    });
  }

  /** The schema version of this room's database; undefined while it has none (a lazy room). */
  get schemaVersion(): number | undefined {
    return this.#stored ? schemaVersion(this.#sql) : undefined;
  }

  /** UTF-8 bytes of the retained messages' data (what RETENTION_MAX_BYTES bounds). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The smallest seq such that deleting every message up to it frees at least `excess`
   * bytes, looking at the oldest `within` messages only (retention deletes no more per
   * run): the last of those when they are not enough. 0 when nothing needs freeing.
   */
  seqFreeing(excess: number, within: number): number {
    if (!this.#stored || excess <= 0 || !this.#oldest) return 0;
    const row = this.#sql
      .exec<{ seq: number }>(
        `SELECT seq FROM (
           SELECT seq, sum(bytes) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS upto FROM messages ORDER BY seq LIMIT ?
         ) WHERE upto >= ? ORDER BY seq LIMIT 1`,
        within,
        excess,
      )
      .toArray()[0];
    // Sequence numbers are contiguous: the oldest `within` end at oldest + within - 1.
    return row?.seq ?? Math.min(this.#oldest.seq + within - 1, this.#head);
  }

  /**
   * Writes a byte total, exact as of `seq`, to meta (inside the caller's transaction). It
   * changes no field: the caller assigns `#bytes` and `#bytesSeq` once the transaction has
   * committed, so a write that throws leaves memory as it was with the rows.
   */
  #writeBytesCheckpoint(bytes: number, seq: number): void {
    this.#writeMeta("log_bytes", String(bytes));
    this.#writeMeta("log_bytes_seq", String(seq));
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
    this.ensureStored();
    // No transaction of its own unless the bytes checkpoint is due (one append in
    // BYTES_CHECKPOINT_EVERY): otherwise the only write is one INSERT, atomic by itself
    // (it throws before anything changes here), and the Durable Object commits an event's
    // writes together anyway. transactionSync's savepoint cost two statements more per
    // publish (docs/benchmarks.md, "The small-room path").
    // Memory (head, oldest, bytes) changes only after every write of the append has
    // succeeded: a throw anywhere (the INSERT, the checkpoint's meta writes, the commit)
    // rolls the rows back and leaves the fields as they were, so the seq is not skipped.
    const checkpointDue = this.#head + 1 - this.#bytesSeq >= BYTES_CHECKPOINT_EVERY;
    const written = checkpointDue ? this.#storage.transactionSync(() => this.#append(sender, clientId, data, ts, true)) : this.#append(sender, clientId, data, ts, false);
    if (!written.duplicate) {
      const { seq } = written;
      this.#head = seq;
      this.#oldest ??= { seq, ts };
      this.#bytes += written.bytes; // memory only; meta every BYTES_CHECKPOINT_EVERY appends
      if (checkpointDue) this.#bytesSeq = seq;
    }
    return written.result;
  }

  /** The writes of an append; changes no field (see `append`). */
  #append(sender: string, clientId: string, data: string, ts: number, checkpoint: boolean): { result: AppendResult; duplicate: boolean; seq: number; bytes: number } {
    // One statement in the common case: the unique (sender, client_id) index turns a
    // repeat into a no-op, and only then is the original seq looked up.
    const seq = this.#head + 1;
    const bytes = utf8Length(data);
    const written = this.#sql.exec(
      "INSERT INTO messages (seq, client_id, sender, data, ts, bytes) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sender, client_id) DO NOTHING",
      seq,
      clientId,
      sender,
      data,
      ts,
      bytes,
    ).rowsWritten;
    if (written === 0) {
      const existing = this.#sql
        .exec<{ seq: number }>("SELECT seq FROM messages WHERE sender = ? AND client_id = ?", sender, clientId)
        .one();
      return { result: { seq: existing.seq, duplicate: true }, duplicate: true, seq: existing.seq, bytes: 0 };
    }
    if (checkpoint) this.#writeBytesCheckpoint(this.#bytes + bytes, seq);
    return { result: { seq, duplicate: false, message: { seq, id: clientId, from: sender, data, ts } }, duplicate: false, seq, bytes };
  }

  /**
   * Deletes messages with `seq <= upTo`, at most `batch` of them, and returns how
   * many went. Sequence numbers are never reused (`head` is kept in meta).
   */
  trim(upTo: number, batch: number): number {
    if (!this.#stored || !this.#oldest || upTo < this.#oldest.seq) return 0;
    const bound = Math.min(upTo, this.#oldest.seq + batch - 1, this.#head);
    const before = this.oldestSeq;
    // As in `append`, memory follows only once the transaction has committed.
    const after = this.#storage.transactionSync(() => {
      // Once rows are gone, max(seq) may no longer tell the head: keep it in meta.
      this.setMeta("head", String(this.#head));
      const freed = this.#sql.exec<{ n: number | null }>("SELECT sum(bytes) AS n FROM messages WHERE seq <= ?", bound).toArray()[0]?.n ?? 0;
      this.#sql.exec("DELETE FROM messages WHERE seq <= ?", bound);
      const bytes = this.#bytes - freed;
      this.#writeBytesCheckpoint(bytes, this.#head);
      const oldest = this.#sql.exec<{ seq: number; ts: number }>("SELECT seq, ts FROM messages ORDER BY seq LIMIT 1").toArray()[0];
      return { bytes, oldest };
    });
    this.#bytes = after.bytes;
    this.#bytesSeq = this.#head;
    this.#oldest = after.oldest;
    // Sequence numbers are contiguous and trimming only ever removes the oldest.
    return this.oldestSeq - before;
  }

  /** The newest seq whose message is older than `ts` (0 when none is). */
  lastSeqBefore(ts: number): number {
    if (!this.#stored) return 0;
    const row = this.#sql.exec<{ seq: number | null }>("SELECT max(seq) AS seq FROM messages WHERE ts < ?", ts).toArray()[0];
    return row?.seq ?? 0;
  }

  /**
   * Messages with `seq > after`, oldest first: at most `limit` of them, and no more
   * than fit in about `maxChars` once encoded (always at least one), so that no
   * history answer or replay page becomes a frame of tens of megabytes. The cut is
   * made by SQLite, so rows past it are never read into memory.
   */
  page(after: number, limit: number, maxChars: number = MAX_PAGE_CHARS): Page {
    if (!this.#stored) return { messages: [], hasMore: false };
    const rows = this.#sql
      .exec<Row>(
        `SELECT seq, client_id, sender, data, ts FROM (
           SELECT seq, client_id, sender, data, ts,
                  length(data) + length(client_id) + length(sender) + ${MESSAGE_ENVELOPE_CHARS} AS own,
                  sum(length(data) + length(client_id) + length(sender) + ${MESSAGE_ENVELOPE_CHARS}) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS upto
           FROM messages WHERE seq > ? ORDER BY seq LIMIT ?
         ) WHERE upto <= ? OR upto = own`,
        after,
        limit,
        maxChars,
      )
      .toArray();
    // Sequence numbers are contiguous and trimming only removes the oldest: anything
    // below the head after the last row returned is still there.
    const last = rows.at(-1)?.seq;
    return { messages: rows.map(toMessage), hasMore: last !== undefined && last < this.#head };
  }

  /** The newest `count` messages, oldest first. */
  recent(count: number): StoredMessage[] {
    if (count <= 0 || !this.#stored) return [];
    return this.#sql
      .exec<Row>("SELECT seq, client_id, sender, data, ts FROM messages ORDER BY seq DESC LIMIT ?", count)
      .toArray()
      .reverse()
      .map(toMessage);
  }
}
