/**
 * Room-scoped bans: a kick can keep a user out for a while (`?banSeconds=N`), so a
 * kicked user cannot come straight back with the same token. In SQLite, so a ban
 * outlives eviction; expired ones are deleted by the room's alarm.
 */
import type { LazyStorage } from "./message-log.js";

export class BanStore {
  readonly #sql: SqlStorage;
  readonly #log: LazyStorage;

  constructor(sql: SqlStorage, log: LazyStorage) {
    this.#sql = sql;
    this.#log = log;
  }

  /** Until when (ms since the epoch) the user is banned, if they are at `now`. */
  bannedUntil(userId: string, now: number): number | undefined {
    if (!this.#log.stored) return undefined;
    const row = this.#sql.exec<{ until: number }>("SELECT until FROM bans WHERE user_id = ? AND until > ?", userId, now).toArray()[0];
    return row?.until;
  }

  /** Bans the user until `until`, or longer if already banned longer; returns the ban's end. */
  put(userId: string, until: number): number {
    this.#log.ensureStored();
    return this.#sql
      .exec<{ until: number }>(
        "INSERT INTO bans (user_id, until) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET until = max(until, excluded.until) RETURNING until",
        userId,
        until,
      )
      .one().until;
  }

  /** Deletes the bans over by `now`; returns when the next one ends, if any. */
  expire(now: number): number | undefined {
    if (!this.#log.stored) return undefined;
    this.#sql.exec("DELETE FROM bans WHERE until <= ?", now);
    return this.#sql.exec<{ next: number | null }>("SELECT min(until) AS next FROM bans").toArray()[0]?.next ?? undefined;
  }
}
