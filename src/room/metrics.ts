/**
 * Room metrics (issue #13): counters counted where things happen, per room, in
 * memory; cumulative totals in the room's SQLite (`metrics`, one row); one Workers
 * Analytics Engine data point per room per flush; and the Prometheus text exporter.
 *
 * Cost: nothing while idle. Counting is a Map update. The first count after a
 * flush arms one timer (FLUSH_MS, 1 s); when it fires the deltas go out as one data
 * point and one row write. A room with no activity arms nothing, and a pending
 * timer only delays hibernation by at most FLUSH_MS after the last activity, so the
 * deltas are written before the room sleeps. The last connection leaving flushes at
 * once. Only an eviction without hibernation (a deploy, a crash) loses up to
 * FLUSH_MS of counts. A room that has stored nothing yet (schema.ts, lazy rooms)
 * keeps its totals in memory and writes no database for them; its data points are
 * still sent.
 *
 * Labels come from bounded sets only (error codes, frame types, close codes mapped
 * to the known ones or "other"), so a room has at most a few dozen series.
 */
import * as v from "valibot";
import { ERRORS } from "@roomcast/protocol";
import { describeError, log } from "../log.js";

export interface MetricSample {
  name: string;
  labels?: Record<string, string>;
  value: number;
}

export interface RoomMetrics {
  room: string;
  at: number;
  gauges: Record<string, number>;
  counters: MetricSample[];
}

/** How long counts wait in memory before one flush (data point + one row), at most. */
export const FLUSH_MS = 1_000;

/** Counter names (without the exporter's `roomcast_` prefix) and their help text. */
export const COUNTERS = {
  connections_opened_total: "WebSocket connections accepted by the room.",
  connections_by_protocol_total: 'Connections accepted, by the protocol version selected ("roomcast.v1", "roomcast.v2"): when v1 stays at 0, it is unused.',
  connections_closed_total: "Connections that ended, by WebSocket close code (the client's, or the one the room sent; other codes are \"other\").",
  connections_refused_total: "Upgrades the room refused, by error code (room_full, too_many_connections, kicked).",
  joins_total: "Presence joins announced (a user's first connection, after any grace).",
  leaves_total: "Presence leaves announced (a user's last connection gone, after any grace).",
  publishes_total: 'Publishes over WebSocket and HTTP, by outcome ("accepted", duplicates included, or the refusal\'s error code).',
  deliveries_total: "Stored messages delivered live (one per message per recipient; replays are counted apart).",
  bytes_out_total: "Characters (UTF-16 code units) of frames sent and counted by flow control (every frame but pongs and the join's welcome/presence_state).",
  frames_in_total: 'Client frames received, by type ("invalid" when undecodable, "too_large" when over the frame limit).',
  bytes_in_total: "Characters (text) or bytes (binary) of client frames received.",
  replays_started_total: "Replays started at a join (recent history or a resume).",
  replays_finished_total: "Replays that reached the head (the connection went live).",
  replayed_messages_total: "Messages sent by replays.",
  resumes_total: 'Resume requests at a join, by verdict ("recovered", "epoch_changed", "trimmed", "ahead").',
  slow_consumer_closes_total: "Connections closed with 4005 slow_consumer (flow control).",
  alarm_runs_total: 'Alarm runs ("all"), and per duty that did work ("grace", "token_expiry", "liveness", "retention").',
  alarm_errors_total: "Alarm runs that threw (the platform retries them).",
  wakes_total: "Room instances started (constructor runs: first use, wake from hibernation, after an eviction).",
  broadcasts_total: "Ephemeral broadcasts accepted and relayed.",
} as const;

export type CounterName = keyof typeof COUNTERS;

/** Gauge names and help text. Gauges are read when asked (metrics()) and at each flush. */
export const GAUGES = {
  connections: "Open connections (joining or live).",
  max_connections: "MAX_CONNECTIONS_PER_ROOM, the cap connections is measured against.",
  log_messages: "Messages retained in the log.",
  log_first_seq: "The oldest retained seq (head + 1 when empty).",
  log_head_seq: "The last seq handed out.",
  storage_bytes: "Size of the room's SQLite database in bytes (0 for a room that stored nothing).",
} as const;

