/**
 * Client-side latency, measured where the client can see it (docs/client.md,
 * "Latency and stats"):
 *
 * - RTT: from writing the exact ping text to the socket to the `pong` that answers
 *   it (the server's runtime answers each exact ping, in order, without waking the
 *   room), never from any other frame;
 * - publish→ack: from writing a publish frame to the socket (the last time, if it
 *   was sent again) to its ack. Time queued offline, waiting for the rate budget or
 *   for a durable outbox to load is not in it: that is the app's queueing, not the
 *   network's or the server's.
 *
 * Each is kept as the last `WINDOW` samples in a fixed ring (bounded memory,
 * whatever the uptime); percentiles are computed on demand (`stats()` sorts at
 * most `WINDOW` numbers). hdr-histogram-js was measured and rejected: ≈ 60 KiB
 * gzipped (it embeds a base64 wasm build and pako), over three times this whole
 * client, and a histogram cannot forget old samples (a window needs a ring anyway).
 */
import type { ConnectionState } from "./connection.js";

/** How many recent samples each percentile is computed over. */
export const WINDOW = 256;

export interface LatencySummary {
  /** Nearest-rank percentiles over the last `samples` samples, in ms; null with no sample yet. */
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  /** Samples measured since `since` (all of them, not only the window's). */
  readonly count: number;
  /** Samples the percentiles are over: min(count, 256). */
  readonly samples: number;
}

export interface RttSummary extends LatencySummary {
  /** The most recent RTT, ms; null before the first pong. */
  readonly last: number | null;
}

export interface RoomStats {
  /** ping → pong round trips on this room's socket(s). */
  readonly rtt: RttSummary;
  /** publish on the wire → ack. */
  readonly publishAck: LatencySummary;
  /** Times the room was welcomed again after its first welcome. */
  readonly reconnects: number;
  readonly state: ConnectionState;
  /** When counting started (the room's creation), ms since the epoch. */
  readonly since: number;
}

/** A monotonic clock in ms (sub-millisecond where the platform has `performance`). */
export function now(): number {
  return typeof performance !== "undefined" && typeof performance.now === "function" ? performance.now() : Date.now();
}

/** The last `capacity` samples, in a fixed ring. */
export class SampleWindow {
  readonly #ring: Float64Array;
  #next = 0;
  #count = 0;
  #last: number | null = null;

  constructor(capacity = WINDOW) {
    this.#ring = new Float64Array(capacity);
  }

  add(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return; // a clock that went backwards
    this.#ring[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#ring.length;
    this.#count++;
    this.#last = ms;
  }

  get last(): number | null {
    return this.#last;
  }

  summary(): LatencySummary {
    const samples = Math.min(this.#count, this.#ring.length);
    const sorted = this.#ring.slice(0, samples).sort();
    return { p50: rank(sorted, 50), p90: rank(sorted, 90), p99: rank(sorted, 99), count: this.#count, samples };
  }
}

/** Nearest rank: the smallest sample with at least p% of the samples at or below it. */
function rank(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  const value = sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return Math.round(value * 100) / 100;
}

/**
 * Pairs each pong with its ping. Pongs come back in the order of the pings (one
 * socket, answered by the runtime), so pong number n answers ping number n; send
 * times are kept for the last `MAX_PINGS` pings only.
 */
export class PingClock {
  static readonly MAX_PINGS = 16;
  readonly #sentAt = new Map<number, number>();
  #pings = 0;
  #pongs = 0;

  /** A ping went on the socket. */
  pinged(): void {
    this.#sentAt.set(this.#pings, now());
    this.#sentAt.delete(this.#pings - PingClock.MAX_PINGS);
    this.#pings++;
  }

  /** A pong arrived: its RTT in ms, or undefined if it answers no ping timed here. */
  ponged(): number | undefined {
    if (this.#pongs >= this.#pings) return undefined; // not ours (none outstanding)
    const n = this.#pongs++;
    const at = this.#sentAt.get(n);
    this.#sentAt.delete(n);
    return at === undefined ? undefined : now() - at;
  }

  /** A new socket: nothing outstanding. */
  reset(): void {
    this.#sentAt.clear();
    this.#pings = 0;
    this.#pongs = 0;
  }
}

/** A room's counters: RTT and publish→ack windows, reconnects. */
export class Stats {
  readonly since = Date.now();
  readonly rtt = new SampleWindow();
  readonly publishAck = new SampleWindow();
  /** Publish id → when it last went on the current socket. */
  readonly #inFlight = new Map<string, number>();
  #welcomes = 0;

  welcomed(): void {
    this.#welcomes++;
  }

  /** A publish frame went on the socket (again: the newest send counts). */
  published(id: string): void {
    this.#inFlight.set(id, now());
  }

  /** Its ack arrived. */
  acked(id: string): void {
    const at = this.#inFlight.get(id);
    if (at === undefined) return;
    this.#inFlight.delete(id);
    this.publishAck.add(now() - at);
  }

  /** It ended without an ack, or will be sent again (then `published` starts it over). */
  forget(id: string): void {
    this.#inFlight.delete(id);
  }

  /** The socket is gone: nothing sent on it can be acked any more. */
  down(): void {
    this.#inFlight.clear();
  }

  /** @internal For tests: publishes being timed. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  snapshot(state: ConnectionState): RoomStats {
    return {
      rtt: { last: roundMs(this.rtt.last), ...this.rtt.summary() },
      publishAck: this.publishAck.summary(),
      reconnects: Math.max(0, this.#welcomes - 1),
      state,
      since: this.since,
    };
  }
}

function roundMs(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 100) / 100;
}
