/**
 * Live fan-out with batching. Each WebSocket send has a fixed cost on workerd
 * (docs/benchmarks.md, "Where the time goes"), so under load the room packs the
 * messages that became ready close together into one `messages` frame per
 * recipient (Cloudflare's own advice for fan-out). A message that finds no window
 * open always goes out at once; only the messages behind it can wait.
 *
 * Adaptive (the default, `adaptive: true`, feature flag `adaptive_batching`): the
 * room measures what a fan-out costs it. After a fan-out in a room that is not
 * quiet it sets a zero-delay timer; the timer can only run once the event loop is
 * free again (the sends' output pumps done), so the time from the fan-out's start
 * to the timer is the fan-out's real cost, measured between events (which works
 * where clocks stand still inside synchronous code, as on Cloudflare). The cost
 * per recipient is averaged (EWMA) and scaled by the room's size. Then:
 * - messages that arrive while that fan-out is still going out are held and leave
 *   as one frame as soon as it is done (they would have queued behind it anyway);
 * - if the room is offered more than it can send (the estimated cost is at least
 *   the gap since the previous fan-out, messages come within BUSY_MS, or a message
 *   is handed over the moment the loop was seen free: it had queued), the
 *   window stays open a little longer once the loop is free
 *   (a grace of GRACE_SHARE of the cost, 1 to MAX_WAIT_MS), so a backlog the
 *   platform hands over just after the timer still shares a frame; traffic that
 *   keeps coming keeps it open, one frame per recipient per fan-out;
 * - a quiet room (the previous fan-out longer ago than QUIET_MS and four estimated
 *   costs) sends at once and sets no timer at all.
 * A held message waits for the fan-out ahead of it to finish, plus at most the
 * grace; and however late the platform runs the timers, never longer than one
 * estimated fan-out plus MAX_WAIT_MS: each arrival checks the oldest held message
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

/** Adaptive: a message arriving this soon (ms) after the loop was seen free had queued behind the fan-out. */
const QUEUED_MS = 0.5;
/** Adaptive: in a busy room the window stays open this share of a fan-out's cost after the loop is free (at least WINDOW_MS)... */
const GRACE_SHARE = 0.25;
/** ...and never longer than this (ms): the most a message waits beyond the fan-out ahead of it. */
export const MAX_WAIT_MS = 4;
/** Adaptive: a room whose previous fan-out is longer ago than this (and than 4 estimated costs) is quiet: no timer. */
const QUIET_MS = 25;
/** Adaptive: the first estimate of one recipient's share of a fan-out (ms; workerd measured 28-53 µs), until measured. */
const PRIOR_MS_PER_RECIPIENT = 0.03;
/** Adaptive: weight of each new measurement in the running estimate. */
const EWMA = 0.25;
/** Adaptive: a measurement longer than this (ms, per fan-out) is a stall, not a cost; clipped. */
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
   * Batch by the room's measured load (default true); false: the fixed rules (gap
   * under 2 ms, rooms of 100+). Settable later as `broadcaster.adaptive`.
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
  /** Adaptive: when the fan-out the open window follows began, and to how many. */
  #fanoutAt = -Infinity;
  #fanoutTo = 0;
  /** Adaptive: when the loop was last seen free after a fan-out (its zero-delay timer ran). */
  #freeAt = -Infinity;
  /** Adaptive: when the oldest held message arrived. */
  #heldSince = 0;
  /** Adaptive: the estimated cost of a fan-out per recipient (ms), a running average of measurements. */
  #perRecipientMs = PRIOR_MS_PER_RECIPIENT;

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

  /** The current estimate of one fan-out to everyone live, in ms (adaptive; for tests and diagnostics). */
  get fanoutCostMs(): number {
    return this.#perRecipientMs * this.#targets.live().length;
  }

  /** A newly stored message for everyone. */
  message(m: StoredMessage): void {
    if (!this.#batching) return this.#sendAll(messageFrame(m), m.seq, 1);
    if (this.#window) {
      if (this.#pending.length === 0) this.#heldSince = this.#clock.now();
      this.#pending.push(m);
      this.#pendingBytes += m.data.length + m.id.length + m.from.length + 64;
      if (this.#pendingBytes >= this.#maxBatchChars) this.flush();
      else if (this.#adaptiveOn() && this.#clock.now() - this.#heldSince > this.#holdLimitMs()) this.#sendHeld();
      return;
    }
    if (this.#adaptiveOn()) return this.#adaptiveSend(m);
    this.#sendAll(messageFrame(m), m.seq, 1);
    // A window opens when messages come close together, or when the room is big
    // enough that one broadcast takes longer than a window: Date.now() only moves
    // between events, so behind a slow broadcast the next message always looks
    // "late" and a gap rule alone would never batch the rooms that need it most.
    const now = Date.now();
    if (now - this.#last <= this.#busyMs || this.#targets.live().length >= BIG_ROOM) this.#openWindow();
    this.#last = now;
    // So that switching to adaptive (the flag) starts from when the room last sent, not from long ago.
    this.#fanoutAt = this.#clock.now();
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

  #openWindow(): void {
    this.#window = true;
    setTimeout(() => {
      const busy = this.#pending.length > 0;
      try {
        this.flush();
      } finally {
        // Traffic kept coming: keep batching for another tick; otherwise close the window.
        // (Also after a failure, or the window would stay open with no timer and hold everything.)
        if (busy) this.#openWindow();
        else this.#window = false;
      }
    }, this.#windowMs);
  }

  /** Adaptive: send `m` at once; unless the room is quiet, open a window behind it. */
  #adaptiveSend(m: StoredMessage): void {
    const now = this.#clock.now();
    const gap = now - this.#fanoutAt;
    const recipients = this.#targets.live().length;
    const cost = this.#perRecipientMs * recipients;
    this.#sendAll(messageFrame(m), m.seq, 1);
    if (gap > QUIET_MS && gap > 4 * cost) {
      // Quiet: nothing to measure against, nothing to wait for.
      this.#fanoutAt = now;
      return;
    }
    // Busy: messages this close together, more offered than the room can send, or this
    // one handed over the moment the previous fan-out ended (it had queued behind it).
    this.#adaptiveWindow(now, recipients, gap <= BUSY_MS || cost >= gap || now - this.#freeAt <= QUEUED_MS);
  }

  /**
   * Adaptive: a fan-out to `recipients` began at `at`; hold what arrives until the
   * loop is free again (a zero-delay timer, which also measures the fan-out), and if
   * the room is `busy` a grace period longer (#graceMs, at most MAX_WAIT_MS).
   */
  #adaptiveWindow(at: number, recipients: number, busy: boolean): void {
    this.#window = true;
    this.#fanoutAt = at;
    this.#fanoutTo = recipients;
    this.#clock.setTimeout(() => this.#loopFree(busy), 0);
  }

  #loopFree(busy: boolean): void {
    const now = this.#clock.now();
    this.#freeAt = now;
    const took = Math.min(now - this.#fanoutAt, MAX_SAMPLE_MS);
    if (this.#fanoutTo > 0 && took >= 0) {
      this.#perRecipientMs += EWMA * (took / this.#fanoutTo - this.#perRecipientMs);
    }
    if (this.#pending.length > 0) return this.#windowEnd(now);
    if (!busy) {
      this.#window = false;
      return;
    }
    // The platform may run this timer before messages that queued behind the same
    // fan-out: keep the window open a little, so they still share one frame.
    this.#clock.setTimeout(() => this.#windowEnd(this.#clock.now()), this.#graceMs());
  }

  #adaptiveOn(): boolean {
    return this.adaptive && this.#maxDelayMs === 0;
  }

  /**
   * Adaptive: the longest the first held message may wait, measured between events:
   * one estimated fan-out plus MAX_WAIT_MS. The timers end every window long before
   * that; this bounds the wait even where the platform runs timers late behind a
   * stream of incoming frames.
   */
  #holdLimitMs(): number {
    return this.#perRecipientMs * this.#fanoutTo + MAX_WAIT_MS;
  }

  /** Adaptive: held messages overdue: send them now, from the event that noticed (the window's timer still ends it). */
  #sendHeld(): void {
    this.#fanoutAt = this.#clock.now();
    this.#fanoutTo = this.#targets.live().length;
    this.flush();
  }

  /** Adaptive: how long a busy room's window stays open once the loop is free (ms). */
  #graceMs(): number {
    return Math.min(MAX_WAIT_MS, Math.max(WINDOW_MS, this.#perRecipientMs * this.#fanoutTo * GRACE_SHARE));
  }

  /** Adaptive: the window ends; what it held goes out as one frame, and opens the next window (traffic keeps coming). */
  #windowEnd(now: number): void {
    if (this.#pending.length === 0) {
      this.#window = false;
      return;
    }
    const recipients = this.#targets.live().length;
    try {
      this.flush();
    } finally {
      // Also after a failure: never leave the window open with no timer (it would hold everything).
      if (this.#adaptiveOn()) this.#adaptiveWindow(now, recipients, true);
      else this.#openWindow();
    }
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
