/**
 * Live fan-out with batching. Each WebSocket send has a fixed cost on workerd
 * (docs/benchmarks.md, "Where the time goes"), so under load the room packs the
 * messages that became ready close together into one `messages` frame per
 * recipient (Cloudflare's own advice for fan-out). A message that finds no window
 * open always goes out at once; only the messages behind it can wait.
 *
 * Adaptive (`adaptive: true`, feature flag `adaptive_batching`, on by default): the
 * window is sized from what the room's loop is doing. Every window's timer measures
 * how late the loop ran it (the fan-out's output pumps and whatever else queued):
 * that lag, averaged (EWMA), is how far behind the room is, and the window is
 * MAX_WAIT_MS less it (at least WINDOW_MS). A room that keeps up holds a burst (a
 * message within half the window of the previous one) for up to MAX_WAIT_MS, so at
 * 1,000 msg/s a recipient gets a frame every few milliseconds instead of one per
 * message; a room that is behind already batches by its own lag (what queued behind
 * a fan-out shares the next frame) and adds little on top. A room of BIG_ROOM
 * sockets or more opens a window after any message, of WINDOW_MS plus its lag (at
 * most the window). Queued arrivals: the platform may run a due timer before the
 * messages that queued behind the same work, so a late window can close empty just
 * before them. A message handed over within QUEUED_MS of a late window closing had
 * queued, and opens a window itself; and a late window that held nothing stays open
 * WINDOW_MS once more, but only while that has caught queued messages (the first
 * such grace that catches nothing turns it off, until a queued message shows up
 * again). A quiet small room sends at once and sets no timer. However late the
 * platform runs timers, a held message never waits more than the window plus
 * MAX_WAIT_MS while messages keep coming: each arrival checks the oldest held message
 * and sends the batch itself when it is overdue.
 *
 * Fixed rules (`adaptive: false`, or an explicit `maxDelayMs`): a window opens when
 * a message followed the previous one within BUSY_MS, or when the room has BIG_ROOM
 * sockets or more; messages arriving while its timer (WINDOW_MS) is pending wait
 * for it and go out together, and the window stays open while traffic keeps coming.
 * `maxDelayMs` (BROADCAST_MAX_DELAY_MS, default 0) trades latency for CPU: messages
 * up to that far apart count as a burst and the window stays open that long, so a
 * busy room sends at most one frame per recipient per `maxDelayMs` and no message
 * waits longer than that. Set, it overrides the adaptive window. A quiet room still
 * sends at once.
 *
 * Invariants the rest of the room relies on:
 * - total order: frames leave in append order, batched or not;
 * - an ack follows its message (`after` defers it behind pending messages);
 * - only `live` connections receive broadcasts (connections.ts); `flush()` runs
 *   before a connection goes live (the end of its replay), so a message it already
 *   got from the log is never sent to it again;
 * - an ephemeral `broadcast` (never stored) keeps its place behind the messages
 *   pending before it, goes to live connections but its sender's, and is volatile:
 *   a recipient past half its budget does not get it, and it never makes one slow;
 * - every frame sent is counted in the recipient's flow control; a recipient that
 *   is already past its budget when a frame is due gets no more and is handed to
 *   `slow` once the frame went to everyone else (one large frame alone never makes
 *   a reading client slow; not confirming what it was sent does).
 */
import type { StoredMessage } from "./message-log.js";
import type { Connection } from "./connections.js";
import { messageFrame, messagesFrame } from "./wire.js";
import { sendCounted, sendText } from "./send.js";
import { NO_TRACE, type Tracer } from "./trace.js";

/** Messages this close together (ms) mean the room is busy: start batching. */
const BUSY_MS = 2;
/** Fixed rules: how long a burst's window stays open after its first message went out. */
const WINDOW_MS = 1;
/** Fixed rules: rooms this big always open a window after a broadcast (one timer per message, against this many sends). */
const BIG_ROOM = 100;
/** Keep batch frames well under platform and client message limits (and see maxBatchChars). */
const MAX_BATCH_CHARS = 1 << 20;

/** Adaptive: the longest window (ms) a room that keeps up holds a burst for; the loop's lag comes off it. */
export const MAX_WAIT_MS = 5;
/** Adaptive: a message arriving this soon (ms) after a late window closed had queued behind the same work. */
const QUEUED_MS = 0.5;
/** Adaptive: weight of each new lag measurement in the running estimate. */
const EWMA = 0.25;
/** Adaptive: a lag longer than this (ms) is a stall, not the room's load; clipped. */
const MAX_SAMPLE_MS = 250;

/** Time and timers, injectable for tests. `now` may stand still inside synchronous code (as on Cloudflare). */
export interface BroadcastClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
}

const PLATFORM_CLOCK: BroadcastClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
};