/** Gauges that add up across rooms (service totals); the others only make sense per room. */
const SUMMABLE_GAUGES = new Set(["connections", "max_connections", "log_messages", "storage_bytes"]);

const KNOWN_CLOSE_CODES = new Set<number>([
  1000, 1001, 1005, 1006, 1011,
  ...Object.values(ERRORS).flatMap((e) => ("close" in e && typeof e.close === "number" ? [e.close] : [])),
]);

/** A close code as a bounded label value: a code the protocol knows, or "other". */
export function closeCodeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : "other";
}

/**
 * Analytics Engine layout: blob1 room, blob2 event ("flush" or "empty" when the
 * last connection left), blob3..5 breakdowns as "label:n;label:n"; index1 room;
 * doubles 1..20 are the deltas since the previous point (gauges: values at the flush).
 */
export const AE_DOUBLES: readonly { column: string; what: string; value: (d: Deltas, g: Record<string, number>) => number }[] = [
  { column: "double1", what: "connections_opened", value: (d) => d.sum("connections_opened_total") },
  { column: "double2", what: "connections_closed", value: (d) => d.sum("connections_closed_total") },
  { column: "double3", what: "connections_refused (all codes)", value: (d) => d.sum("connections_refused_total") },
  { column: "double4", what: "connections_refused room_full", value: (d) => d.get("connections_refused_total", { code: "room_full" }) },
  { column: "double5", what: "joins", value: (d) => d.sum("joins_total") },
  { column: "double6", what: "leaves", value: (d) => d.sum("leaves_total") },
  { column: "double7", what: "publishes accepted", value: (d) => d.get("publishes_total", { outcome: "accepted" }) },
  { column: "double8", what: "publishes refused (all codes)", value: (d) => d.sum("publishes_total") - d.get("publishes_total", { outcome: "accepted" }) },
  { column: "double9", what: "publishes refused rate_limited", value: (d) => d.get("publishes_total", { outcome: "rate_limited" }) },
  { column: "double10", what: "deliveries", value: (d) => d.sum("deliveries_total") },
  { column: "double11", what: "bytes_in", value: (d) => d.sum("bytes_in_total") },
  { column: "double12", what: "bytes_out", value: (d) => d.sum("bytes_out_total") },
  { column: "double13", what: "frames_in (all types)", value: (d) => d.sum("frames_in_total") },
  { column: "double14", what: "replayed_messages", value: (d) => d.sum("replayed_messages_total") },
  { column: "double15", what: "resumes recovered", value: (d) => d.get("resumes_total", { verdict: "recovered" }) },
  { column: "double16", what: "resumes failed (epoch_changed + trimmed + ahead)", value: (d) => d.sum("resumes_total") - d.get("resumes_total", { verdict: "recovered" }) },
  { column: "double17", what: "slow_consumer_closes", value: (d) => d.sum("slow_consumer_closes_total") },
  { column: "double18", what: "alarm_errors", value: (d) => d.sum("alarm_errors_total") },
  { column: "double19", what: "gauge connections at the flush", value: (_d, g) => g.connections ?? 0 },
  { column: "double20", what: "gauge storage_bytes at the flush", value: (_d, g) => g.storage_bytes ?? 0 },
];

/** Series keys: the name, then the labels sorted by key, as JSON. */
function keyOf(name: string, labels?: Record<string, string>): string {
  if (!labels) return name;
  const entries = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? `${name}\u0000${JSON.stringify(entries)}` : name;
}

function parseKey(key: string): MetricSample {
  const at = key.indexOf("\u0000");
  if (at < 0) return { name: key, value: 0 };
  return { name: key.slice(0, at), labels: Object.fromEntries(JSON.parse(key.slice(at + 1)) as [string, string][]), value: 0 };
}

