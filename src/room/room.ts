/**
 * The room: one Durable Object per room name, holding the room's hibernatable
 * WebSockets, its presence and its message log. Entry points (`fetch`,
 * `webSocket*`, `alarm`, RPC methods) validate, delegate and catch; the logic lives
 * in small modules (`message-log`, `presence`, `resume`, `frame-handlers`,
 * `lifecycle`). Nothing that matters lives only in memory: sessions are socket
 * attachments, the log and grace periods are SQLite, timers are one alarm.
 */
import { DurableObject } from "cloudflare:workers";
import * as v from "valibot";
import { PING, PONG, PROTOCOL_V1, isProtocolVersion, utf8Length, type ErrorCode, type Member } from "@roomcast/protocol";
import type { Env } from "../env.js";
import { readLimits, type Limits } from "../config.js";
import { Identity } from "../auth/identity.js";
import { errorResponse } from "../error-response.js";
import { describeError, log, safely } from "../log.js";
import { MAX_PAGE_CHARS, type Page } from "./message-log.js";
import { closeWith } from "./send.js";
import { RoomCore } from "./room-core.js";
import { handleFrame } from "./frame-handlers.js";
import { runAlarm } from "./lifecycle.js";
import { TRACE_MAX_SECONDS, type TraceEvent, type TraceState } from "./trace.js";
import type { RoomMetrics } from "./metrics.js";
import { roomSummary, type RoomSummary } from "./summary.js";
import { migrateRoom } from "./migrate-room.js";

/**
 * Headers the Worker uses to hand the room a verified identity and resume request; never
 * read from clients. Values are JSON, percent-encoded (`encodeURIComponent`) so they stay
 * ASCII whatever the user id holds; `readHeader` decodes, then validates.
 */
export const IDENTITY_HEADER = "X-Roomcast-Identity";
export const RESUME_HEADER = "X-Roomcast-Resume";
/** The protocol version the Worker selected (plain text); absent (an older Worker mid-deploy): roomcast.v1. */
export const PROTOCOL_HEADER = "X-Roomcast-Protocol";

const ResumeHeader = v.object({ epoch: v.pipe(v.string(), v.maxLength(64)), after: v.pipe(v.number(), v.integer(), v.minValue(0)) });

const TraceOptions = v.union([
  v.strictObject({ off: v.literal(true) }),
  v.strictObject({ seconds: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(TRACE_MAX_SECONDS)), payloads: v.boolean() }),
]);
const TraceAfter = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

export type Refused = { ok: false; code: ErrorCode; message: string };

export type PublishResult = { ok: true; seq: number; id: string; duplicate: boolean } | Refused;

export interface HistoryResult extends Page {
  readonly ok: true;
  readonly epoch: string;
  readonly head: number;
}

function rateLimited(limits: Limits): Refused {
  return {
    ok: false,
    code: "rate_limited",
    message: `at most ${limits.PUBLISH_RATE_PER_SECOND} requests per second per user in a room (burst ${limits.PUBLISH_BURST}), shared with the user's sockets`,
  };
}

