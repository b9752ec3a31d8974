/**
 * The admin API, mounted at `/v1/admin` (docs/protocol.md §9.6). Every route needs the
 * `admin` permission for the room pattern `*` (a token whose `cap` grants `admin` to `*`),
 * checked by the same `authorize("admin")` as the per-room drain and kick routes, after
 * the same Origin check.
 *
 * - `GET /rooms?cursor=&limit=`: active rooms from the directory, each with its live summary;
 * - `GET /rooms/:room`: one room's summary with its connections and presence;
 * - `POST /drain`: drains every active room;
 * - `GET /metrics`: Prometheus text, from every active room.
 *
 * Rooms are asked at most ADMIN_CONCURRENCY at a time, each with a deadline, so one
 * stuck room cannot hold a listing; a room that fails is listed with an `error`.
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import * as v from "valibot";
import { isValidRoomName } from "@roomcast/protocol";
import type { AppEnv, Env } from "../env.js";
import { DIRECTORY_SHARDS, shardName } from "../directory/shard.js";
import { MAX_LIST, type DirectoryEntry } from "../directory/directory.js";
import type { RoomSummary } from "../room/summary.js";
import { prometheusText, type RoomMetrics } from "../room/metrics.js";
import { authorize, checkOrigin, roomParam } from "./middleware.js";
import { fail } from "./errors.js";
import { drainWindowMs } from "./routes.js";
import { describeError, log } from "../log.js";
import { adminTrace } from "./admin-trace.js";
import { adminFlags } from "./admin-flags.js";

/** Rooms asked at once by a listing, a drain or a metrics scrape. */
export const ADMIN_CONCURRENCY = 10;
/** How long one room may take to answer an admin call before it is listed as failed. */
export const ROOM_CALL_TIMEOUT_MS = 5_000;
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 100;
/** The most rooms one drain or scrape reaches (each room is a subrequest; see docs/operations.md). */
export const MAX_ROOMS_PER_CALL = 5_000;

/** A listed room: its live summary, or what the directory knows plus the error that kept the summary out. */
export type RoomListing =
  | (RoomSummary & { firstSeenAt: number })
  | { room: string; firstSeenAt: number; lastActivityAt: number; connections: number; error: string };

/** The admin scope: permissions are resolved for the pattern `*` (no room name can be `*`). */
const adminScope = createMiddleware<AppEnv>(async (c, next) => {
  c.set("room", "*");
  await next();
});

export const admin = new Hono<AppEnv>();

admin.use("*", checkOrigin, adminScope, authorize("admin"));

// ---- the directory, page by page -------------------------------------------------

/** Cursor: shard and the last room name returned from it (keyset paging: stable while rooms come and go). */
const Cursor = v.strictObject({
  s: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(DIRECTORY_SHARDS - 1)),
  a: v.nullable(v.pipe(v.string(), v.check(isValidRoomName))),
});
type Cursor = v.InferOutput<typeof Cursor>;

