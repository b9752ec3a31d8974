/**
 * The room's state and the operations on it, shared by the entry points in
 * `room.ts`, the frame handlers and the alarm. Kept apart from the Durable Object
 * class so the class stays a thin layer of entry points.
 */
import { PROTOCOL_VERSION, type PresenceStateFrame, type WelcomeFrame } from "@roomcast/protocol";
import type { Env } from "../env.js";
import type { Limits } from "../config.js";
import type { Identity } from "../auth/identity.js";
import { errorResponse } from "../http/errors.js";
import { describeError, log } from "../log.js";
import { readSession, writeSession, type Session } from "./attachment.js";
import { MessageLog } from "./message-log.js";
import { GraceStore } from "./grace-store.js";
import { Presence, type PresenceDiff } from "./presence.js";
import { PresenceFanout } from "./presence-fanout.js";
import { planReplay, type ResumeRequest } from "./resume.js";
import { TokenBucket } from "./rate-limit.js";
import { closeWith, sendFrame } from "./send.js";
import { ReplayRunner } from "./replay.js";
import { Broadcaster } from "./broadcaster.js";

const OPEN = 1; // WebSocket.OPEN

export class RoomCore {
  readonly ctx: DurableObjectState;
  readonly env: Env;
  readonly limits: Limits;
  readonly log: MessageLog;
  readonly grace: GraceStore;
  readonly replays: ReplayRunner;
  readonly broadcaster: Broadcaster;
  readonly presenceFanout: PresenceFanout;
  /** getWebSockets() allocates a fresh array per call; the list is cached until sockets come or go. */
  #sockets: WebSocket[] | undefined;
  readonly #buckets = new WeakMap<WebSocket, TokenBucket>();
  readonly #lastFrame = new WeakMap<WebSocket, number>();
  #presence: Presence | undefined;
  #room: string | undefined;
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env, limits: Limits) {
    this.ctx = ctx;
    this.env = env;
    this.limits = limits;
    this.log = new MessageLog(ctx.storage);
    this.grace = new GraceStore(ctx.storage.sql);
    this.#room = this.log.getMeta("room");
    this.replays = new ReplayRunner(this);
    this.broadcaster = new Broadcaster(
      { sockets: () => this.sockets(), skip: () => this.replays.active },
      { batching: env.BROADCAST_BATCHING !== "off", maxDelayMs: limits.BROADCAST_MAX_DELAY_MS },
    );
    this.presenceFanout = new PresenceFanout(() => this.sockets(), limits.PRESENCE_MAX_DELAY_MS);
    this.replays.resumeAfterWake();
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

  /** Every socket of the room, cached (may include ones that are closing). */
  sockets(): readonly WebSocket[] {
    return (this.#sockets ??= this.ctx.getWebSockets());
  }

  /** Sockets came or went. */
  invalidateSockets(): void {
    this.#sockets = undefined;
  }

  /** Open sockets with a valid session. Closing sockets can linger in getWebSockets() (workerd#1187). */
  *sessions(): Generator<[WebSocket, Session]> {
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== OPEN) continue;
      const session = readSession(ws);
      if (session) yield [ws, session];
    }
  }

  // ---- presence ---------------------------------------------------------------

  /**
   * The presence index, built on first use after a wake from attachments and grace
   * rows. Lazy, so a publish to a room that just woke pays nothing for presence.
   * Building is silent: nobody is announced twice.
   */
  presence(): Presence {
    if (!this.#presence) {
      const presence = new Presence();
      const graced = this.grace.all();
      const gracedIds = new Set(graced.map((g) => g.connectionId));
      for (const g of graced) presence.restore(g);
      for (const [, s] of this.sessions()) {
        if (s.permissions.includes("presence") && !gracedIds.has(s.connectionId)) {
          presence.restore({ connectionId: s.connectionId, userId: s.userId, state: s.state, joinedAt: s.joinedAt });
        }
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
  broadcastPresence(diff: PresenceDiff, except?: WebSocket): void {
    this.presenceFanout.diff(diff, except);
  }

  /**
   * A connection is gone (closed by the client, reaped, expired, drained or
   * kicked). With `graceUntil`, a user's last connection stays in presence until
   * then, so a quick reconnect does not flap. Safe to call twice for one socket.
   */
  disconnected(ws: WebSocket, graceUntil: number | undefined): void {
    this.invalidateSockets();
    const session = readSession(ws);
    if (!session) return;
    this.replays.forget(ws);
    // If this close is the first thing to touch presence after a wake, the index is
    // built now from open sockets only, and this (closing) one must be added back so
    // that its leave is announced. An index that existed before already knows every
    // connection; one it does not know was removed earlier (a kick, a reap).
    const fresh = this.#presence === undefined;
    const presence = this.presence();
    if (fresh && session.permissions.includes("presence") && !presence.has(session.connectionId, session.userId)) {
      presence.restore({ connectionId: session.connectionId, userId: session.userId, state: session.state, joinedAt: session.joinedAt });
    }
    // Membership decides, not the current permissions: a refresh may have changed them.
    const { diff, graced } = presence.remove(session.connectionId, session.userId, graceUntil);
    if (graced && graceUntil !== undefined) {
      this.grace.put({ connectionId: session.connectionId, userId: session.userId, state: session.state, joinedAt: session.joinedAt }, graceUntil);
      this.ensureAlarm(graceUntil);
    }
    this.broadcastPresence(diff, ws);
  }

  // ---- connections -------------------------------------------------------------

  connect(identity: Identity, resume: ResumeRequest | undefined): Response {
    this.rememberRoom(identity.room);
    if (this.ctx.getWebSockets().length >= this.limits.MAX_CONNECTIONS_PER_ROOM) {
      return errorResponse("room_full", `the room already holds ${this.limits.MAX_CONNECTIONS_PER_ROOM} connections`);
    }
    // Build the presence index (lazily, after a wake) before this socket exists, or
    // the rebuild would count the newcomer as already present and never announce it.
    this.presence();
    const { 0: client, 1: server } = new WebSocketPair();
    const now = Date.now();
    const session: Session = {
      connectionId: crypto.randomUUID(),
      userId: identity.userId,
      permissions: identity.permissions,
      expiresAt: identity.expiresAt,
      protocol: PROTOCOL_VERSION,
      joinedAt: now,
      state: null,
    };
    // Tags let the room find a user's sockets (kick) without reading every attachment.
    this.ctx.acceptWebSocket(server, [userTag(identity.userId)]);
    this.invalidateSockets();
    writeSession(server, session);
    this.#join(server, session, resume);
    this.ensureAlarm(Math.min(now + this.limits.LIVENESS_TIMEOUT_SECONDS * 1000, this.tokenDeadline(session)));
    return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": PROTOCOL_VERSION } });
  }

  /**
   * Welcome, presence, then the replay (recent history, or everything after the
   * resume position), then live messages. The replay's first page goes out in this
   * same synchronous turn; a longer one continues page by page while live
   * broadcasts skip this socket, so there is no gap and no duplicate.
   */
  #join(ws: WebSocket, session: Session, resume: ResumeRequest | undefined): void {
    // Anything batched but not yet sent is in the log already: send it to the others
    // now, before this socket's replay (which reads the log) makes it live.
    this.broadcaster.flush();
    const plan = planReplay(resume, this.log, this.limits.HISTORY_ON_JOIN);
    const welcome = {
      type: "welcome",
      protocol: PROTOCOL_VERSION,
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
        publishRatePerSecond: this.limits.PUBLISH_RATE_PER_SECOND,
        publishBurst: this.limits.PUBLISH_BURST,
        livenessTimeoutSeconds: this.limits.LIVENESS_TIMEOUT_SECONDS,
      },
    } satisfies WelcomeFrame;
    sendFrame(ws, welcome);

    const presence = this.presence();
    if (session.permissions.includes("presence")) {
      const { diff, replaced } = presence.add({ connectionId: session.connectionId, userId: session.userId, state: null, joinedAt: session.joinedAt });
      this.grace.delete(replaced);
      this.broadcastPresence(diff, ws);
    }
    sendFrame(ws, { type: "presence_state", members: presence.members() } satisfies PresenceStateFrame);
    this.replays.start(ws, plan.from);
  }

  /** Token expiry in ms, with the same clock tolerance the Worker allowed at the handshake. */
  tokenDeadline(session: Session): number {
    return (session.expiresAt + this.limits.JWT_CLOCK_TOLERANCE_SECONDS) * 1000;
  }

  bucket(ws: WebSocket): TokenBucket {
    let bucket = this.#buckets.get(ws);
    if (!bucket) {
      bucket = new TokenBucket(this.limits.PUBLISH_RATE_PER_SECOND, this.limits.PUBLISH_BURST);
      this.#buckets.set(ws, bucket);
    }
    return bucket;
  }

  drain(windowMs: number): number {
    const now = Date.now();
    const grace = this.limits.PRESENCE_GRACE_SECONDS * 1000;
    let count = 0;
    for (const [ws] of this.sessions()) {
      const delayMs = Math.floor(Math.random() * windowMs);
      sendFrame(ws, { type: "reconnect", delayMs, reason: "drain" });
      closeWith(ws, "going_away");
      this.disconnected(ws, now + delayMs + grace);
      count++;
    }
    log("info", "room.drained", { room: this.#room, connections: count, windowMs });
    return count;
  }

  kick(userId: string): number {
    const presence = this.presence(); // built before any socket starts closing
    const sockets = this.ctx.getWebSockets(userTag(userId)).filter((ws) => ws.readyState === OPEN);
    for (const ws of sockets) {
      this.replays.forget(ws);
      closeWith(ws, "kicked");
    }
    this.grace.deleteUser(userId);
    this.broadcastPresence(presence.removeUser(userId));
    log("info", "room.kicked", { room: this.#room, connections: sockets.length });
    return sockets.length;
  }

  /** Any frame from a client proves it alive; kept in memory only (see lastSeen). */
  touch(ws: WebSocket, now: number): void {
    this.#lastFrame.set(ws, now);
  }

  /**
   * When a socket was last heard from: its last auto-answered ping, its last frame
   * since this instance started (memory only: hibernation needs silence anyway), or
   * its join.
   */
  lastSeen(ws: WebSocket, session: Session): number {
    return Math.max(session.joinedAt, this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0, this.#lastFrame.get(ws) ?? 0);
  }

  // ---- messages ------------------------------------------------------------------

  /** Store, then broadcast. The output gate holds the broadcast until the write is durable. */
  append(sender: string, clientId: string, data: string): { seq: number; duplicate: boolean } {
    const result = this.log.append(sender, clientId, data, Date.now());
    if (result.message) {
      this.broadcaster.message(result.message);
      this.#scheduleRetention();
    }
    return result;
  }

  #scheduleRetention(): void {
    if (this.log.size > this.limits.RETENTION_MAX_MESSAGES) {
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
    this.ctx.storage.setAlarm(at).catch((err) => log("error", "room.setAlarm", { room: this.#room, error: describeError(err) }));
  }

  /** Called by the alarm handler once it has recomputed the next due time. */
  async setNextAlarm(at: number | undefined): Promise<void> {
    this.#alarmAt = at ?? null;
    if (at === undefined) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }
}

export function userTag(userId: string): string {
  return `user:${userId}`;
}
