/**
 * Flag overrides, set by the admin API without a deploy (src/http/admin-flags.ts): one
 * SQLite table in one Durable Object instance, the instance of the rooms directory class
 * (RoomsDirectory, binding DIRECTORY) named `FLAG_STORE_NAME`, which is never a shard's
 * name. RoomsDirectory's three flag methods delegate to `FlagOverrides` here; the table is
 * created on the first such call, so the 16 shards never have it. An override replaces a
 * flag's definition from FEATURE_FLAGS (or defines a flag the var does not have) until it
 * is deleted. Why a Durable Object and not KV, and why an instance of an existing class and
 * not a class of its own (no migration): docs/architecture.md "Feature flags".
 *
 * Every definition is checked on the way in and again on the way out: a row written by a
 * build that accepted something this one does not is skipped (and reported), never applied.
 */
import type { Env } from "../env.js";
import { isShardName } from "../directory/shard.js";
import { MAX_OVERRIDES, checkDefinition, type FlagDefinition } from "./definition.js";

/** The directory instance that holds the overrides. Never of the form `shard-<n>` (checked below). */
export const FLAG_STORE_NAME = "flags";
if (isShardName(FLAG_STORE_NAME)) throw new Error(`FLAG_STORE_NAME ${FLAG_STORE_NAME} is a directory shard's name`);

export interface StoredOverride {
  readonly name: string;
  readonly definition: FlagDefinition;
  readonly updatedAt: number;
}

export interface OverrideList {
  readonly overrides: StoredOverride[];
  /** Rows this build cannot apply, with why (left out of `overrides`). */
  readonly invalid: { name: string; message: string }[];
}

export type PutResult = { ok: true; override: StoredOverride } | { ok: false; message: string };

type Row = { name: string; definition: string; updated_at: number };

/** The overrides table over one Durable Object's SQLite storage, created on first use. */
export class FlagOverrides {
  readonly #sql: SqlStorage;
  #ready = false;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  #table(): SqlStorage {
    if (!this.#ready) {
      this.#sql.exec(
        `CREATE TABLE IF NOT EXISTS overrides (
           name TEXT PRIMARY KEY,
           definition TEXT NOT NULL,
           updated_at INTEGER NOT NULL
         ) WITHOUT ROWID`,
      );
      this.#ready = true;
    }
    return this.#sql;
  }

  list(): OverrideList {
    const overrides: StoredOverride[] = [];
    const invalid: { name: string; message: string }[] = [];
    for (const row of this.#table().exec<Row>("SELECT name, definition, updated_at FROM overrides ORDER BY name").toArray()) {
      let json: unknown;
      try {
        json = JSON.parse(row.definition);
      } catch {
        invalid.push({ name: row.name, message: "stored definition is not JSON" });
        continue;
      }
      const checked = checkDefinition(row.name, json);
      if (checked.ok) overrides.push({ name: row.name, definition: checked.definition, updatedAt: row.updated_at });
      else invalid.push({ name: row.name, message: checked.message });
    }
    return { overrides, invalid };
  }

  /**
   * Sets (or replaces) an override; refused unless it is a valid definition for that name,
   * and, for a name without an override yet, unless fewer than MAX_OVERRIDES are stored
   * (every isolate loads them all). Replacing an existing one is always allowed.
   */
  put(name: string, input: unknown, now: number = Date.now()): PutResult {
    const checked = checkDefinition(name, input);
    if (!checked.ok) return checked;
    const sql = this.#table();
    const exists = sql.exec("SELECT 1 FROM overrides WHERE name = ?", name).toArray().length > 0;
    if (!exists) {
      const count = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM overrides").one().n;
      if (count >= MAX_OVERRIDES) {
        return { ok: false, message: `at most ${MAX_OVERRIDES} flag overrides can be stored and ${count} are: DELETE one (or move it into FEATURE_FLAGS) before adding ${name}` };
      }
    }
    sql.exec(
      "INSERT INTO overrides (name, definition, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
      name,
      JSON.stringify(checked.definition),
      now,
    );
    return { ok: true, override: { name, definition: checked.definition, updatedAt: now } };
  }

  /** Removes an override; whether there was one. */
  delete(name: string): boolean {
    return this.#table().exec("DELETE FROM overrides WHERE name = ?", name).rowsWritten > 0;
  }
}

/** The directory instance that holds the overrides (undefined without the DIRECTORY binding). */
export function flagStore(env: Env) {
  return env.DIRECTORY?.getByName(FLAG_STORE_NAME);
}
