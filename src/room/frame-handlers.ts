/**
 * What the room does with each frame a client sends. Every frame has been
 * size-checked and decoded by the protocol's validating codec before it gets here.
 */
import {
  PONG,
  RoomcastError,
  decodeClientFrame,
  utf8Length,
  type AckFrame,
  type BroadcastFrame,
  type HistoryRequestFrame,
  type PresenceSetFrame,
  type ProgressFrame,
  type PublishFrame,
  type RefreshFrame,
  type RefreshedFrame,
} from "@roomcast/protocol";
import { authConfigFromEnv, verifyToken } from "../auth/verify.js";
import { permissionsFor } from "../auth/capabilities.js";
import type { Connection } from "./connections.js";
import { broadcastFrame, encodeFrame, historyFrame } from "./wire.js";
import { replyError, replyFrame, sendCounted, sendText } from "./send.js";
import type { RoomCore } from "./room-core.js";

/** What the frame handlers use of the room, and nothing else. */
export type FrameHost = Pick<
  RoomCore,
  "env" | "room" | "limits" | "buckets" | "historyPage" | "log" | "budget" | "pageChars" | "connections" | "broadcaster" | "append" | "presence" | "broadcastPresence" | "tokenDeadline" | "graceDeadline" | "ensureAlarm" | "close" | "closeSlow" | "meter"
>;

/**
 * JSON text of a decoded value, or undefined when it cannot be serialised again
 * (JSON.parse accepts nesting that JSON.stringify overflows the stack on).
 */
function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/** Room for the frame envelope on top of MAX_MESSAGE_BYTES of payload. */
const FRAME_OVERHEAD_BYTES = 1_024;

export async function handleFrame(core: FrameHost, conn: Connection, raw: string | ArrayBuffer): Promise<void> {
  const now = Date.now();
  if (core.tokenDeadline(conn.session) <= now) return core.close(conn, "token_expired", core.graceDeadline(now));
  conn.lastFrame = now;
  const tooLarge = typeof raw === "string" && utf8Length(raw) > core.limits.MAX_MESSAGE_BYTES + FRAME_OVERHEAD_BYTES;
  const decoded = tooLarge ? undefined : decodeClientFrame(raw);
  core.meter.inc("frames_in_total", { type: !decoded ? "too_large" : decoded.ok ? decoded.frame.type : "invalid" });
  core.meter.inc("bytes_in_total", undefined, typeof raw === "string" ? raw.length : raw.byteLength);
  // A client that keeps sending but stopped reading (answers pile up): flow control.
  // A progress report is what brings it back under, so that one is always taken.
  const isProgress = decoded?.ok === true && decoded.frame.type === "progress";
  if (!isProgress && conn.flow.unconfirmed > core.budget) return core.closeSlow(conn);
  if (!decoded) {
    replyError(conn, "message_too_large", `frame exceeds ${core.limits.MAX_MESSAGE_BYTES} bytes of data`);
    return;
  }
  if (!decoded.ok) {
    replyError(conn, decoded.code, decoded.message, decoded.id);
    return;
  }
  const frame = decoded.frame;
  switch (frame.type) {
    case "publish":
      return onPublish(core, conn, frame);
    case "history":
      return onHistory(core, conn, frame);
    case "presence":
      return onPresence(core, conn, frame);
    case "refresh":
      return onRefresh(core, conn, frame);
    case "progress":
      return onProgress(core, conn, frame);
    case "broadcast":
      return onBroadcast(core, conn, frame);
    case "ping":
      // An exact PING is answered by the auto-response; this catches spacing variants.
      sendText(conn.ws, PONG); // not counted: pongs are never counted (flow.ts)
      return;
  }
}

/** The user's bucket, shared by all of their sockets and the HTTP API. */
function bucket(core: FrameHost, conn: Connection) {
  return core.buckets.of(conn.userId, conn.session.rate);
}

function onPublish(core: FrameHost, conn: Connection, frame: PublishFrame): void {
  // Every refusal below is an error frame with the frame's id: counted by its code.
  const outcome = publish(core, conn, frame);
  core.meter.inc("publishes_total", { outcome });
}

function publish(core: FrameHost, conn: Connection, frame: PublishFrame): string {
  const { session } = conn;
  if (!session.permissions.includes("publish")) {
    replyError(conn, "forbidden", "this token may not publish in this room", frame.id);
    return "forbidden";
  }
  const data = toJson(frame.data);
  if (data === undefined) {
    replyError(conn, "invalid_frame", "data is nested too deeply", frame.id);
    return "invalid_frame";
  }
  const max = core.limits.MAX_MESSAGE_BYTES;
  if (utf8Length(data) > max) {
    replyError(conn, "message_too_large", `data exceeds ${max} bytes`, frame.id);
    return "message_too_large";
  }
  if (!bucket(core, conn).take()) {
    replyError(conn, "rate_limited", `at most ${core.limits.PUBLISH_RATE_PER_SECOND} publishes per second (burst ${core.limits.PUBLISH_BURST})`, frame.id);
    return "rate_limited";
  }
  const result = core.append(session.userId, frame.id, data);
  // roomcast.v2: the message frame that carries a new message back to its live publisher
  // is the ack (docs/protocol.md, "Versions"). It reaches it now, in a batch, or, if the
  // broadcast skips it (flow control closes it as slow), in the replay of its resume.
  // A duplicate is not broadcast, and a connection still joining gets the message from
  // its replay, so both keep the explicit ack, as v1 does for every publish.
  if (conn.v2 && !result.duplicate && conn.phase === "live") return "accepted";
  // The ack must not overtake the message it acknowledges (which may be batched).
  core.broadcaster.after(conn, encodeFrame({ type: "ack", id: frame.id, seq: result.seq, duplicate: result.duplicate } satisfies AckFrame));
  return "accepted";
}

