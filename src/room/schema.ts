/**
 * The room's SQLite schema, in one place. Migrations run in order inside one
 * transaction; `meta.schema_version` records the last one applied. Never edit an
 * applied migration: append a new one.
 */
const MIGRATIONS: readonly string[] = [
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
];

/**
 * Whether this room has a schema yet. A room is created lazily: until something
 * needs storing (a message, a grace period) nothing is written, so a room that was
 * only read, or only visited by subscribers who left, leaves no database behind.
 */
export function hasSchema(sql: SqlStorage): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").toArray().length > 0;
}

export function migrate(storage: DurableObjectStorage): void {
  const sql = storage.sql;
  storage.transactionSync(() => {
    sql.exec(MIGRATIONS[0]!); // idempotent, and creates `meta` itself
    const row = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").toArray()[0];
    const applied = Number(row?.value ?? "0");
    for (let i = applied + 1; i < MIGRATIONS.length; i++) sql.exec(MIGRATIONS[i]!);
    sql.exec(
      "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      String(MIGRATIONS.length - 1),
    );
  });
}
