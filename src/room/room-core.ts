/**
 * The room's state and the operations on it, shared by the entry points in
 * `room.ts`, the frame handlers and the alarm. Kept apart from the Durable Object
 * class so the class stays a thin layer of entry points. Who is connected, and in
 * which phase, is the connection registry's alone (connections.ts); the modules
 * here get the narrow parts of it they need.
 */
import { type ErrorCode, type PresenceStateFrame, type ProtocolVersion, type WelcomeFrame } from "@roomcast/protocol";
import type { Env } from "../env.js";
import type { Limits } from "../config.js";
import type { Identity } from "../auth/identity.js";
import { errorResponse } from "../error-response.js";
import { describeError, log, safely } from "../log.js";
import type { Session } from "./attachment.js";
import { ConnectionRegistry, type Connection } from "./connections.js";
import { MAX_PAGE_CHARS, MessageLog, type Page } from "./message-log.js";
import { GraceStore } from "./grace-store.js";
import { BanStore } from "./ban-store.js";
import { Presence, type PresenceDiff } from "./presence.js";
import { PresenceFanout } from "./presence-fanout.js";
import { planReplay, type ResumeRequest } from "./resume.js";
import { closeConnection, sendFrameTo } from "./send.js";
import { Tracer } from "./trace.js";
import { ReplayRunner } from "./replay.js";
import { Broadcaster } from "./broadcaster.js";
import { UserBuckets, payForHistory } from "./rate-limit.js";
import { RoomMeter, closeCodeLabel } from "./metrics.js";
import { ERRORS } from "@roomcast/protocol";
import { DirectoryReporter } from "../directory/report.js";
import { Flags } from "../flags/flags.js";
import { RoomFlags, applyAdaptiveBatching } from "../flags/room-flags.js";

