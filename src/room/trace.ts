/**
 * Debug mode for one room (docs/operations.md, "Debug mode (tracing one room)"): an
 * admin turns it on for 1..600 s; every frame in and out of the room is then written
 * as one `trace` log line and kept in a ring buffer of the last TRACE_CAPACITY events
 * for the console's flow view (`GET /v1/admin/rooms/:room/trace?after=ID`).
 *
 * - Cost while off: the call sites read `tracer.on` (a plain boolean field) and branch;
 *   nothing is allocated, parsed or measured. Keep it that way: every hook is
 *   `if (x.on) x.record(...)`, and all the work is behind the branch.
 * - It switches itself off: the end time is checked on every event (and by the alarm,
 *   if one runs anyway); no timer or alarm is set for it, so an idle room is never
 *   woken to end a trace. `until` is reported with the state.
 * - It survives hibernation: `{until, payloads}` is one key in the room's synchronous
 *   KV storage, read once when the object starts (a wake) and deleted when found
 *   expired or turned off. The ring buffer is memory only: a wake empties it (the log
 *   lines stay); event ids keep increasing across a wake (they start from the clock).
 * - Redaction: tokens never appear (a `refresh` frame's `token` is "[redacted]", and so
 *   is any key named like a credential and any JWT-shaped string, in every field).
 *   Payloads (`data`, the frame itself) are kept only when the trace was started with
 *   `payloads: true`, and then at most MAX_DATA_CHARS of frame per event.
 * - Fan-outs (a message, batch, presence diff or ephemeral broadcast sent to many) are
 *   one event with `recipients`, not one per socket: one publish in a room of 1,000
 *   would otherwise fill the whole buffer.
 */
import { decodeClientFrame, utf8Length } from "@roomcast/protocol";
import { log } from "../log.js";

export interface TraceEvent {
  /** Increasing; pass the last one seen as `after` to get only newer events. */
  id: number;
  at: number;
  dir: "in" | "out";
  type: string;
  /** UTF-8 bytes of the frame. */
  bytes: number;
  userId?: string;
  connectionId?: string;
  /** A publish's stored seq, a `progress` position, a message's (or a batch's last) seq, an ack's seq. */
  seq?: number;
  /** Frames in: "accepted" or the error code the room answered; frames out: an error frame's code. */
  outcome?: string;
  /** The frame's `id` (a client message id), for matching an ack or an error to its frame. */
  frameId?: string;
  /** Messages in a `messages` batch, a replay page or a history answer. */
  messages?: number;
  /** A fan-out: how many connections it was sent to. */
  recipients?: number;
  /** The frame, redacted; only when the trace was started with `payloads: true`. */
  data?: unknown;
}

export interface TraceState {
  enabled: boolean;
  until: number | null;
}

/** Where a frame in or out belongs: the connection's ids. */
export interface TraceConnection {
  readonly id: string;
  readonly userId: string;
}

