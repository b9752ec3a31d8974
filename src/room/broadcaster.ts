/**
 * Live fan-out with adaptive batching. Each WebSocket send has a fixed cost on
 * workerd, so under load the room packs the messages that became ready close
 * together into one `messages` frame per recipient (Cloudflare's own advice for
 * fan-out). A message that finds no window open goes out at once. It opens a
 * window when it followed the previous one within BUSY_MS, or when the room has
 * BIG_ROOM sockets or more: messages arriving while the window's timer (WINDOW_MS)
 * is pending wait for it and go out together, and the window stays open while
 * traffic keeps coming. The big-room rule is there because the gap rule cannot see
 * a backlog: Date.now() only moves between events, so behind a broadcast slower than
 * BUSY_MS every message looks "late". Without it a 1,000-subscriber room offered
 * more than it could send fell seconds behind; with it, it batches and keeps up
 * (docs/benchmarks.md, "Overload"). A small quiet room sets no timer.
 *
 * `maxDelayMs` (BROADCAST_MAX_DELAY_MS, default 0) trades latency for CPU in rooms
 * with many recipients: messages up to that far apart count as a burst, and the
 * window stays open that long, so a busy room sends at most one frame per recipient
 * per `maxDelayMs` and no message waits longer than that. A quiet room still sends
 * at once. The profile behind it (workerd spends almost all of a fan-out inside the
 * per-socket send) is in docs/benchmarks.md.
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
/** How long a burst's window stays open after its first message went out. */
const WINDOW_MS = 1;
/** Rooms this big always open a window after a broadcast (one timer per message, against this many sends). */
const BIG_ROOM = 100;
/** Keep batch frames well under platform and client message limits (and see maxBatchChars). */
const MAX_BATCH_CHARS = 1 << 20;

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
  /** Longest a message may wait to share a frame in a busy room (0: only messages <2 ms apart). */
  maxDelayMs?: number;
  /** Most unconfirmed characters a connection may have (flow.ts); Infinity: no limit. */
  budget?: number;
  /** Largest batch frame, in characters (at most 1 MiB; the room passes a quarter of the budget). */
  maxBatchChars?: number;
}

export class Broadcaster {
  readonly #targets: BroadcastTargets;
  readonly #trace: Tracer;
  readonly #batching: boolean;
  readonly #busyMs: number;
  readonly #windowMs: number;
  #pending: StoredMessage[] = [];
  #pendingBytes = 0;
  /** Frames held behind pending messages: an ack for one connection, or an ephemeral frame for all but its sender. */
  #deferred: [Connection, string, "ack" | "ephemeral"][] = [];
  readonly #budget: number;
  readonly #maxBatchChars: number;
  #window = false;
  #last = -Infinity;

  constructor(targets: BroadcastTargets, { batching, maxDelayMs = 0, budget = Infinity, maxBatchChars = MAX_BATCH_CHARS }: BroadcastOptions) {
    this.#targets = targets;
    this.#trace = targets.trace ?? NO_TRACE;
    this.#budget = budget;
    this.#maxBatchChars = Math.min(maxBatchChars, MAX_BATCH_CHARS);
    this.#batching = batching;
    this.#busyMs = Math.max(BUSY_MS, maxDelayMs);
    this.#windowMs = Math.max(WINDOW_MS, maxDelayMs);
  }

  /** A newly stored message for everyone. */
  message(m: StoredMessage): void {
    if (!this.#batching) return this.#sendAll(messageFrame(m), m.seq, 1);
    if (!this.#window) {
      this.#sendAll(messageFrame(m), m.seq, 1);
      // A window opens when messages come close together, or when the room is big
      // enough that one broadcast takes longer than a window: Date.now() only moves
      // between events, so behind a slow broadcast the next message always looks
      // "late" and a gap rule alone would never batch the rooms that need it most.
      const now = Date.now();
      if (now - this.#last <= this.#busyMs || this.#targets.live().length >= BIG_ROOM) this.#openWindow();
      this.#last = now;
      return;
    }
    this.#pending.push(m);
    this.#pendingBytes += m.data.length + m.id.length + m.from.length + 64;
    if (this.#pendingBytes >= this.#maxBatchChars) this.flush();
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
