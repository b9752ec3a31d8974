/**
 * Flag overrides, set by the admin API without a deploy (src/http/admin-flags.ts): one
 * Durable Object instance (`FLAG_STORE_NAME`), one SQLite table. An override replaces a
 * flag's definition from FEATURE_FLAGS (or defines a flag the var does not have) until it
 * is deleted. Why a Durable Object and not KV: docs/architecture.md "Feature flags".
 *
 * Every definition is checked on the way in and again on the way out: a row written by a
 * build that accepted something this one does not is skipped (and reported), never applied.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { checkDefinition, type FlagDefinition } from "./definition.js";

export const FLAG_STORE_NAME = "flags";

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

type Row = { name: string; definition: string; updated_at: number };

export class FlagStore extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(
      `CREATE TABLE IF NOT EXISTS overrides (
         name TEXT PRIMARY KEY,
         definition TEXT NOT NULL,
         updated_at INTEGER NOT NULL
       ) WITHOUT ROWID`,
    );
  }

  async list(): Promise<OverrideList> {
    const overrides: StoredOverride[] = [];
    const invalid: { name: string; message: string }[] = [];
    for (const row of this.#sql.exec<Row>("SELECT name, definition, updated_at FROM overrides ORDER BY name").toArray()) {
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

  /** Sets (or replaces) an override; refused unless it is a valid definition for that name. */
  async put(name: string, input: unknown, now: number = Date.now()): Promise<{ ok: true; override: StoredOverride } | { ok: false; message: string }> {
    const checked = checkDefinition(name, input);
    if (!checked.ok) return checked;
    this.#sql.exec(
      "INSERT INTO overrides (name, definition, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
      name,
      JSON.stringify(checked.definition),
      now,
    );
    return { ok: true, override: { name, definition: checked.definition, updatedAt: now } };
  }

  /** Removes an override; whether there was one. */
  async delete(name: string): Promise<boolean> {
    return this.#sql.exec("DELETE FROM overrides WHERE name = ?", name).rowsWritten > 0;
  }
}