/**
 * Ephemeral traffic (docs/protocol.md §6.4): checked and charged like a publish, then
 * relayed to the other live connections; nothing is stored, no seq, no ack.
 */
function onBroadcast(core: FrameHost, conn: Connection, frame: BroadcastFrame): void {
  const { session } = conn;
  // As for presence: a refusal must carry an id (an id-less error with a close code announces a close).
  const id = frame.id ?? "";
  if (!session.permissions.includes("publish")) {
    replyError(conn, "forbidden", "this token may not publish (or broadcast) in this room", id);
    return;
  }
  const data = toJson(frame.data);
  if (data === undefined) {
    replyError(conn, "invalid_frame", "data is nested too deeply", id);
    return;
  }
  const max = core.limits.MAX_MESSAGE_BYTES;
  if (utf8Length(data) > max) {
    replyError(conn, "message_too_large", `data exceeds ${max} bytes`, id);
    return;
  }
  if (!bucket(core, conn).take()) {
    replyError(conn, "rate_limited", "broadcasts share the publish rate limit", id);
    return;
  }
  core.broadcaster.ephemeral(broadcastFrame(session.userId, session.connectionId, Date.now(), data), conn);
  core.meter.inc("broadcasts_total");
}

function onHistory(core: FrameHost, conn: Connection, frame: HistoryRequestFrame): void {
  const { ws } = conn;
  // Paid from the user's bucket by request and by size (room-core.ts historyPage); cut
  // by size too (about 1 MiB, message-log.ts): `hasMore` tells the client to page on.
  const page = core.historyPage(conn.userId, frame.after ?? 0, frame.limit ?? core.limits.HISTORY_PAGE_MAX, core.pageChars, conn.session.rate);
  if (!page) {
    replyError(conn, "rate_limited", "history requests share the publish rate limit", frame.id);
    return;
  }
  sendCounted(conn, historyFrame(frame.id, page.messages, page.hasMore));
}

/**
 * Flow control: the client has applied everything up to `seq`. Costs no token (a
 * client that confirms often must never be refused); the attachment is written only
 * when the position moves forward, so repeats cost next to nothing.
 */
function onProgress(core: FrameHost, conn: Connection, frame: ProgressFrame): void {
  if (conn.flow.progress(Math.min(frame.seq, core.log.head))) core.connections.update(conn, { confirmed: conn.flow.confirmedSeq });
}

function onPresence(core: FrameHost, conn: Connection, frame: PresenceSetFrame): void {
  const { ws, session } = conn;
  // A presence frame may come without an id, but its refusal must still carry one: an
  // error frame without an id whose code has a close code (forbidden, rate_limited)
  // announces a close (docs/protocol.md §7). "" is no valid message id, so it matches no other frame.
  const id = frame.id ?? "";
  if (!session.permissions.includes("presence")) {
    replyError(conn, "forbidden", "this token may not set presence in this room", id);
    return;
  }
  const max = core.limits.PRESENCE_STATE_MAX_BYTES;
  const state = toJson(frame.state);
  if (state === undefined) {
    replyError(conn, "invalid_frame", "state is nested too deeply", id);
    return;
  }
  if (utf8Length(state) > max) {
    replyError(conn, "message_too_large", `presence state exceeds ${max} bytes`, id);
    return;
  }
  // Typing indicators and the like share the connection's publish budget.
  if (!bucket(core, conn).take()) {
    replyError(conn, "rate_limited", "presence updates share the publish rate limit", id);
    return;
  }
  core.connections.update(conn, { state: frame.state });
  const diff = core.presence().setState(session.connectionId, session.userId, frame.state);
  if (diff) core.broadcastPresence(diff);
}

/**
 * Verifies a fresh token exactly as the Worker does at the handshake (same jose
 * configuration), for the same user, and extends the session without reconnecting.
 * A bad token leaves the current session as it was.
 */
async function onRefresh(core: FrameHost, conn: Connection, frame: RefreshFrame): Promise<void> {
  const { ws, session } = conn;
  // Signature checks cost CPU: refreshes share the publish rate limit too.
  if (!bucket(core, conn).take()) {
    replyError(conn, "rate_limited", "refreshes share the publish rate limit", frame.id);
    return;
  }
  let verified;
  try {
    verified = await verifyToken(frame.token, authConfigFromEnv(core.env));
  } catch (err) {
    // A token problem says what it is; a key-set outage is retryable (auth_unavailable);
    // anything else is internal. Server-side causes stay in the log, never in the frame.
    const known = err instanceof RoomcastError && (err.status < 500 || err.code === "auth_unavailable");
    const code = known ? (err as RoomcastError).code : "internal_error";
    replyError(conn, code, known && (err as RoomcastError).status < 500 ? (err as Error).message : undefined, frame.id);
    return;
  }
  if (verified.userId !== session.userId) {
    replyError(conn, "forbidden", "a refresh token must be for the same user", frame.id);
    return;
  }
  const permissions = permissionsFor(verified.cap, core.room ?? "");
  if (!permissions.includes("subscribe")) {
    replyError(conn, "forbidden", 'the new token does not grant "subscribe" on this room', frame.id);
    return;
  }
  // The verify above awaited: the connection may have gone meanwhile.
  if (conn.phase === "gone") return;
  // Presence membership (`announced`) stays as it was at the join.
  core.connections.update(conn, { expiresAt: verified.expiresAt, permissions, rate: verified.rate });
  core.ensureAlarm(core.tokenDeadline(conn.session));
  replyFrame(conn, { type: "refreshed", id: frame.id, expiresAt: verified.expiresAt, permissions } satisfies RefreshedFrame);
}