/** A set of series and their values. */
export class Deltas {
  readonly map = new Map<string, number>();
  add(key: string, by: number): void {
    this.map.set(key, (this.map.get(key) ?? 0) + by);
  }
  get(name: string, labels?: Record<string, string>): number {
    return this.map.get(keyOf(name, labels)) ?? 0;
  }
  /** Every series of a counter, whatever its labels. */
  sum(name: string): number {
    let total = 0;
    for (const [key, value] of this.map) if (key === name || key.startsWith(`${name}\u0000`)) total += value;
    return total;
  }
  /** "label:n;label:n" of a counter's single label, largest first (for AE blobs). */
  breakdown(name: string, label: string): string {
    const parts: [string, number][] = [];
    for (const [key, value] of this.map) {
      if (!key.startsWith(`${name}\u0000`) || value === 0) continue;
      const l = parseKey(key).labels?.[label];
      if (l !== undefined) parts.push([l, value]);
    }
    return parts.sort((a, b) => b[1] - a[1]).map(([l, n]) => `${l}:${n}`).join(";");
  }
  get size(): number {
    return this.map.size;
  }
}

/** The stored row: [key, value] pairs. Validated on read; a row that fails is ignored (and logged), never fatal. */
const StoredTotals = v.array(v.tuple([v.pipe(v.string(), v.maxLength(512)), v.pipe(v.number(), v.finite(), v.minValue(0))]));

export interface MeterDeps {
  readonly storage: DurableObjectStorage;
  /** Whether the room has a schema (message-log.ts `stored`): totals are written only then. */
  stored(): boolean;
  room(): string | undefined;
  gauges(): Record<string, number>;
  dataset?: AnalyticsEngineDataset | undefined;
  flushMs?: number;
}

