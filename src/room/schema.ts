/**
 * The room's SQLite schema, in one place. Migrations run in order inside one
 * transaction; `meta.schema_version` records the last one applied. Never edit an
 * applied migration: append a new one (docs/operations.md "State migration").
 *
 * Where they run: an existing room is migrated once per start, by migrate-room.ts
 * inside `blockConcurrencyWhile` before anything reads the log; a room that has no
 * schema yet gets one at its first write (message-log.ts `ensureStored`), which runs
 * every migration from 0 on the empty database.
 */
/** SQL, or a function for a step that must look before it changes anything. */
type Migration = string | ((sql: SqlStorage) => void);

const MIGRATIONS: readonly Migration[] = [
  // 0: meta, the message log and its per-user dedupe index.
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE IF NOT EXISTS messages (
     seq INTEGER PRIMARY KEY,
     client_id TEXT NOT NULL,
     sender TEXT NOT NULL,
     data TEXT NOT NULL,
     ts INTEGER NOT NULL
   );
   CREATE UNIQUE INDEX IF NOT EXISTS messages_dedupe ON messages (sender, client_id);`,
  // 1: age-based retention looks messages up by time; presence grace periods survive eviction.
  `CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
   CREATE TABLE IF NOT EXISTS presence_grace (
     connection_id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL,
     state TEXT NOT NULL,
     joined_at INTEGER NOT NULL,
     grace_until INTEGER NOT NULL
   );`,
  // 2: room-scoped bans from a kick with banSeconds.
  `CREATE TABLE IF NOT EXISTS bans (user_id TEXT PRIMARY KEY, until INTEGER NOT NULL);`,
  // 3: cumulative metric totals (metrics.ts), one row: JSON [series key, value] pairs.
  `CREATE TABLE IF NOT EXISTS metrics (id INTEGER PRIMARY KEY CHECK (id = 1), totals TEXT NOT NULL, updated_at INTEGER NOT NULL);`,
  // 4: each message's UTF-8 size (RETENTION_MAX_BYTES), backfilled, and the log's running
  // total: `log_bytes` is the sum over the messages with seq <= `log_bytes_seq` (message-log.ts
  // keeps it exact in memory and writes it back every few hundred appends and at every trim).
  // Safe to run again (see `migrate`): the column is added only if missing, and the sizes and the
  // total are recomputed, which also counts rows an older release inserted with bytes = 0.
  // CAST AS BLOB gives a TEXT value's bytes in the database encoding, UTF-8 here. (`WHERE true`:
  // SQLite's parser needs it between INSERT … SELECT and ON CONFLICT.)
  // Cost: one pass over every row inside blockConcurrencyWhile (30 s limit); measured 3.2 s for
  // 1,000,000 rows of 200 B. Not batched: rooms above about 1M rows must be trimmed before the
  // deploy (docs/operations.md "State migration", "Cost, and the row bound").
  (sql) => {
    const columns = sql.exec<{ name: string }>("PRAGMA table_info(messages)").toArray();
    if (!columns.some((c) => c.name === "bytes")) sql.exec("ALTER TABLE messages ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0");
    sql.exec(
      `UPDATE messages SET bytes = length(CAST(data AS BLOB));
       INSERT INTO meta (key, value) SELECT 'log_bytes', CAST(coalesce(sum(bytes), 0) AS TEXT) FROM messages WHERE true
         ON CONFLICT (key) DO UPDATE SET value = excluded.value;
       INSERT INTO meta (key, value) SELECT 'log_bytes_seq', CAST(coalesce(max(seq), 0) AS TEXT) FROM messages WHERE true
         ON CONFLICT (key) DO UPDATE SET value = excluded.value;`,
    );
  },
];

/** The schema version this code writes and reads: the last migration's index. */
export const SCHEMA_VERSION = MIGRATIONS.length - 1;

/**
 * Whether this room has a schema yet. A room is created lazily: until something
 * needs storing (a message, a grace period) nothing is written, so a room that was
 * only read, or only visited by subscribers who left, leaves no database behind.
 */
export function hasSchema(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").toArray().length > 0;
}

/** The version recorded in `meta`, or undefined for a room without a schema. */
export function schemaVersion(sql: SqlStorage): number | undefined {
  if (!hasSchema(sql)) return undefined;
  const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
  return Number(row?.value ?? "0");
}

/**
 * Applies the migrations after the recorded version, all in one transaction (a failure
 * leaves the room as it was), and returns the versions before (-1: no schema) and after.
 *
 * A database from newer code (a rollback) is used as it is and recorded as this code's
 * version, as every earlier release did: so the newer code, when it comes back, runs its
 * migrations again over what this code wrote in between. Hence the two rules for every
 * migration: additive (the previous release keeps working on the new schema) and safe to
 * run twice.
 */
export function migrate(storage: DurableObjectStorage): { from: number; to: number } {
  const sql = storage.sql;
  return storage.transactionSync(() => {
    sql.exec(MIGRATIONS[0] as string); // idempotent, and creates `meta` itself
    const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
    const applied = Number(row?.value ?? "0");
    for (let i = applied + 1; i < MIGRATIONS.length; i++) {
      const step = MIGRATIONS[i]!;
      if (typeof step === "string") sql.exec(step);
      else step(sql);
    }
    sql.exec(
      "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      String(SCHEMA_VERSION),
    );
    return { from: row ? applied : -1, to: SCHEMA_VERSION };
  });
}
