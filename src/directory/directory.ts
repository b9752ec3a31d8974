/**
 * The rooms directory: the one place that knows which rooms exist right now (the
 * platform cannot list Durable Objects). Sharded by room name (shard.ts), each shard a
 * Durable Object with one SQLite table. Rooms report themselves (report.ts):
 *
 * - `joined-first`: the room's first connection was accepted → the row is created;
 * - `active`: at most once a minute while the room has connections and is awake anyway
 *   (a frame, an alarm run) → `lastActivityAt` and `connections` are refreshed;
 * - `empty`: the room's last connection is gone → the row is deleted at once. A room
 *   that fills again reports `joined-first` again.
 *
 * A room that never said `empty` (a crash between its last close and the report, a
 * failed report) stops reporting `active`, and is dropped when its row goes stale:
 * `staleAfterMs` (10 minutes, or three liveness timeouts if longer) after its last report, checked when a shard is listed (no alarm: the
 * directory, like an idle room, costs nothing between requests).
 *
 * Reports carry the room's clock (`at`); a report older than the row it would change is
 * ignored, so an `active` that overtakes an `empty` cannot resurrect a room.
 *
 * One more instance of this class, named FLAG_STORE_NAME (never a shard's name), holds the
 * feature-flag overrides: the `*FlagOverride*` methods delegate to src/flags/flag-store.ts,
 * whose table is created on the first call, so shards never have it. An instance of this
 * class rather than a class of its own, because a new class needs a wrangler.toml migration
 * and a release with a migration cannot be a gradual deployment (docs/architecture.md
 * "Feature flags").
 */
import { DurableObject } from "cloudflare:workers";
import * as v from "valibot";
import { isValidRoomName } from "@roomcast/protocol";
import type { Env } from "../env.js";
import { readLimits } from "../config.js";
import { FLAG_STORE_NAME, FlagOverrides, type OverrideList, type PutResult } from "../flags/flag-store.js";

/** A room that has not reported for this long is taken for gone (rooms with connections report about once a minute). */
export const STALE_MS = 10 * 60_000;

/**
 * How long this deployment waits before taking a silent room for gone: at least STALE_MS, and three
 * liveness timeouts, because a room whose clients only ping (answered by the runtime, no wake)
 * reports only when its liveness alarm runs, about once per LIVENESS_TIMEOUT_SECONDS.
 */
export function staleAfterMs(env: Env): number {
  return Math.max(STALE_MS, 3 * readLimits(env).LIVENESS_TIMEOUT_SECONDS * 1000);
}
/** Most rows one `list` call returns. */
export const MAX_LIST = 500;

export const DirectoryReport = v.object({
  kind: v.picklist(["joined-first", "active", "empty"]),
  room: v.pipe(v.string(), v.check(isValidRoomName, "invalid room name")),
  connections: v.pipe(v.number(), v.integer(), v.minValue(0)),
  at: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
export type DirectoryReport = v.InferOutput<typeof DirectoryReport>;

export interface DirectoryEntry {
  room: string;
  firstSeenAt: number;
  lastActivityAt: number;
  /** Connections when the room last reported. */
  connections: number;
}

export interface DirectoryPage {
  rooms: DirectoryEntry[];
  /** More rows follow the last one returned. */
  more: boolean;
}

type Row = { room: string; first_seen_at: number; last_activity_at: number; connections: number };

export class RoomsDirectory extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  #flagOverrides: FlagOverrides | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(
      `CREATE TABLE IF NOT EXISTS rooms (
         room TEXT PRIMARY KEY,
         first_seen_at INTEGER NOT NULL,
         last_activity_at INTEGER NOT NULL,
         connections INTEGER NOT NULL
       ) WITHOUT ROWID`,
    );
    this.#sql.exec("CREATE INDEX IF NOT EXISTS rooms_by_activity ON rooms (last_activity_at)");
  }

  /** A room reports itself. Invalid reports are refused (and never stored). */
  async report(input: DirectoryReport): Promise<{ ok: true } | { ok: false; message: string }> {
    const parsed = v.safeParse(DirectoryReport, input);
    if (!parsed.success) return { ok: false, message: parsed.issues[0].message };
    const r = parsed.output;
    if (r.kind === "empty" || r.connections === 0) {
      this.#sql.exec("DELETE FROM rooms WHERE room = ? AND last_activity_at <= ?", r.room, r.at);
      return { ok: true };
    }
    this.#sql.exec(
      `INSERT INTO rooms (room, first_seen_at, last_activity_at, connections) VALUES (?, ?, ?, ?)
       ON CONFLICT (room) DO UPDATE SET last_activity_at = excluded.last_activity_at, connections = excluded.connections
       WHERE excluded.last_activity_at >= rooms.last_activity_at`,
      r.room,
      r.at,
      r.at,
      r.connections,
    );
    return { ok: true };
  }

  /** Rooms after `after` (by name), at most `limit` (1…MAX_LIST); stale rows are dropped first. */
  async list(after: string | null, limit: number, now: number = Date.now()): Promise<DirectoryPage> {
    const n = Math.max(1, Math.min(MAX_LIST, Math.floor(limit)));
    this.#sql.exec("DELETE FROM rooms WHERE last_activity_at < ?", now - staleAfterMs(this.env));
    const rows = this.#sql
      .exec<Row>("SELECT room, first_seen_at, last_activity_at, connections FROM rooms WHERE room > ? ORDER BY room LIMIT ?", after ?? "", n + 1)
      .toArray();
    const more = rows.length > n;
    return {
      rooms: rows.slice(0, n).map((row) => ({ room: row.room, firstSeenAt: row.first_seen_at, lastActivityAt: row.last_activity_at, connections: row.connections })),
      more,
    };
  }

  /** The overrides table, only in the FLAG_STORE_NAME instance: a shard (or any other name) refuses. */
  #flags(): FlagOverrides {
    const name = this.ctx.id.name;
    // An instance without a name (made from an id, not getByName) is refused too: only the named one may create the table.
    if (name !== FLAG_STORE_NAME) throw new Error(`flag overrides live in the directory instance "${FLAG_STORE_NAME}", not ${name === undefined ? "an unnamed instance" : `"${name}"`}`);
    return (this.#flagOverrides ??= new FlagOverrides(this.#sql));
  }

  /** Feature-flag overrides (src/flags/flag-store.ts). */
  async listFlagOverrides(): Promise<OverrideList> {
    return this.#flags().list();
  }

  /** Sets (or replaces) a flag override; refused unless it is a valid definition for that name. */
  async putFlagOverride(name: string, input: unknown, now: number = Date.now()): Promise<PutResult> {
    return this.#flags().put(name, input, now);
  }

  /** Removes a flag override; whether there was one. */
  async deleteFlagOverride(name: string): Promise<boolean> {
    return this.#flags().delete(name);
  }
}