export class RoomMeter {
  readonly #deps: MeterDeps;
  readonly #flushMs: number;
  /** Totals read from SQLite (once, lazily), plus what has been written since. */
  #saved = new Deltas();
  #loaded = false;
  /** Counts not yet written to SQLite. */
  #unsaved = new Deltas();
  /** Counts not yet sent to Analytics Engine. */
  #unreported = new Deltas();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(deps: MeterDeps) {
    this.#deps = deps;
    this.#flushMs = deps.flushMs ?? FLUSH_MS;
  }

  /**
   * Counts `by` on a series. `arm: false` counts without arming the flush timer (a
   * wake alone must not keep the room awake); the count goes out with the next flush.
   */
  inc(name: CounterName, labels?: Record<string, string>, by = 1, arm = true): void {
    if (by <= 0 || !Number.isFinite(by)) return;
    const key = keyOf(name, labels);
    this.#unsaved.add(key, by);
    this.#unreported.add(key, by);
    if (arm) this.#timer ??= setTimeout(() => this.flush("flush"), this.#flushMs);
  }

  /** Whether counts wait for a flush (tests). */
  get pending(): boolean {
    return this.#unreported.size > 0 || this.#unsaved.size > 0;
  }

  /** Writes what is pending: one AE data point, and (stored rooms) one row. Never throws. */
  flush(event: "flush" | "empty" = "flush"): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      if (this.#unreported.size > 0) {
        const deltas = this.#unreported;
        this.#unreported = new Deltas();
        this.#report(deltas, event);
      }
      if (this.#unsaved.size > 0 && this.#deps.stored()) {
        this.#load();
        for (const [key, value] of this.#unsaved.map) this.#saved.add(key, value);
        this.#unsaved = new Deltas();
        this.#deps.storage.sql.exec(
          "INSERT INTO metrics (id, totals, updated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET totals = excluded.totals, updated_at = excluded.updated_at",
          JSON.stringify([...this.#saved.map]),
          Date.now(),
        );
      }
    } catch (err) {
      log("error", "room.metrics_flush", { room: this.#deps.room(), error: describeError(err) });
    }
  }

  /** The room's cumulative counters and current gauges (the `metrics()` RPC). */
  snapshot(now = Date.now()): RoomMetrics {
    if (this.#deps.stored()) this.#load();
    const all = new Deltas();
    for (const d of [this.#saved, this.#unsaved]) for (const [key, value] of d.map) all.add(key, value);
    const counters = [...all.map].map(([key, value]) => ({ ...parseKey(key), value }));
    return { room: this.#deps.room() ?? "", at: now, gauges: this.#deps.gauges(), counters };
  }

  #load(): void {
    if (this.#loaded) return;
    this.#loaded = true;
    const row = this.#deps.storage.sql.exec<{ totals: string }>("SELECT totals FROM metrics WHERE id = 1").toArray()[0];
    if (!row) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(row.totals);
    } catch {
      parsed = undefined;
    }
    const result = v.safeParse(StoredTotals, parsed);
    if (!result.success) {
      log("warn", "room.metrics_unreadable", { room: this.#deps.room() });
      return;
    }
    for (const [key, value] of result.output) this.#saved.add(key, value);
  }

  #report(d: Deltas, event: string): void {
    const dataset = this.#deps.dataset;
    if (!dataset) return;
    const room = this.#deps.room() ?? "";
    const gauges = this.#deps.gauges();
    dataset.writeDataPoint({
      indexes: [room.slice(0, 96)], // AE index: at most 96 bytes; room names are shorter
      blobs: [room, event, d.breakdown("publishes_total", "outcome"), d.breakdown("connections_closed_total", "code"), d.breakdown("resumes_total", "verdict")],
      doubles: AE_DOUBLES.map((c) => c.value(d, gauges)),
    });
  }
}

// ---- Prometheus text format 0.0.4 ---------------------------------------------

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}
function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function series(name: string, labels: [string, string][], value: number): string {
  const text = labels.filter(([k]) => LABEL.test(k) && k !== "__name__").map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
  const num = Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN";
  return text ? `${name}{${text}} ${num}` : `${name} ${num}`;
}

export interface PrometheusOptions {
  /** Per-room series (`room="…"`); false emits only the gauges' service totals (large fleets). Default true. */
  perRoom?: boolean;
}

/**
 * Prometheus text (format 0.0.4) for the given rooms: per counter and gauge, one
 * series per room labelled `room="…"` (unless `perRoom: false`). Gauges that add up
 * (connections, log messages, storage) also get a service total without the `room`
 * label; counters do not (a sum over the rooms listed now is not monotonic: aggregate
 * with `sum(rate(…))`).
 * Counters and gauges not in COUNTERS/GAUGES are exported too (help: "").
 */
export function prometheusText(rooms: readonly RoomMetrics[], options: PrometheusOptions = {}): string {
  const perRoom = options.perRoom ?? true;
  const out: string[] = [];
  const counterFamilies = new Map<string, { room: string; labels: [string, string][]; value: number }[]>();
  for (const name of Object.keys(COUNTERS)) counterFamilies.set(name, []);
  for (const r of rooms) {
    for (const c of r.counters) {
      if (!NAME.test(c.name)) continue;
      const labels = Object.entries(c.labels ?? {}).filter(([k]) => k !== "room").sort(([a], [b]) => (a < b ? -1 : 1));
      let family = counterFamilies.get(c.name);
      if (!family) counterFamilies.set(c.name, (family = []));
      family.push({ room: r.room, labels, value: c.value });
    }
  }
  for (const [name, samples] of counterFamilies) {
    const full = `roomcast_${name}`;
    out.push(`# HELP ${full} ${escapeHelp((COUNTERS as Record<string, string>)[name] ?? "")}`, `# TYPE ${full} counter`);
    // Counters are per room only. A service total summed over the rooms listed now would go down
    // whenever a room empties and leaves the directory, which Prometheus reads as a counter reset
    // (rate() and increase() would count the whole total again): aggregate with
    // sum(rate(x[5m])), which takes each room's rate before summing.
    if (perRoom) for (const s of samples) out.push(series(full, [["room", s.room], ...s.labels], s.value));
  }
  const gaugeNames = new Set<string>(Object.keys(GAUGES));
  for (const r of rooms) for (const g of Object.keys(r.gauges)) if (NAME.test(g)) gaugeNames.add(g);
  for (const name of gaugeNames) {
    const full = `roomcast_${name}`;
    out.push(`# HELP ${full} ${escapeHelp((GAUGES as Record<string, string>)[name] ?? "")}`, `# TYPE ${full} gauge`);
    let total = 0;
    for (const r of rooms) {
      const value = r.gauges[name];
      if (value === undefined) continue;
      total += value;
      if (perRoom) out.push(series(full, [["room", r.room]], value));
    }
    if (SUMMABLE_GAUGES.has(name)) out.push(series(full, [], total));
  }
  out.push("# HELP roomcast_rooms Rooms that answered this scrape.", "# TYPE roomcast_rooms gauge", series("roomcast_rooms", [], rooms.length));
  return out.join("\n") + "\n";
}