function encodeCursor(cursor: Cursor): string {
  return btoa(JSON.stringify(cursor)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(raw: string): Cursor {
  const bad = () => fail("invalid_request", "cursor must be a value returned by this endpoint");
  if (raw.length > 400 || !/^[A-Za-z0-9_-]+$/.test(raw)) bad();
  let json: unknown;
  try {
    json = JSON.parse(atob(raw.replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    bad();
  }
  const parsed = v.safeParse(Cursor, json);
  return parsed.success ? parsed.output : bad();
}

function directoryShard(env: Env, shard: number) {
  if (!env.DIRECTORY) fail("server_misconfigured", "the DIRECTORY Durable Object binding is missing (wrangler.toml)");
  return env.DIRECTORY.getByName(shardName(shard));
}

/** Up to `limit` directory entries from `cursor` on, and the cursor after them (none at the end). */
export async function directoryPage(env: Env, cursor: Cursor, limit: number): Promise<{ rooms: DirectoryEntry[]; next?: Cursor }> {
  const rooms: DirectoryEntry[] = [];
  let { s: shard, a: after } = cursor;
  while (shard < DIRECTORY_SHARDS) {
    const want = limit - rooms.length;
    const page = await directoryShard(env, shard).list(after, Math.min(want, MAX_LIST));
    rooms.push(...page.rooms);
    if (page.more) {
      if (rooms.length >= limit) return { rooms, next: { s: shard, a: page.rooms.at(-1)?.room ?? after } };
      after = page.rooms.at(-1)?.room ?? after;
      continue;
    }
    shard++;
    after = null;
    if (rooms.length >= limit) return shard < DIRECTORY_SHARDS ? { rooms, next: { s: shard, a: null } } : { rooms };
  }
  return { rooms };
}

/** Every active room, up to MAX_ROOMS_PER_CALL (and whether there were more). */
async function allRooms(env: Env): Promise<{ rooms: DirectoryEntry[]; truncated: boolean }> {
  const rooms: DirectoryEntry[] = [];
  let cursor: Cursor | undefined = { s: 0, a: null };
  while (cursor && rooms.length < MAX_ROOMS_PER_CALL) {
    const page = await directoryPage(env, cursor, Math.min(MAX_LIST, MAX_ROOMS_PER_CALL - rooms.length));
    rooms.push(...page.rooms);
    cursor = page.next;
  }
  return { rooms, truncated: cursor !== undefined };
}

// ---- bounded fan-out -------------------------------------------------------------

/** `fn` over `items`, at most `limit` at a time, results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A room's summary over RPC (its `presence` holds `unknown` states, which RPC's types cannot spell). */
function roomSummaryOf(env: Env, room: string, detail: boolean): Promise<RoomSummary> {
  return env.ROOMS.getByName(room).summary({ detail }) as Promise<unknown> as Promise<RoomSummary>;
}

// ---- routes ----------------------------------------------------------------------

admin.get("/rooms", async (c) => {
  const limitRaw = c.req.query("limit");
  let limit = DEFAULT_PAGE;
  if (limitRaw !== undefined) {
    if (!/^\d{1,4}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > MAX_PAGE) fail("invalid_request", `limit must be an integer from 1 to ${MAX_PAGE}`);
    limit = Number(limitRaw);
  }
  const cursorRaw = c.req.query("cursor");
  const cursor = cursorRaw === undefined || cursorRaw === "" ? { s: 0, a: null } : decodeCursor(cursorRaw);
  const page = await directoryPage(c.env, cursor, limit);
  const rooms = await mapLimit(page.rooms, ADMIN_CONCURRENCY, async (entry): Promise<RoomListing> => {
    try {
      const summary = await withDeadline(roomSummaryOf(c.env, entry.room, false), ROOM_CALL_TIMEOUT_MS);
      return { ...summary, room: entry.room, firstSeenAt: entry.firstSeenAt };
    } catch (err) {
      log("warn", "admin.summary_failed", { room: entry.room, error: describeError(err) });
      return { ...entry, error: "the room did not answer its summary (logged as admin.summary_failed)" };
    }
  });
  return c.json(page.next ? { rooms, cursor: encodeCursor(page.next) } : { rooms });
});

admin.get("/rooms/:room", roomParam, async (c) => {
  const room = c.get("room");
  const summary = await roomSummaryOf(c.env, room, true);
  return c.json({ ...summary, room });
});

// Strict, like the per-room drain: `{}` or `{"windowSeconds": N}`.
admin.post("/drain", async (c) => {
  const windowMs = await drainWindowMs(c);
  const { rooms, truncated } = await allRooms(c.env);
  let drained = 0;
  let failed = 0;
  let connections = 0;
  // Each room spreads its own reconnects over the window (a random delay per connection).
  await mapLimit(rooms, ADMIN_CONCURRENCY, async (entry) => {
    try {
      const result = await withDeadline(c.env.ROOMS.getByName(entry.room).drain(windowMs), ROOM_CALL_TIMEOUT_MS);
      drained++;
      connections += result.connections;
    } catch (err) {
      failed++;
      log("warn", "admin.drain_failed", { room: entry.room, error: describeError(err) });
    }
  });
  log("info", "admin.drained", { rooms: rooms.length, drained, failed, connections, windowMs, truncated });
  return c.json({ rooms: rooms.length, drained, failed, connections, windowMs, ...(truncated ? { truncated: true } : {}) });
});

/** `?perRoom=false` leaves out the per-room series (only service totals): for large fleets. */
const MetricsQuery = v.strictObject({ perRoom: v.optional(v.picklist(["true", "false"])) });

admin.get("/metrics", async (c) => {
  const query = v.safeParse(MetricsQuery, c.req.query());
  if (!query.success) fail("invalid_request", "the only query parameter is perRoom=true|false");
  const { rooms, truncated } = await allRooms(c.env);
  const results = await mapLimit(rooms, ADMIN_CONCURRENCY, async (entry): Promise<RoomMetrics | undefined> => {
    try {
      const metrics: RoomMetrics = await withDeadline(c.env.ROOMS.getByName(entry.room).metrics(), ROOM_CALL_TIMEOUT_MS);
      return metrics;
    } catch (err) {
      log("warn", "admin.metrics_failed", { room: entry.room, error: describeError(err) });
      return undefined;
    }
  });
  const answered = results.filter((m): m is RoomMetrics => m !== undefined);
  const scrape = [
    "# HELP roomcast_scrape_rooms Active rooms the directory listed for this scrape.",
    "# TYPE roomcast_scrape_rooms gauge",
    `roomcast_scrape_rooms ${rooms.length}`,
    "# HELP roomcast_scrape_failed_rooms Listed rooms that did not answer within the deadline (left out).",
    "# TYPE roomcast_scrape_failed_rooms gauge",
    `roomcast_scrape_failed_rooms ${rooms.length - answered.length}`,
    "# HELP roomcast_scrape_truncated 1 when more rooms were active than one scrape reaches (MAX_ROOMS_PER_CALL).",
    "# TYPE roomcast_scrape_truncated gauge",
    `roomcast_scrape_truncated ${truncated ? 1 : 0}`,
    "",
  ].join("\n");
  const body = prometheusText(answered, { perRoom: query.output.perRoom !== "false" });
  return c.body(`${body.endsWith("\n") || body === "" ? body : `${body}\n`}${scrape}`, 200, {
    "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    "Cache-Control": "no-store",
  });
});

// Debug mode for one room: /rooms/:room/trace (admin-trace.ts, O3), behind the same admin check.
admin.route("/", adminTrace);

// Feature-flag overrides: /flags and /flags/:name (admin-flags.ts), behind the same admin check.
admin.route("/", adminFlags);
