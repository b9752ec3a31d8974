/**
 * The one place a room's stored state is brought up to this code's layouts, run by the
 * Room's constructor inside `blockConcurrencyWhile`, before the room reads anything: no
 * event, request or alarm reaches the object until it is done.
 *
 * 1. The SQLite schema (schema.ts), for a room that has one. A room that never stored
 *    anything keeps having none: it gets a schema at its first write (lazy rooms).
 * 2. The attachments of hibernated sockets (attachment.ts): an older layout is rewritten
 *    in the current one. Skipped when `meta.attachment_version` says a previous start
 *    of this layout already did it (sockets accepted since were written by current code);
 *    a room without a schema has no meta, so it looks every time (no write for it).
 *
 * One log line per run that changed something (`room.migrated`: schema from → to,
 * attachments rewritten, ms). A failure throws out of `blockConcurrencyWhile`: the
 * runtime resets the object, the schema transaction is rolled back, and the next request
 * tries again on a fresh instance rather than serving a half-migrated room.
 */
import { log } from "../log.js";
import { ATTACHMENT_VERSION, upgradeAttachment } from "./attachment.js";
import { hasSchema, migrate } from "./schema.js";

export interface MigrationReport {
  /** Schema version before (undefined: the room has no schema, nothing was run) and after. */
  schema?: { from: number; to: number };
  /** Hibernated sockets whose attachment was rewritten; -1 when the check was skipped. */
  attachmentsRewritten: number;
  ms: number;
}

export function migrateRoom(ctx: DurableObjectState): MigrationReport {
  const t0 = performance.now();
  const { storage } = ctx;
  const stored = hasSchema(storage.sql);
  const schema = stored ? migrate(storage) : undefined;

  let attachmentsRewritten = -1;
  const recorded = stored ? Number(readMeta(storage.sql, "attachment_version") ?? "0") : 0;
  if (recorded !== ATTACHMENT_VERSION) {
    attachmentsRewritten = 0;
    for (const ws of ctx.getWebSockets()) if (upgradeAttachment(ws) === "rewritten") attachmentsRewritten++;
    if (stored) {
      storage.sql.exec(
        "INSERT INTO meta (key, value) VALUES ('attachment_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        String(ATTACHMENT_VERSION),
      );
    }
  }
  // performance.now() only advances with I/O in workerd; the figure is still what the run cost in wall time here.
  const ms = Math.round((performance.now() - t0) * 10) / 10;
  const report: MigrationReport = { ...(schema ? { schema } : {}), attachmentsRewritten, ms };
  if ((schema && schema.from !== schema.to) || attachmentsRewritten > 0) {
    log("info", "room.migrated", {
      room: stored ? readMeta(storage.sql, "room") : ctx.id.name,
      schemaFrom: schema?.from,
      schemaTo: schema?.to,
      attachmentsRewritten,
      attachmentVersion: ATTACHMENT_VERSION,
      ms,
    });
  }
  return report;
}

function readMeta(sql: SqlStorage, key: string): string | undefined {
  return sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
}