export interface BroadcastTargets {
  /** The live connections (joining ones are caught up by their replay instead). */
  live(): readonly Connection[];
  /** Connections whose unconfirmed traffic passed the budget (flow.ts). */
  slow(conns: Connection[]): void;
  /** The room's debug-mode tracer: a fan-out is one trace event with its recipient count. */
  trace?: Tracer;
  /** Stored messages delivered live: messages in the frame times recipients (metrics: deliveries_total). */
  delivered?(count: number): void;
}

export interface BroadcastOptions {
  /** false: one frame per message per recipient, always (for comparisons). */
  batching: boolean;
  /**
   * Batch by the room's measured load (default true); false: the fixed rules (a gap
   * of at most 2 ms, rooms of 100+). Settable later as `broadcaster.adaptive`.
   */
  adaptive?: boolean;
  /** Longest a message may wait to share a frame in a busy room; over 0 it replaces the adaptive window with the fixed rules and this delay. */
  maxDelayMs?: number;
  /** Most unconfirmed characters a connection may have (flow.ts); Infinity: no limit. */
  budget?: number;
  /** Largest batch frame, in characters (at most 1 MiB; the room passes a quarter of the budget). */
  maxBatchChars?: number;
  /** Tests: a controllable clock and timer. */
  clock?: BroadcastClock;
}

export class Broadcaster {
  /** Batch by measured load (the default); false: the fixed rules. An explicit maxDelayMs wins over it. */
  adaptive: boolean;
  readonly #targets: BroadcastTargets;
  readonly #trace: Tracer;
  readonly #batching: boolean;
  readonly #maxDelayMs: number;
  readonly #busyMs: number;
  readonly #windowMs: number;
  readonly #clock: BroadcastClock;
  #pending: StoredMessage[] = [];
  #pendingBytes = 0;
  /** Frames held behind pending messages: an ack for one connection, or an ephemeral frame for all but its sender. */
  #deferred: [Connection, string, "ack" | "ephemeral"][] = [];
  readonly #budget: number;
  readonly #maxBatchChars: number;
  #window = false;
  #last = -Infinity;
  /** When the oldest held message arrived. */
  #heldSince = 0;
  /** Adaptive: how late (ms) the loop has been running window timers, a running average. */
  #lagMs = 0;
  /** Adaptive: when a window whose timer ran late last ended empty. */
  #lateCloseAt = -Infinity;
  /** Adaptive: whether keeping a late window open once more has caught queued messages (until it fails to). */
  #graceWorks = true;

  constructor(
    targets: BroadcastTargets,
    { batching, adaptive = true, maxDelayMs = 0, budget = Infinity, maxBatchChars = MAX_BATCH_CHARS, clock = PLATFORM_CLOCK }: BroadcastOptions,
  ) {
    this.#targets = targets;
    this.#trace = targets.trace ?? NO_TRACE;
    this.#budget = budget;
    this.#maxBatchChars = Math.min(maxBatchChars, MAX_BATCH_CHARS);
    this.#batching = batching;
    this.adaptive = adaptive;
    this.#maxDelayMs = maxDelayMs;
    this.#busyMs = Math.max(BUSY_MS, maxDelayMs);
    this.#windowMs = Math.max(WINDOW_MS, maxDelayMs);
    this.#clock = clock;
  }