export const TRACE_CAPACITY = 1_000;
export const TRACE_MAX_SECONDS = 600;
export const TRACE_DEFAULT_SECONDS = 60;
/** Frames longer than this keep no `data` even with payloads (bounds the buffer: about 1,000 × 4 KiB). */
export const MAX_DATA_CHARS = 4_096;
export const REDACTED = "[redacted]";
const STORAGE_KEY = "trace";
/** Deeper than this, a payload is cut (JSON.parse accepts nesting a recursive walk should not follow). */
const MAX_DEPTH = 16;
/** Keys whose values are credentials, wherever they appear (any key containing one of these words). */
const SECRET_KEY = /token|authorization|bearer|jwt|passw(or)?d|secret|api[-_]?key|credential/i;
/** A JWT (or JWS/JWE) anywhere in a string: a base64url JSON header `eyJ…`, or any three dot-separated base64url segments. */
const JWT_LIKE = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)*|[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g;
const BEARER_LIKE = /(bearer\s+)\S+/gi;

/** What persists across a wake. */
interface Stored {
  until: number;
  payloads: boolean;
}

export class Tracer {
  /**
   * The one thing a hot path reads: false while tracing is off. A plain field, not a
   * getter, so that the cost of tracing while off is a property load and a branch.
   */
  on = false;
  #until: number | null = null;
  #payloads = false;
  readonly #ring: (TraceEvent | undefined)[] = [];
  /** Frames in still being handled, per connection id: the error or ack sent in answer completes them. */
  readonly #open = new Map<string, TraceEvent[]>();
  #write = 0;
  #nextId = 1;
  readonly #kv: SyncKvStorage | undefined;
  readonly #room: () => string | undefined;

  /** `kv` undefined: memory only (unit tests, and the shared tracer that is never on). */
  constructor(kv: SyncKvStorage | undefined, room: () => string | undefined, now = Date.now()) {
    this.#kv = kv;
    this.#room = room;
    if (!kv) return;
    const stored = kv.get<Stored>(STORAGE_KEY);
    if (stored === undefined) return;
    if (typeof stored?.until === "number" && stored.until > now) this.#enable(stored.until, stored.payloads === true, now);
    else kv.delete(STORAGE_KEY);
  }

  /** Turns tracing on until `now + seconds` (1..600), replacing any trace in progress. */
  start(seconds: number, payloads: boolean, now = Date.now()): TraceState {
    const s = Math.min(TRACE_MAX_SECONDS, Math.max(1, Math.floor(seconds)));
    const until = now + s * 1000;
    this.#ring.length = 0;
    this.#write = 0;
    this.#enable(until, payloads, now);
    this.#kv?.put(STORAGE_KEY, { until, payloads } satisfies Stored);
    log("info", "trace.on", { room: this.#room(), until, payloads });
    return this.state(now);
  }

  /** Turns tracing off now; the events recorded stay readable until the next start. */
  stop(): TraceState {
    if (this.#until !== null) this.#off("stopped");
    return { enabled: false, until: null };
  }

  /** The state; an expired trace is switched off first. */
  state(now = Date.now()): TraceState {
    this.expire(now);
    return { enabled: this.on, until: this.#until };
  }

  /** Events with an id above `after`, oldest first (at most TRACE_CAPACITY). */
  events(after: number, now = Date.now()): TraceState & { events: TraceEvent[] } {
    const state = this.state(now);
    const n = this.#ring.length;
    const start = n < TRACE_CAPACITY ? 0 : this.#write;
    const events: TraceEvent[] = [];
    for (let i = 0; i < n; i++) {
      const event = this.#ring[(start + i) % n];
      if (event && event.id > after) events.push(event);
    }
    return { ...state, events };
  }

  /** Switches an expired trace off (events call it; so does the alarm). */
  expire(now = Date.now()): void {
    if (this.#until !== null && now >= this.#until) this.#off("expired");
  }

  /**
   * A frame arrived. Call only when `on`. Returns the event, to be completed by
   * `settle` once the frame was handled (it gets its id now, so that it comes before
   * the frames sent in answer), or undefined if the trace just ran out. Its outcome is
   * the code of the error frame the room answers it with (matched by the frame's id;
   * an id-less error, which announces a close, goes to the connection's latest frame),
   * else "accepted"; a publish gets its seq from its ack when the ack is not deferred.
   */
  frameIn(conn: TraceConnection, raw: string | ArrayBuffer, now = Date.now()): TraceEvent | undefined {
    this.expire(now);
    if (!this.on) return undefined;
    const bytes = typeof raw === "string" ? utf8Length(raw) : raw.byteLength;
    const decoded = bytes <= 2 * 1024 * 1024 ? decodeClientFrame(raw) : undefined;
    const frame = decoded?.ok ? (decoded.frame as unknown as Record<string, unknown>) : undefined;
    const event: TraceEvent = { id: this.#nextId++, at: now, dir: "in", type: frame ? String(frame.type) : "invalid", bytes, userId: conn.userId, connectionId: conn.id };
    if (frame) {
      this.#details(event, frame);
      if (this.#payloads) event.data = bytes <= MAX_DATA_CHARS ? redact(frame, 0) : omitted(bytes);
    }
    this.#push(event);
    const open = this.#open.get(conn.id);
    if (open) open.push(event);
    else this.#open.set(conn.id, [event]);
    return event;
  }

  /** The frame `event` was handled (or its handler threw): its outcome, then its log line. */
  settle(event: TraceEvent | undefined): void {
    if (!event?.connectionId) return;
    const open = this.#open.get(event.connectionId);
    const at = open?.indexOf(event) ?? -1;
    if (at >= 0) open!.splice(at, 1);
    if (open?.length === 0) this.#open.delete(event.connectionId);
    event.outcome ??= "accepted";
    this.#log(event);
  }

  /** A frame sent to one connection. Call only when `on`. */
  out(conn: TraceConnection, text: string, now = Date.now()): void {
    this.#out(text, now, conn, undefined);
  }

  /** One frame sent to `recipients` connections (a broadcast; to nobody, it is no frame). Call only when `on`. */
  fanout(text: string, recipients: number, now = Date.now()): void {
    if (recipients > 0) this.#out(text, now, undefined, recipients);
  }

  #out(text: string, now: number, conn: TraceConnection | undefined, recipients: number | undefined): void {
    this.expire(now);
    if (!this.on) return;
    const bytes = utf8Length(text);
    let frame: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) frame = parsed as Record<string, unknown>;
    } catch {
      // Every frame the room sends is JSON; if one is not, it is traced as "unknown".
    }
    const event: TraceEvent = { id: this.#nextId++, at: now, dir: "out", type: typeof frame?.type === "string" ? frame.type : "unknown", bytes };
    if (conn) {
      event.userId = conn.userId;
      event.connectionId = conn.id;
    }
    if (recipients !== undefined) event.recipients = recipients;
    if (frame) {
      this.#details(event, frame);
      if (frame.type === "error" && typeof frame.code === "string") event.outcome = frame.code;
      if (conn && (frame.type === "error" || frame.type === "ack")) this.#answer(conn.id, event, frame);
      if (this.#payloads) event.data = text.length <= MAX_DATA_CHARS ? redact(frame, 0) : omitted(bytes);
    }
    this.#push(event);
    this.#log(event);
  }

  /** An error or an ack sent to a connection completes the frame in it answers. */
  #answer(connectionId: string, sent: TraceEvent, frame: Record<string, unknown>): void {
    const open = this.#open.get(connectionId);
    if (!open) return;
    const id = sent.frameId ?? "";
    let match: TraceEvent | undefined;
    for (let i = open.length - 1; i >= 0 && !match; i--) if ((open[i]!.frameId ?? "") === id && open[i]!.outcome === undefined) match = open[i];
    // An error without an id announces a close: it ends whatever the connection sent last.
    if (!match && frame.type === "error" && typeof frame.id !== "string") {
      for (let i = open.length - 1; i >= 0 && !match; i--) if (open[i]!.outcome === undefined) match = open[i];
    }
    if (!match) return;
    if (frame.type === "error") match.outcome = sent.outcome;
    else if (typeof frame.seq === "number") match.seq = frame.seq;
  }

  /** seq, frame id and batch size, from any frame; nothing of its payload. */
  #details(event: TraceEvent, frame: Record<string, unknown>): void {
    if (typeof frame.id === "string" && frame.id !== "") event.frameId = scrub(frame.id);
    if (typeof frame.seq === "number") event.seq = frame.seq;
    const messages = frame.messages;
    if (Array.isArray(messages)) {
      event.messages = messages.length;
      const last = messages.at(-1) as { seq?: unknown } | undefined;
      if (typeof last?.seq === "number") event.seq = last.seq;
    }
  }

  #push(event: TraceEvent): void {
    if (this.#ring.length < TRACE_CAPACITY) this.#ring.push(event);
    else this.#ring[this.#write] = event;
    this.#write = (this.#write + 1) % TRACE_CAPACITY;
  }

  #log(event: TraceEvent): void {
    log("info", "trace", { room: this.#room(), ...event });
  }

  #enable(until: number, payloads: boolean, now: number): void {
    this.#until = until;
    this.#payloads = payloads;
    this.on = true;
    // Ids start from the clock, so they keep increasing across a wake (a console polling
    // with `after` sees the new instance's events); 1,000 per ms leaves room to spare.
    this.#nextId = Math.max(this.#nextId, now * 1000);
  }

  #off(reason: "expired" | "stopped"): void {
    const until = this.#until;
    this.on = false;
    this.#until = null;
    this.#payloads = false;
    this.#open.clear();
    this.#kv?.delete(STORAGE_KEY);
    log("info", "trace.off", { room: this.#room(), reason, until });
  }
}

/** The tracer of code without a room (unit tests' connections): never on. */
export const NO_TRACE = new Tracer(undefined, () => undefined);

function omitted(bytes: number): string {
  return `[omitted: ${bytes} bytes]`;
}

/** A string with anything that looks like a token replaced. */
function scrub(s: string): string {
  return s.replace(JWT_LIKE, REDACTED).replace(BEARER_LIKE, `$1${REDACTED}`);
}

/** A copy of a decoded frame with every credential-like key and token-like string redacted. */
export function redact(value: unknown, depth: number): unknown {
  if (typeof value === "string") return scrub(value);
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_DEPTH) return "[truncated]";
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? REDACTED : redact(v, depth + 1);
  return out;
}