export class RoomCore {
  readonly ctx: DurableObjectState;
  readonly env: Env;
  readonly limits: Limits;
  readonly log: MessageLog;
  readonly grace: GraceStore;
  readonly bans: BanStore;
  readonly connections: ConnectionRegistry;
  readonly replays: ReplayRunner;
  readonly broadcaster: Broadcaster;
  readonly presenceFanout: PresenceFanout;
  /** Flow control: the most a connection may have unconfirmed (MAX_UNCONFIRMED_BYTES, see flowBudget). */
  readonly budget: number;
  /** Rate limits, one bucket per user: all of a user's sockets and the HTTP API share it. */
  readonly buckets: UserBuckets;
  /** Debug mode (trace.ts): off unless an admin turned it on; checked by one branch per frame. */
  readonly tracer: Tracer;
  /** Counters and gauges (metrics.ts): memory, then one row and one data point per flush; nothing while idle. */
  readonly meter: RoomMeter;
  /** The rooms directory's reports (fire-and-forget, never a timer; src/directory/report.ts). */
  readonly directory: DirectoryReporter;
  /** Feature flags (src/flags/): `welcome.features`, and the room-level flags that gate behaviour here. */
  readonly flags: RoomFlags;
  #presence: Presence | undefined;
  /** Users kicked since this instance started: a socket of theirs adopted later is not listed again. */
  readonly #kicked = new Set<string>();
  #room: string | undefined;
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env, limits: Limits) {
    this.ctx = ctx;
    this.env = env;
    this.limits = limits;
    this.log = new MessageLog(ctx.storage);
    this.grace = new GraceStore(ctx.storage.sql, this.log);
    this.bans = new BanStore(ctx.storage.sql, this.log);
    this.#room = this.log.getMeta("room");
    this.meter = new RoomMeter({
      storage: ctx.storage,
      stored: () => this.log.stored,
      room: () => this.#room,
      gauges: () => this.gauges(),
      dataset: env.METRICS,
    });
    this.connections = new ConnectionRegistry(ctx, (chars) => this.meter.inc("bytes_out_total", undefined, chars));
    this.tracer = new Tracer(ctx.storage.kv, () => this.#room ?? ctx.id.name);
    this.connections.tracer = this.tracer;
    // Nothing stored yet, but clients connected before a wake: their attachments hold
    // the room's name and the epoch they were told (message-log.ts keeps both in memory).
    if (!this.log.stored) {
      for (const conn of this.connections.open()) {
        if (conn.session.epoch) this.log.adoptEpoch(conn.session.epoch);
        if (conn.session.room && this.#room === undefined) this.rememberRoom(conn.session.room);
      }
    }
    // A connection found only when its (queued) close arrives after a wake: if the
    // presence index was built without it, put it back, so its leave is announced.
    // (A user kicked since this instance started is not put back: the kick removed them.)
    this.connections.onAdopt = (conn) => {
      if (this.#presence && conn.session.announced && !this.#kicked.has(conn.userId) && !this.#presence.has(conn.id, conn.userId)) {
        this.#presence.restore(presenceEntry(conn.session));
      }
      // Adopted mid-replay (its attachment has a cursor): carry on, or it would never go live.
      if (conn.phase === "joining") this.replays.resume(conn);
    };
    this.budget = flowBudget(limits);
    this.buckets = new UserBuckets(limits.PUBLISH_RATE_PER_SECOND, limits.PUBLISH_BURST);
    this.directory = new DirectoryReporter(env.DIRECTORY, (p) => ctx.waitUntil(p));
    const slow = (conns: Connection[]) => conns.forEach((c) => safely("room.slow_consumer", { room: this.#room }, () => this.closeSlow(c)));
    this.broadcaster = new Broadcaster(
      { live: () => this.connections.live(), slow, trace: this.tracer, delivered: (n) => this.meter.inc("deliveries_total", undefined, n) },
      { batching: env.BROADCAST_BATCHING !== "off", maxDelayMs: limits.BROADCAST_MAX_DELAY_MS, budget: this.budget, maxBatchChars: this.pageChars },
    );
    // Room-level flags are applied now and again whenever the flags in force change (room-flags.ts).
    this.flags = new RoomFlags(new Flags(env), () => this.#room, (on) => applyAdaptiveBatching(this.broadcaster, on("adaptive_batching")));
    this.presenceFanout = new PresenceFanout({ targets: () => this.connections.open(), slow, budget: this.budget, trace: this.tracer }, limits.PRESENCE_MAX_DELAY_MS);
    this.replays = new ReplayRunner({
      room: () => this.#room,
      pageSize: limits.REPLAY_PAGE_SIZE,
      budget: this.budget,
      page: (after, limit) => this.log.page(after, limit, this.pageChars),
      flushBroadcasts: () => this.broadcaster.flush(),
      goLive: (conn) => this.connections.goLive(conn),
      saveCursor: (conn, cursor) => this.connections.update(conn, { replayedTo: cursor }),
      joining: () => this.connections.joining(),
      slow: (conn) => this.closeSlow(conn),
      count: (event, n) => this.meter.inc(event === "started" ? "replays_started_total" : event === "finished" ? "replays_finished_total" : "replayed_messages_total", undefined, n ?? 1),
      failed: (conn) => {
        // The one close without an error frame first (docs/protocol.md §6.8).
        this.disconnected(conn, this.graceDeadline(), 4002);
        try {
          conn.ws.close(4002, "internal_error");
        } catch {
          // already closed
        }
      },
    });
    this.replays.resumeAfterWake();
  }

  /**
   * The largest replay page or history answer on a socket: about 1 MiB, and at most a
   * quarter of the flow-control budget, so that a client reporting progress as asked
   * is never over its budget because of one frame.
   */
  get pageChars(): number {
    return Math.min(MAX_PAGE_CHARS, Math.floor(flowBudget(this.limits) / 4));
  }

  get room(): string | undefined {
    return this.#room;
  }

  rememberRoom(room: string): void {
    if (this.#room === undefined) {
      this.#room = room;
      this.log.setMeta("room", room);
    }
  }

  // ---- presence ---------------------------------------------------------------

  /**
   * The presence index, built on first use after a wake from the open connections
   * that were announced at their join and from grace rows. Lazy, so a publish to a
   * room that just woke pays nothing for presence. Building is silent: nobody is
   * announced twice.
   */
  presence(): Presence {
    if (!this.#presence) {
      const presence = new Presence();
      const graced = this.grace.all();
      const gracedIds = new Set(graced.map((g) => g.connectionId));
      for (const g of graced) presence.restore(g);
      for (const conn of this.connections.open()) {
        if (conn.session.announced && !gracedIds.has(conn.id)) presence.restore(presenceEntry(conn.session));
      }
      this.#presence = presence;
    }
    return this.#presence;
  }

  graceDeadline(now: number = Date.now()): number | undefined {
    const grace = this.limits.PRESENCE_GRACE_SECONDS * 1000;
    return grace > 0 ? now + grace : undefined;
  }

  /** A presence change for the room (coalesced under churn, see presence-fanout.ts). */
  broadcastPresence(diff: PresenceDiff, except?: Connection): void {
    this.meter.inc("joins_total", undefined, diff.joins.length);
    this.meter.inc("leaves_total", undefined, diff.leaves.length);
    this.presenceFanout.diff(diff, except);
  }

  /**
   * A connection is gone (closed by the client, reaped, expired, drained, kicked or
   * too slow). With `graceUntil`, a user's last connection stays in presence until
   * then, so a quick reconnect does not flap. Safe to call twice: an event that
   * follows for the same socket changes nothing.
   */
  disconnected(conn: Connection, graceUntil: number | undefined, closeCode = 1006): void {
    if (conn.phase === "gone") return;
    this.meter.inc("connections_closed_total", { code: closeCodeLabel(closeCode) });
    // The index is built (if it was not) while this connection is still open, so it
    // is in it; membership was decided at its join, not by current permissions.
    const presence = conn.session.announced ? this.presence() : undefined;
    this.connections.retire(conn);
    this.replays.forget(conn);
    this.directory.left(this.#room, this.connections.size);
    if (!presence) return;
    const { session } = conn;
    const { diff, graced } = presence.remove(session.connectionId, session.userId, graceUntil);
    if (graced && graceUntil !== undefined) {
      this.grace.put(presenceEntry(session), graceUntil);
      this.ensureAlarm(graceUntil);
    }
    this.broadcastPresence(diff, conn);
  }

  /**
   * The room closes a connection: it leaves presence (with `graceUntil`, after that)
   * and every view first, with its attachment marked, then gets the error frame and
   * the close.
   */
  close(conn: Connection, code: ErrorCode, graceUntil: number | undefined): void {
    if (conn.phase === "gone") return;
    this.disconnected(conn, graceUntil, (ERRORS[code] as { close?: number }).close ?? 1011);
    closeConnection(conn, code);
  }

  /** Flow control: the connection fell too far behind. It comes back and resumes from its position. */
  closeSlow(conn: Connection): void {
    if (conn.phase === "gone") return;
    log("warn", "room.slow_consumer", { room: this.#room, connectionId: conn.id, unconfirmed: conn.flow.unconfirmed });
    this.meter.inc("slow_consumer_closes_total");
    this.close(conn, "slow_consumer", this.graceDeadline());
  }

  // ---- connections -------------------------------------------------------------

  /** `protocol`: the version the Worker selected from the client's offer (routes.ts); both are served side by side. */
  connect(identity: Identity, resume: ResumeRequest | undefined, protocol: ProtocolVersion): Response {
    this.rememberRoom(identity.room);
    const banned = this.bans.bannedUntil(identity.userId, Date.now());
    if (banned !== undefined) return this.#refused("kicked", `banned from this room until ${new Date(banned).toISOString()}`);
    // Sockets the room closed but the runtime still holds count too, until they are gone.
    if (Math.max(this.connections.size, this.connections.socketCount()) >= this.limits.MAX_CONNECTIONS_PER_ROOM) {
      return this.#refused("room_full", `the room already holds ${this.limits.MAX_CONNECTIONS_PER_ROOM} connections`);
    }
    // One user may not take the room: a cap per user, with its own code (several tabs and devices fit).
    if (this.connections.countOf(identity.userId) >= this.limits.MAX_CONNECTIONS_PER_USER) {
      return this.#refused("too_many_connections", `this user already holds ${this.limits.MAX_CONNECTIONS_PER_USER} connections in the room`);
    }
    // Build the presence index (lazily, after a wake) before this connection exists:
    // it is added, and announced, below.
    const presence = this.presence();
    const { 0: client, 1: server } = new WebSocketPair();
    const now = Date.now();
    const announced = identity.permissions.includes("presence");
    const session: Session = {
      connectionId: crypto.randomUUID(),
      userId: identity.userId,
      permissions: identity.permissions,
      expiresAt: identity.expiresAt,
      protocol,
      joinedAt: now,
      state: null,
      announced,
      room: identity.room,
      epoch: this.log.epoch,
      ...(identity.rate ? { rate: identity.rate } : {}),
    };
    const conn = this.connections.accept(server, session, [userTag(identity.userId)]);
    this.directory.joined(this.#room, this.connections.size, now);
    this.ensureAlarm(Math.min(now + this.limits.LIVENESS_TIMEOUT_SECONDS * 1000, this.tokenDeadline(session)));
    try {
      this.#join(conn, presence, resume);
    } catch (err) {
      // Half-joined: take it out of every view (and presence) before the failure is answered.
      safely("room.connect", { room: this.#room }, () => this.close(conn, "internal_error", undefined));
      throw err;
    }
    return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": protocol } });
  }

  /**
   * Welcome, presence, then the replay (recent history, or everything after the
   * resume position), then live messages, all in this synchronous turn as far as
   * the first replay page. The connection is `joining` until its replay reaches the
   * head, so no live broadcast can reach it before its welcome or twice.
   */
  #join(conn: Connection, presence: Presence, resume: ResumeRequest | undefined): void {
    const { session } = conn;
    const plan = planReplay(resume, this.log, this.limits.HISTORY_ON_JOIN);
    this.meter.inc("connections_opened_total");
    // Per version, so an operator can see when roomcast.v1 is no longer used (docs/protocol.md, "Versions").
    this.meter.inc("connections_by_protocol_total", { protocol: conn.protocol });
    if (plan.resume) this.meter.inc("resumes_total", { verdict: plan.resume.recovered ? "recovered" : (plan.resume.reason ?? "unknown") });
    const welcome = {
      type: "welcome",
      protocol: conn.protocol,
      room: this.#room ?? "",
      connectionId: session.connectionId,
      userId: session.userId,
      epoch: this.log.epoch,
      seq: this.log.head,
      replay: this.log.head - plan.from,
      ...(plan.resume ? { resume: plan.resume } : {}),
      permissions: session.permissions,
      expiresAt: session.expiresAt,
      limits: {
        maxMessageBytes: this.limits.MAX_MESSAGE_BYTES,
        publishRatePerSecond: session.rate?.perSecond ?? this.limits.PUBLISH_RATE_PER_SECOND,
        publishBurst: session.rate?.burst ?? this.limits.PUBLISH_BURST,
        livenessTimeoutSeconds: this.limits.LIVENESS_TIMEOUT_SECONDS,
        maxUnconfirmedBytes: this.budget,
      },
      // Exposed flags for this user and room (src/flags/), evaluated at this join.
      features: this.flags.features(session.userId),
    } satisfies WelcomeFrame;
    sendFrameTo(conn, welcome);

    if (session.announced) {
      const { diff, replaced } = presence.add(presenceEntry(session));
      this.grace.delete(replaced);
      this.broadcastPresence(diff, conn);
    }
    sendFrameTo(conn, { type: "presence_state", members: presence.members() } satisfies PresenceStateFrame);
    this.replays.start(conn, plan.from);
  }

  #refused(code: "kicked" | "room_full" | "too_many_connections", message: string): Response {
    this.meter.inc("connections_refused_total", { code });
    return errorResponse(code, message);
  }

  /** Current gauges (metrics.ts GAUGES). */
  gauges(): Record<string, number> {
    return {
      connections: this.connections.size,
      max_connections: this.limits.MAX_CONNECTIONS_PER_ROOM,
      log_messages: this.log.size,
      log_first_seq: this.log.oldestSeq,
      log_head_seq: this.log.head,
      storage_bytes: this.log.stored ? this.ctx.storage.sql.databaseSize : 0,
    };
  }

  /** Token expiry in ms, with the same clock tolerance the Worker allowed at the handshake. */
  tokenDeadline(session: Session): number {
    return (session.expiresAt + this.limits.JWT_CLOCK_TOLERANCE_SECONDS) * 1000;
  }

  drain(windowMs: number): number {
    const now = Date.now();
    const grace = this.limits.PRESENCE_GRACE_SECONDS * 1000;
    let count = 0;
    for (const conn of [...this.connections.open()]) {
      const delayMs = Math.floor(Math.random() * windowMs);
      sendFrameTo(conn, { type: "reconnect", delayMs, reason: "drain" });
      this.close(conn, "going_away", now + delayMs + grace);
      count++;
    }
    log("info", "room.drained", { room: this.#room, connections: count, windowMs });
    return count;
  }

  /** Closes every connection of a user (4502) and, with `banSeconds`, keeps them out that long. */
  kick(userId: string, banSeconds = 0): number {
    if (banSeconds > 0) this.ensureAlarm(this.bans.put(userId, Date.now() + banSeconds * 1000));
    const presence = this.presence(); // built before any connection is retired
    const conns = this.connections.ofUser(userId);
    this.#kicked.add(userId);
    for (const conn of conns) {
      this.meter.inc("connections_closed_total", { code: "4502" });
      this.connections.retire(conn);
      this.replays.forget(conn);
      closeConnection(conn, "kicked");
    }
    if (conns.length > 0) this.directory.left(this.#room, this.connections.size);
    this.grace.deleteUser(userId);
    this.broadcastPresence(presence.removeUser(userId));
    log("info", "room.kicked", { room: this.#room, connections: conns.length });
    return conns.length;
  }

  /**
   * When a connection was last heard from: its last auto-answered ping, its last
   * frame since this instance started (memory only: hibernation needs silence
   * anyway), or its join.
   */
  lastSeen(conn: Connection): number {
    return Math.max(conn.session.joinedAt, this.connections.lastPing(conn), conn.lastFrame);
  }

  // ---- messages ------------------------------------------------------------------

  /**
   * A history page for a user, over WebSocket or HTTP, paid from the user's bucket by
   * request and by size: one token for the request, and one per HISTORY_CHARS_PER_TOKEN
   * of messages. The page is cut to what the bucket can pay (at least one message),
   * so a large history costs the same whether it is fetched in big pages or small.
   */
  historyPage(userId: string, after: number, limit: number, maxChars: number, rate?: { perSecond: number; burst: number }): Page | undefined {
    return payForHistory(this.buckets.of(userId, rate), maxChars, (cut) => {
      const page = this.log.page(after, Math.min(limit, this.limits.HISTORY_PAGE_MAX), cut);
      let chars = 0;
      for (const m of page.messages) chars += m.data.length + m.id.length + m.from.length + 64;
      return { page, chars };
    });
  }

  /** Store, then broadcast. The output gate holds the broadcast until the write is durable. */
  append(sender: string, clientId: string, data: string): { seq: number; duplicate: boolean } {
    const result = this.log.append(sender, clientId, data, Date.now());
    if (result.message) {
      this.flags.activity(); // picks up a flag change within the cache TTL (room-flags.ts)
      this.broadcaster.message(result.message);
      this.#scheduleRetention();
    }
    return result;
  }

  #scheduleRetention(): void {
    if (this.log.size > this.limits.RETENTION_MAX_MESSAGES || this.log.bytes > this.limits.RETENTION_MAX_BYTES) {
      // Trim in batches, at most about once a second, rather than on every publish.
      this.ensureAlarm(Date.now() + 1_000);
    } else if (this.log.oldestTs !== undefined) {
      this.ensureAlarm(this.log.oldestTs + this.limits.RETENTION_MAX_AGE_SECONDS * 1000);
    }
  }

  // ---- the alarm -----------------------------------------------------------------

  async loadAlarm(): Promise<void> {
    this.#alarmAt = await this.ctx.storage.getAlarm();
  }

  /** Makes sure the alarm fires no later than `at`. One alarm serves every timed duty. */
  ensureAlarm(at: number): void {
    if (this.#alarmAt !== null && this.#alarmAt <= at) return;
    this.#alarmAt = at;
    this.ctx.storage.setAlarm(at).catch((err) => {
      this.#alarmAt = null;
      log("error", "room.setAlarm", { room: this.#room, error: describeError(err) });
    });
  }

  /**
   * The alarm is running: it is no longer scheduled. Forgetting the cached time
   * first means that if this run fails, the next duty re-arms the alarm instead of
   * trusting a time that has passed.
   */
  alarmStarted(): void {
    this.#alarmAt = null;
  }

  /** Called by the alarm handler once it has recomputed the next due time. */
  async setNextAlarm(at: number | undefined): Promise<void> {
    this.#alarmAt = at ?? null;
    try {
      if (at === undefined) await this.ctx.storage.deleteAlarm();
      else await this.ctx.storage.setAlarm(at);
    } catch (err) {
      this.#alarmAt = null;
      throw err;
    }
  }

}

/**
 * The flow-control budget in force: MAX_UNCONFIRMED_BYTES, but never less than four
 * of the largest message frames, so that one message can never put a reading
 * client over it.
 */
export function flowBudget(limits: Limits): number {
  return Math.max(limits.MAX_UNCONFIRMED_BYTES, 4 * (limits.MAX_MESSAGE_BYTES + 2_048));
}

/**
 * The socket tag for a user: a hash, because the runtime limits tags to 256 bytes
 * and a `sub` may be 200 characters of up to 4 bytes each (and should not be
 * printed by the runtime). 53 bits (cyrb53): tags are informational, never used to
 * decide anything, so a collision would be harmless.
 */
export function userTag(userId: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < userId.length; i++) {
    const c = userId.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return `user:${(4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36)}`;
}

function presenceEntry(session: Session) {
  return { connectionId: session.connectionId, userId: session.userId, state: session.state, joinedAt: session.joinedAt };
}