  /** How long a window opened now stays open (ms): adaptive, MAX_WAIT_MS less the loop's measured lag; else the fixed window. */
  get windowMs(): number {
    if (!this.#adaptiveOn()) return this.#windowMs;
    return Math.min(MAX_WAIT_MS, Math.max(WINDOW_MS, MAX_WAIT_MS - this.#lagMs));
  }

  /** Adaptive: the measured lag of the room's loop (ms; for tests and diagnostics). */
  get lagMs(): number {
    return this.#lagMs;
  }

  /** A newly stored message for everyone. */
  message(m: StoredMessage): void {
    if (!this.#batching) return this.#sendAll(messageFrame(m), m.seq, 1);
    if (this.#window) {
      if (this.#pending.length === 0) this.#heldSince = this.#clock.now();
      this.#pending.push(m);
      this.#pendingBytes += m.data.length + m.id.length + m.from.length + 64;
      if (this.#pendingBytes >= this.#maxBatchChars) this.flush();
      else if (this.#adaptiveOn() && this.#clock.now() - this.#heldSince > this.windowMs + MAX_WAIT_MS) this.flush(); // timers running late
      return;
    }
    this.#sendAll(messageFrame(m), m.seq, 1);
    // A window opens when messages come close together, or when the room is big
    // enough that one broadcast takes longer than a window: the clock only moves
    // between events, so behind a slow broadcast the next message always looks
    // "late" and a gap rule alone would never batch the rooms that need it most.
    const now = this.#clock.now();
    const gap = now - this.#last;
    this.#last = now;
    if (!this.#adaptiveOn()) {
      if (gap <= this.#busyMs || this.#targets.live().length >= BIG_ROOM) this.#openWindow(this.#windowMs);
      return;
    }
    // A burst (another message expected within the window), or a message handed over the
    // moment a late window closed (it had queued behind the same work, and so may others:
    // the platform can run a due timer before queued arrivals): hold what follows for the
    // whole window. A big room otherwise: for what queues behind the fan-out, as long as the
    // loop has been running late (a room that keeps up adds no wait), at most the window.
    const windowMs = this.windowMs;
    const queued = now - this.#lateCloseAt <= QUEUED_MS;
    if (queued) this.#graceWorks = true;
    if (gap <= windowMs / 2 || queued) this.#openWindow(windowMs);
    else if (this.#targets.live().length >= BIG_ROOM) this.#openWindow(Math.min(windowMs, WINDOW_MS + this.#lagMs));
  }

  /** A frame for one socket that must not overtake the messages broadcast before it (an ack). */
  after(conn: Connection, text: string): void {
    if (this.#pending.length === 0) sendCounted(conn, text);
    else this.#deferred.push([conn, text, "ack"]);
  }

  /**
   * An ephemeral frame from `sender` for every other live connection. It never
   * overtakes a message the room stored before it (it waits behind a pending batch).
   */
  ephemeral(text: string, sender: Connection): void {
    if (this.#pending.length === 0) this.#sendEphemeral(text, sender);
    else this.#deferred.push([sender, text, "ephemeral"]);
  }

  /** Sends whatever is pending, now. */
  flush(): void {
    const pending = this.#pending;
    if (pending.length > 0) {
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#sendAll(pending.length === 1 ? messageFrame(pending[0]!) : messagesFrame(pending), pending[pending.length - 1]!.seq, pending.length);
    }
    const deferred = this.#deferred;
    if (deferred.length > 0) {
      this.#deferred = [];
      for (const [conn, text, kind] of deferred) {
        if (kind === "ephemeral") this.#sendEphemeral(text, conn);
        else if (conn.phase !== "gone") sendCounted(conn, text);
      }
    }
  }

  /**
   * Holds what arrives for `ms`, then sends it as one frame per recipient. `grace`: a
   * window that only follows a late one (which held nothing) for the arrivals that queued
   * behind the same work; it says nothing about the load.
   */
  #openWindow(ms: number, grace = false): void {
    this.#window = true;
    const setAt = this.#clock.now();
    this.#clock.setTimeout(() => {
      // How late the loop ran this timer: the fan-out's sends and whatever queued behind them.
      const lag = this.#clock.now() - setAt - ms;
      const held = this.#pending.length > 0;
      let late = false;
      if (this.#adaptiveOn()) {
        if (grace) {
          if (!held) this.#graceWorks = false; // nothing had queued: stop trying until something does
        } else {
          this.#lagMs += EWMA * (Math.min(Math.max(lag, 0), MAX_SAMPLE_MS) - this.#lagMs);
          if (lag > WINDOW_MS && !held) {
            this.#lateCloseAt = this.#clock.now();
            late = this.#graceWorks;
          }
        }
      }
      try {
        this.flush();
      } finally {
        // Traffic kept coming: keep batching for another window. Adaptive: a late window
        // that held nothing stays open the least time once more where that has caught
        // queued messages before (the platform may run a due timer before arrivals that
        // queued behind the same work). Otherwise close it. (Also after a failure, or the
        // window would stay open with no timer and hold everything.)
        if (held) this.#openWindow(this.windowMs);
        else if (late) this.#openWindow(WINDOW_MS, true);
        else this.#window = false;
      }
    }, ms);
  }

  #adaptiveOn(): boolean {
    return this.adaptive && this.#maxDelayMs === 0;
  }

  /**
   * Volatile: a connection with more than half its budget unconfirmed is skipped
   * (the frame is dropped for it, not queued), so cursor traffic alone never gets a
   * slow reader closed with 4005; counted like any other frame it does get.
   */
  #sendEphemeral(text: string, sender: Connection): void {
    const half = this.#budget / 2;
    const chars = text.length;
    let recipients = 0;
    for (const conn of this.#targets.live()) {
      if (conn === sender || conn.flow.unconfirmed > half) continue;
      if (sendText(conn.ws, text)) {
        conn.flow.other(chars);
        recipients++;
      }
    }
    if (this.#trace.on) this.#trace.fanout(text, recipients);
  }

  #sendAll(text: string, lastSeq: number, count: number): void {
    let slow: Connection[] | undefined;
    const chars = text.length;
    let recipients = 0;
    for (const conn of this.#targets.live()) {
      if (conn.flow.unconfirmed > this.#budget) {
        (slow ??= []).push(conn);
        continue;
      }
      if (sendText(conn.ws, text)) {
        conn.flow.messages(lastSeq, chars);
        recipients++;
      }
    }
    if (recipients > 0) this.#targets.delivered?.(recipients * count);
    if (this.#trace.on) this.#trace.fanout(text, recipients);
    // After the loop: closing a connection changes the list being iterated.
    if (slow) this.#targets.slow(slow);
  }
}
