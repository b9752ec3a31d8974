/**
 * Connections waiting out their presence grace period, in SQLite so that an
 * eviction in the middle of a grace period neither forgets the member nor
 * announces a join again when the user comes back.
 */
import type { PresenceConnection } from "./presence.js";
import type { LazyStorage } from "./message-log.js";

type Row = { connection_id: string; user_id: string; state: string; joined_at: number; grace_until: number };

export class GraceStore {
  readonly #sql: SqlStorage;
  readonly #log: LazyStorage;

  /** `log` says whether the room has a schema yet, and creates it before the first write. */
  constructor(sql: SqlStorage, log: LazyStorage) {
    this.#sql = sql;
    this.#log = log;
  }

  all(): (PresenceConnection & { graceUntil: number })[] {
    if (!this.#log.stored) return [];
    return this.#sql
      .exec<Row>("SELECT connection_id, user_id, state, joined_at, grace_until FROM presence_grace")
      .toArray()
      .map((r) => ({
        connectionId: r.connection_id,
        userId: r.user_id,
        state: parseStoredJson(r.state),
        joinedAt: r.joined_at,
        graceUntil: r.grace_until,
      }));
  }

  put(conn: PresenceConnection, graceUntil: number): void {
    this.#log.ensureStored();
    this.#sql.exec(
      `INSERT INTO presence_grace (connection_id, user_id, state, joined_at, grace_until) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (connection_id) DO UPDATE SET grace_until = excluded.grace_until`,
      conn.connectionId,
      conn.userId,
      JSON.stringify(conn.state ?? null),
      conn.joinedAt,
      graceUntil,
    );
  }

  delete(connectionIds: readonly string[]): void {
    if (!this.#log.stored) return;
    // One statement per id keeps us far from the 100-bound-parameter limit.
    for (const id of connectionIds) this.#sql.exec("DELETE FROM presence_grace WHERE connection_id = ?", id);
  }

  deleteUser(userId: string): void {
    if (!this.#log.stored) return;
    this.#sql.exec("DELETE FROM presence_grace WHERE user_id = ?", userId);
  }
}

/** State we stored ourselves as JSON text; a corrupt row degrades to null rather than failing the room. */
function parseStoredJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
