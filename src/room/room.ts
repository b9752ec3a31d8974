/**
 * The room: one Durable Object per room name. It holds the room's hibernatable
 * WebSockets and its message log. Entry points (`fetch`, `webSocket*`, RPC methods)
 * validate, delegate to one small method and catch; nothing that matters lives only
 * in memory (sessions are socket attachments, the log is SQLite).
 */
import { DurableObject } from "cloudflare:workers";
import * as v from "valibot";
import {
  PING,
  PONG,
  PROTOCOL_VERSION,
  decodeClientFrame,
  utf8Length,
  type AckFrame,
  type ErrorCode,
  type HistoryRequestFrame,
  type PublishFrame,
  type WelcomeFrame,
} from "@roomcast/protocol";
import type { Env } from "../env.js";
import { readLimits, type Limits } from "../config.js";
import { Identity } from "../auth/identity.js";
import { errorResponse } from "../http/errors.js";
import { describeError, log } from "../log.js";
import { readSession, writeSession, type Session } from "./attachment.js";
import { MessageLog, encodeMessage, type Page, type StoredMessage } from "./message-log.js";
import { TokenBucket } from "./rate-limit.js";
import { closeWith, sendError, sendFrame, sendText } from "./send.js";

/** Header the Worker uses to hand a verified identity to the room; never read from clients. */
export const IDENTITY_HEADER = "X-Roomcast-Identity";
/** Room for the frame envelope on top of MAX_MESSAGE_BYTES of payload. */
const FRAME_OVERHEAD_BYTES = 1_024;

export type PublishResult =
  | { ok: true; seq: number; id: string; duplicate: boolean }
  | { ok: false; code: ErrorCode; message: string };

export interface HistoryResult extends Page {
  readonly epoch: string;
  readonly head: number;
}