export class Room extends DurableObject<Env> {
  /** Set at the start, inside blockConcurrencyWhile: no entry point runs before it is. */
  #core!: RoomCore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Pings are answered by the runtime without waking a hibernated room; the
    // answer's timestamp is what liveness reads.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
    void ctx.blockConcurrencyWhile(async () => {
      // The one migration place (migrate-room.ts): schema, then hibernated sockets'
      // attachments, before anything reads them. A failure resets the object.
      migrateRoom(ctx);
      this.#core = new RoomCore(ctx, env, readLimits(env));
      // Counted without arming the flush timer: a wake alone must not keep the room awake.
      this.#core.meter.inc("wakes_total", undefined, 1, false);
      // One line per start: after hibernation or eviction this shows each wake-up.
      log("info", "room.start", { room: this.#core.room, connections: this.#core.connections.size });
      await this.#core.loadAlarm();
    });
  }

  // ---- entry points ---------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    try {
      const identity = readHeader(request, IDENTITY_HEADER, Identity);
      if (!identity) return errorResponse("invalid_request", "missing or malformed internal identity");
      if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return errorResponse("upgrade_required");
      // Flags for the welcome: the cached overrides (a stale cache is re-read in the background); waits, bounded, only
      // before this isolate's first read or after an admin change here (src/flags/flags.ts OverrideCache.fresh).
      await this.#core.flags.fresh();
      const protocol = request.headers.get(PROTOCOL_HEADER);
      return this.#core.connect(identity, readHeader(request, RESUME_HEADER, ResumeHeader), isProtocolVersion(protocol) ? protocol : PROTOCOL_V1);
    } catch (err) {
      log("error", "room.fetch", { room: this.#core.room, error: describeError(err) });
      return errorResponse("internal_error");
    }
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const conn = this.#core.connections.get(ws);
    if (!conn) {
      // The room closed it already (the frame crossed the close): nothing to do.
      if (this.#core.connections.closedByRoom(ws)) return;
      return closeWith(ws, "internal_error"); // an attachment we cannot read
    }
    // Debug mode (trace.ts): while it is off, this flag check is all it costs.
    const traced = conn.trace.on ? conn.trace.frameIn(conn, raw) : undefined;
    try {
      await handleFrame(this.#core, conn, raw);
      this.#core.directory.active(this.#core.room, this.#core.connections.size);
    } catch (err) {
      log("error", "room.webSocketMessage", { room: this.#core.room, connectionId: conn.id, error: describeError(err) });
      safely("room.webSocketMessage", { room: this.#core.room }, () => this.#core.close(conn, "internal_error", this.#core.graceDeadline()));
    }
    if (traced) conn.trace.settle(traced);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // 1005/1006/1015 are reserved and cannot be sent back; answer those with a normal close.
    const reply = code === 1005 || code === 1006 || code === 1015 ? 1000 : code;
    try {
      ws.close(reply, reason);
    } catch {
      // The runtime may already have completed the closing handshake.
    }
    this.#departed("room.webSocketClose", ws, code);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    log("warn", "room.webSocketError", { room: this.#core.room, error: describeError(error) });
    this.#departed("room.webSocketError", ws, 1006);
  }

  /** The client (or the network) ended a connection; a second event for it changes nothing. */
  #departed(event: string, ws: WebSocket, code: number): void {
    safely(event, { room: this.#core.room }, () => {
      const conn = this.#core.connections.get(ws);
      if (conn) this.#core.disconnected(conn, this.#core.graceDeadline(), code);
      // Every socket's close ends here, the room's own closes too: the last one reports before the room sleeps.
      if (this.#core.connections.size === 0 && this.#core.meter.pending) this.#core.meter.flush("empty");
    });
  }

  override async alarm(): Promise<void> {
    // Alarms run at least once and may be retried: runAlarm recomputes everything
    // from the current state, so running it twice does no harm.
    try {
      await runAlarm(this.#core, Date.now());
      this.#core.directory.active(this.#core.room, this.#core.connections.size);
    } catch (err) {
      log("error", "room.alarm", { room: this.#core.room, error: describeError(err) });
      this.#core.meter.inc("alarm_errors_total");
      throw err; // let the platform retry with backoff
    }
  }

  // ---- RPC, called by the Worker (identity already verified there) ---------

  /** Publish from the HTTP API: same log, same sequence, same broadcast as a socket publish. */
  async publish(identity: Identity, id: string, data: string): Promise<PublishResult> {
    const result = this.#publish(identity, id, data);
    this.#core.meter.inc("publishes_total", { outcome: result.ok ? "accepted" : result.code });
    return result;
  }

  #publish(identity: Identity, id: string, data: string): PublishResult {
    this.#core.rememberRoom(identity.room);
    const max = this.#core.limits.MAX_MESSAGE_BYTES;
    if (utf8Length(data) > max) return { ok: false, code: "message_too_large", message: `data exceeds ${max} bytes` };
    const banned = this.#bannedNow(identity.userId);
    if (banned) return banned;
    // The same bucket as the user's sockets: HTTP is no way around the rate limit.
    if (!this.#core.buckets.of(identity.userId, identity.rate).take()) return rateLimited(this.#core.limits);
    const result = this.#core.append(identity.userId, id, data);
    return { ok: true, seq: result.seq, id, duplicate: result.duplicate };
  }

  /**
   * The HTTP history page: cut at about 1 MiB like every page (message-log.ts) and paid
   * from the user's bucket by request and by size, like history over the socket.
   */
  async history(identity: Identity, after: number, limit: number): Promise<HistoryResult | Refused> {
    const banned = this.#bannedNow(identity.userId);
    if (banned) return banned;
    const page = this.#core.historyPage(identity.userId, after, limit, MAX_PAGE_CHARS, identity.rate);
    if (!page) return rateLimited(this.#core.limits);
    const log = this.#core.log;
    return { ok: true, ...page, epoch: log.epoch, head: log.head };
  }

  async presence(): Promise<Member[]> {
    return this.#core.presence().members();
  }

  /**
   * Before a deploy: every connection gets a reconnect hint with a random delay in
   * [0, windowMs), then a retryable close. Presence holds each member for its delay
   * plus the usual grace, so nobody flaps while the room refills.
   */
  async drain(windowMs: number): Promise<{ connections: number; windowMs: number }> {
    return { connections: this.#core.drain(windowMs), windowMs };
  }

  /** Disconnects every connection of a user with the terminal `kicked` code. */
  async kick(userId: string, banSeconds = 0): Promise<{ closed: number; bannedUntil?: number }> {
    const closed = this.#core.kick(userId, banSeconds);
    const bannedUntil = banSeconds > 0 ? this.#core.bans.bannedUntil(userId, Date.now()) : undefined;
    return bannedUntil !== undefined ? { closed, bannedUntil } : { closed };
  }

  /** For the admin API (src/http/admin.ts): counts and positions; with `detail`, each connection and presence. */
  async summary(options: { detail?: boolean } = {}): Promise<RoomSummary> {
    return roomSummary(this.#core, this.ctx.id.name ?? "", options.detail === true);
  }

  /** Counters since the room was created and current gauges (metrics.ts); the admin metrics endpoint sums them. */
  async metrics(): Promise<RoomMetrics> {
    const snapshot = this.#core.meter.snapshot();
    return snapshot.room ? snapshot : { ...snapshot, room: this.ctx.id.name ?? "" };
  }

  /**
   * Debug mode (trace.ts, docs/operations.md): every frame in and out logged and kept in
   * a ring buffer, for `seconds` (1..600), then off by itself; `{ off: true }` ends it now.
   * The admin API (src/http/admin-trace.ts) validates too; this checks again. Named
   * `setTrace`, not `trace` (issue #13's contract): workerd refuses RPC calls to a method
   * named like a Worker handler, and `trace` is one (tail events).
   */
  async setTrace(options: { seconds: number; payloads: boolean } | { off: true }): Promise<TraceState> {
    const parsed = v.parse(TraceOptions, options);
    if ("off" in parsed) return this.#core.tracer.stop();
    return this.#core.tracer.start(parsed.seconds, parsed.payloads);
  }

  /** The trace's state and the buffered events with an id above `after`, oldest first. */
  async traceEvents(after: number): Promise<TraceState & { events: TraceEvent[] }> {
    return this.#core.tracer.events(v.parse(TraceAfter, after));
  }

  /** A user banned from the room by a kick is refused over HTTP too. */
  #bannedNow(userId: string): Refused | undefined {
    const until = this.#core.bans.bannedUntil(userId, Date.now());
    return until === undefined ? undefined : { ok: false, code: "kicked", message: `banned from this room until ${new Date(until).toISOString()}` };
  }

}

function readHeader<T>(request: Request, name: string, schema: v.GenericSchema<unknown, T>): T | undefined {
  const header = request.headers.get(name);
  if (!header) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeURIComponent(header)); // a malformed encoding throws URIError
  } catch {
    return undefined;
  }
  const result = v.safeParse(schema, parsed);
  return result.success ? result.output : undefined;
}