export class Room extends DurableObject<Env> {
  readonly #log: MessageLog;
  readonly #limits: Limits;
  readonly #buckets = new WeakMap<WebSocket, TokenBucket>();
  #room: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#limits = readLimits(env);
    // SQLite calls are synchronous, so the migration finishes before any event runs;
    // no blockConcurrencyWhile is needed.
    this.#log = new MessageLog(ctx.storage);
    this.#room = this.#log.getMeta("room");
    // Pings are answered by the runtime without waking a hibernated room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  // ---- entry points ---------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    try {
      const identity = this.#readIdentity(request);
      if (!identity) return errorResponse("invalid_request", "missing or malformed internal identity");
      if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return errorResponse("upgrade_required");
      return this.#connect(identity);
    } catch (err) {
      log("error", "room.fetch", { room: this.#room, error: describeError(err) });
      return errorResponse("internal_error");
    }
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const session = readSession(ws);
    if (!session) return closeWith(ws, "internal_error");
    try {
      this.#onFrame(ws, session, raw);
    } catch (err) {
      log("error", "room.webSocketMessage", { room: this.#room, connectionId: session.connectionId, error: describeError(err) });
      sendError(ws, "internal_error");
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // 1005/1006 are reserved and cannot be sent back; answer those with a normal close.
    const reply = code === 1005 || code === 1006 || code === 1015 ? 1000 : code;
    try {
      ws.close(reply, reason);
    } catch {
      // The runtime may already have completed the closing handshake.
    }
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    log("warn", "room.webSocketError", { room: this.#room, connectionId: readSession(ws)?.connectionId, error: describeError(error) });
  }

  // ---- RPC, called by the Worker (identity already verified there) ---------

  /** Publish from the HTTP API: same log, same sequence, same broadcast as a socket publish. */
  async publish(identity: Identity, id: string, data: string): Promise<PublishResult> {
    this.#rememberRoom(identity.room);
    if (utf8Length(data) > this.#limits.MAX_MESSAGE_BYTES) {
      return { ok: false, code: "message_too_large", message: `data exceeds ${this.#limits.MAX_MESSAGE_BYTES} bytes` };
    }
    const result = this.#append(identity.userId, id, data);
    return { ok: true, seq: result.seq, id, duplicate: result.duplicate };
  }

  async history(after: number, limit: number): Promise<HistoryResult> {
    const page = this.#log.page(after, Math.min(limit, this.#limits.HISTORY_PAGE_MAX));
    return { ...page, epoch: this.#log.epoch, head: this.#log.head };
  }

  // ---- connection ----------------------------------------------------------

  #readIdentity(request: Request): Identity | undefined {
    const header = request.headers.get(IDENTITY_HEADER);
    if (!header) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(header);
    } catch {
      return undefined;
    }
    const result = v.safeParse(Identity, parsed);
    return result.success ? result.output : undefined;
  }

  #rememberRoom(room: string): void {
    if (this.#room === undefined) {
      this.#room = room;
      this.#log.setMeta("room", room);
    }
  }

  #connect(identity: Identity): Response {
    this.#rememberRoom(identity.room);
    if (this.ctx.getWebSockets().length >= this.#limits.MAX_CONNECTIONS_PER_ROOM) {
      return errorResponse("room_full", `the room already holds ${this.#limits.MAX_CONNECTIONS_PER_ROOM} connections`);
    }
    const { 0: client, 1: server } = new WebSocketPair();
    const session: Session = {
      connectionId: crypto.randomUUID(),
      userId: identity.userId,
      permissions: identity.permissions,
      expiresAt: identity.expiresAt,
      protocol: PROTOCOL_VERSION,
      joinedAt: Date.now(),
    };
    this.ctx.acceptWebSocket(server, [`user:${identity.userId}`]);
    writeSession(server, session);
    this.#welcome(server, session);
    return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": PROTOCOL_VERSION } });
  }

  /**
   * Welcome, then recent history, then live messages. All of it runs in one
   * synchronous turn (SQLite is synchronous), so no publish can slip in between:
   * no gap and no duplicate between history and live.
   */
  #welcome(ws: WebSocket, session: Session): void {
    const recent = this.#log.recent(this.#limits.HISTORY_ON_JOIN);
    const welcome = {
      type: "welcome",
      protocol: PROTOCOL_VERSION,
      room: this.#room ?? "",
      connectionId: session.connectionId,
      userId: session.userId,
      epoch: this.#log.epoch,
      seq: this.#log.head,
      replay: recent.length,
      permissions: session.permissions,
      expiresAt: session.expiresAt,
      limits: {
        maxMessageBytes: this.#limits.MAX_MESSAGE_BYTES,
        publishRatePerSecond: this.#limits.PUBLISH_RATE_PER_SECOND,
        publishBurst: this.#limits.PUBLISH_BURST,
      },
    } satisfies WelcomeFrame;
    sendFrame(ws, welcome);
    for (const m of recent) sendText(ws, messageFrame(m));
  }

  // ---- frames --------------------------------------------------------------

  #onFrame(ws: WebSocket, session: Session, raw: string | ArrayBuffer): void {
    if (session.expiresAt * 1000 <= Date.now()) return closeWith(ws, "token_expired");
    if (typeof raw === "string" && utf8Length(raw) > this.#limits.MAX_MESSAGE_BYTES + FRAME_OVERHEAD_BYTES) {
      sendError(ws, "message_too_large", `frame exceeds ${this.#limits.MAX_MESSAGE_BYTES} bytes of data`);
      return;
    }
    const decoded = decodeClientFrame(raw);
    if (!decoded.ok) {
      sendError(ws, decoded.code, decoded.message, decoded.id);
      return;
    }
    const frame = decoded.frame;
    switch (frame.type) {
      case "publish":
        return this.#onPublish(ws, session, frame);
      case "history":
        return this.#onHistory(ws, frame);
      case "ping":
        // An exact PING is answered by the auto-response; this catches spacing variants.
        sendText(ws, PONG);
        return;
    }
  }

  #onPublish(ws: WebSocket, session: Session, frame: PublishFrame): void {
    if (!session.permissions.includes("publish")) {
      sendError(ws, "forbidden", "this token may not publish in this room", frame.id);
      return;
    }
    const data = JSON.stringify(frame.data);
    if (utf8Length(data) > this.#limits.MAX_MESSAGE_BYTES) {
      sendError(ws, "message_too_large", `data exceeds ${this.#limits.MAX_MESSAGE_BYTES} bytes`, frame.id);
      return;
    }
    if (!this.#bucket(ws).take()) {
      sendError(ws, "rate_limited", `at most ${this.#limits.PUBLISH_RATE_PER_SECOND} publishes per second (burst ${this.#limits.PUBLISH_BURST})`, frame.id);
      return;
    }
    const result = this.#append(session.userId, frame.id, data);
    sendFrame(ws, { type: "ack", id: frame.id, seq: result.seq, duplicate: result.duplicate } satisfies AckFrame);
  }

  #onHistory(ws: WebSocket, frame: HistoryRequestFrame): void {
    const limit = Math.min(frame.limit ?? this.#limits.HISTORY_PAGE_MAX, this.#limits.HISTORY_PAGE_MAX);
    const page = this.#log.page(frame.after ?? 0, limit);
    const head = { type: "history", id: frame.id, hasMore: page.hasMore };
    sendText(ws, `${JSON.stringify(head).slice(0, -1)},"messages":[${page.messages.map(encodeMessage).join(",")}]}`);
  }

  #bucket(ws: WebSocket): TokenBucket {
    let bucket = this.#buckets.get(ws);
    if (!bucket) {
      bucket = new TokenBucket(this.#limits.PUBLISH_RATE_PER_SECOND, this.#limits.PUBLISH_BURST);
      this.#buckets.set(ws, bucket);
    }
    return bucket;
  }

  /** Store, then broadcast. The output gate holds the broadcast until the write is durable. */
  #append(sender: string, clientId: string, data: string): { seq: number; duplicate: boolean } {
    const result = this.#log.append(sender, clientId, data, Date.now());
    if (result.message) this.#broadcast(messageFrame(result.message));
    return result;
  }

  #broadcast(text: string): void {
    for (const ws of this.ctx.getWebSockets()) sendText(ws, text);
  }
}

function messageFrame(m: StoredMessage): string {
  return `{"type":"message",${encodeMessage(m).slice(1)}`;
}
