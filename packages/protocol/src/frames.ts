/**
 * Every frame of protocol `roomcast.v1`, as valibot schemas. Types are derived from
 * the schemas so the validator and the type can never drift apart.
 */
import * as v from "valibot";
import type { ErrorCode } from "./errors.js";
import { MESSAGE_ID } from "./room-name.js";

const Seq = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));
const MessageId = v.pipe(v.string(), v.regex(MESSAGE_ID, "id must be 1-64 characters of A-Z a-z 0-9 _ . : -"));
/** Any JSON value; `undefined` (a missing field) is not one. */
const JsonValue = v.custom<unknown>((x) => x !== undefined, "data is required");

// ---- client → server ----------------------------------------------------

export const PublishFrame = v.object({
  type: v.literal("publish"),
  /** Client-generated id; a repeat is acked with the first sequence number and not stored again. */
  id: MessageId,
  data: JsonValue,
});

export const HistoryRequestFrame = v.object({
  type: v.literal("history"),
  /** Correlates the reply. */
  id: MessageId,
  /** Return messages with `seq > after` (default 0: from the oldest retained). */
  after: v.optional(Seq),
  /** Page size, capped by the server's HISTORY_PAGE_MAX. */
  limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
});

export const PingFrame = v.object({ type: v.literal("ping") });

/** Sets this connection's custom presence state (needs the `presence` permission). */
export const PresenceSetFrame = v.object({
  type: v.literal("presence"),
  /** Any JSON value, at most PRESENCE_STATE_MAX_BYTES once serialised; null clears it. */
  state: JsonValue,
  /** Optional; echoed on an error frame. */
  id: v.optional(MessageId),
});

/** Extends the session with a fresh token, without reconnecting. */
export const RefreshFrame = v.object({
  type: v.literal("refresh"),
  id: MessageId,
  token: v.pipe(v.string(), v.minLength(1), v.maxLength(8_192)),
});

/**
 * Flow control: how far this connection has read. `seq` is the highest message seq
 * the client has applied; the frame also confirms every other frame (not `message`/
 * `messages`) the room sent before it. The room closes a connection whose unconfirmed traffic passes
 * `welcome.limits.maxUnconfirmedBytes` with 4005 `slow_consumer` (docs/protocol.md §6.9).
 */
export const ProgressFrame = v.object({
  type: v.literal("progress"),
  seq: Seq,
});

/**
 * Ephemeral traffic (cursors, typing, game state): relayed to the other live
 * connections of the room and never stored: no seq, no ack, no replay. Needs the
 * `publish` permission; shares the publish rate limit and size limit.
 */
export const BroadcastFrame = v.object({
  type: v.literal("broadcast"),
  data: JsonValue,
  /** Optional; only echoed on an `error` frame (a broadcast that went out is not answered). */
  id: v.optional(MessageId),
});

export const ClientFrame = v.variant("type", [PublishFrame, HistoryRequestFrame, PingFrame, PresenceSetFrame, RefreshFrame, ProgressFrame, BroadcastFrame]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;
export type PublishFrame = v.InferOutput<typeof PublishFrame>;
export type HistoryRequestFrame = v.InferOutput<typeof HistoryRequestFrame>;
export type PresenceSetFrame = v.InferOutput<typeof PresenceSetFrame>;
export type RefreshFrame = v.InferOutput<typeof RefreshFrame>;
export type ProgressFrame = v.InferOutput<typeof ProgressFrame>;
export type BroadcastFrame = v.InferOutput<typeof BroadcastFrame>;

// ---- server → client ----------------------------------------------------

export const Permission = v.picklist(["subscribe", "publish", "presence", "admin"]);
export type Permission = v.InferOutput<typeof Permission>;

/** A stored message, as broadcast, replayed and returned by history. */
export const Message = v.object({
  seq: Seq,
  id: v.string(),
  /** User id (`sub`) of the publisher. */
  from: v.string(),
  data: JsonValue,
  /** Server receive time, ms since the epoch. */
  ts: v.number(),
});
export type Message = v.InferOutput<typeof Message>;

/** One user in the room's presence, with each of their connections (tabs, devices). */
export const Member = v.object({
  userId: v.string(),
  connections: v.array(
    v.object({
      connectionId: v.string(),
      /** The connection's custom state; null until it sets one. */
      state: v.unknown(),
      /** ms since the epoch. */
      joinedAt: v.number(),
    }),
  ),
});
export type Member = v.InferOutput<typeof Member>;

/** Why a requested resume could not be honoured. */
export const ResumeFailure = v.picklist(["epoch_changed", "trimmed", "ahead"]);
export type ResumeFailure = v.InferOutput<typeof ResumeFailure>;

export const WelcomeFrame = v.object({
  type: v.literal("welcome"),
  protocol: v.string(),
  room: v.string(),
  connectionId: v.string(),
  userId: v.string(),
  /** Identifies this room's log; changes if the log is ever reset. */
  epoch: v.string(),
  /** Sequence number of the newest message at join time (0: none yet). */
  seq: Seq,
  /**
   * How many messages with `seq <= welcome.seq` follow, in `message` or `messages`
   * frames (recent history, or the replay of a resume). Live messages follow them
   * with no gap and no duplicate.
   */
  replay: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /**
   * Present when the client asked to resume (`?epoch=&after=`). `recovered: true`:
   * every message after the client's position follows, then live ones. `false`: the
   * position could not be honoured (`reason`); the client must start fresh from the
   * recent history that follows instead.
   */
  resume: v.optional(v.object({ recovered: v.boolean(), reason: v.optional(ResumeFailure) })),
  permissions: v.array(Permission),
  /** Token expiry, seconds since the epoch. */
  expiresAt: v.number(),
  limits: v.object({
    maxMessageBytes: v.number(),
    publishRatePerSecond: v.number(),
    publishBurst: v.number(),
    /** A socket silent (no ping, no frame) this long is closed with 4004: ping well within it. */
    livenessTimeoutSeconds: v.number(),
    /**
     * Flow control: the most traffic (characters of every frame but pongs) the room
     * sends this connection beyond what `progress` frames confirmed, before it closes
     * it with 4005 `slow_consumer`. Report progress every quarter of it.
     * Optional: servers before flow control do not send it.
     */
    maxUnconfirmedBytes: v.optional(v.number()),
  }),
  /**
   * Feature flags the server exposes, decided for this user in this room at this join
   * (docs/protocol.md §7 `welcome`): stable per user or room, for A/B tests. Optional:
   * servers before flags do not send it.
   */
  features: v.optional(v.record(v.string(), v.boolean())),
});

export const MessageFrame = v.object({ type: v.literal("message"), ...Message.entries });

/** Several messages in one frame, in order (the room batches under load, and pages replays). */
export const MessagesFrame = v.object({ type: v.literal("messages"), messages: v.array(Message) });

export const AckFrame = v.object({
  type: v.literal("ack"),
  id: v.string(),
  seq: Seq,
  /** True when this id was already stored: the original seq is returned, nothing was stored again. */
  duplicate: v.boolean(),
});

export const HistoryFrame = v.object({
  type: v.literal("history"),
  id: v.string(),
  messages: v.array(Message),
  /** True when more messages follow the last one returned. */
  hasMore: v.boolean(),
});

/**
 * A code from the table, or one this version does not know yet (a newer server's):
 * receivers must not fail on it (the protocol tells them to ignore what they do not
 * know), so it decodes, keeps its string, and counts as a generic error. Senders are
 * typed by `ErrorCode` where they build the frame.
 */
export type ErrorFrameCode = ErrorCode | (string & {});
const ErrorCodeSchema = v.custom<ErrorFrameCode>(
  (x) => typeof x === "string" && x.length > 0 && x.length <= 64,
  "code must be a string of 1-64 characters",
);

export const ErrorFrame = v.object({
  type: v.literal("error"),
  code: ErrorCodeSchema,
  message: v.string(),
  /** The id of the client frame this answers, when it had one. */
  id: v.optional(v.string()),
});

export const PongFrame = v.object({ type: v.literal("pong") });

/** The room's full presence, sent once after `welcome` (and its replay). */
export const PresenceStateFrame = v.object({ type: v.literal("presence_state"), members: v.array(Member) });

/**
 * A change to presence: set each member of `joins` and `updates` (full snapshots),
 * delete each user id in `leaves`.
 */
export const PresenceDiffFrame = v.object({
  type: v.literal("presence_diff"),
  joins: v.array(Member),
  updates: v.array(Member),
  leaves: v.array(v.string()),
});

export const RefreshedFrame = v.object({
  type: v.literal("refreshed"),
  id: v.string(),
  /** New token expiry, seconds since the epoch. */
  expiresAt: v.number(),
  permissions: v.array(Permission),
});

/**
 * The server is about to close this connection (drain before a deploy): reconnect
 * after `delayMs` (randomised per connection to spread the load) and resume.
 */
export const ReconnectFrame = v.object({
  type: v.literal("reconnect"),
  delayMs: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /** `"drain"` so far; a reason this version does not know decodes too (and is treated like a drain). */
  reason: v.custom<"drain" | (string & {})>((x) => typeof x === "string" && x.length <= 64, "reason must be a string"),
});

/** A client's ephemeral `broadcast`, as relayed to the other live connections (never stored). */
export const BroadcastedFrame = v.object({
  type: v.literal("broadcast"),
  /** User id (`sub`) of the sender. */
  from: v.string(),
  /** The sending connection (as in presence), so a cursor can be drawn per tab or device. */
  connectionId: v.string(),
  /** Server receive time, ms since the epoch. */
  ts: v.number(),
  data: JsonValue,
});

export const ServerFrame = v.variant("type", [
  WelcomeFrame,
  MessageFrame,
  MessagesFrame,
  AckFrame,
  HistoryFrame,
  ErrorFrame,
  PongFrame,
  PresenceStateFrame,
  PresenceDiffFrame,
  RefreshedFrame,
  ReconnectFrame,
  BroadcastedFrame,
]);
export type ServerFrame = v.InferOutput<typeof ServerFrame>;
export type WelcomeFrame = v.InferOutput<typeof WelcomeFrame>;
export type MessageFrame = v.InferOutput<typeof MessageFrame>;
export type MessagesFrame = v.InferOutput<typeof MessagesFrame>;
export type AckFrame = v.InferOutput<typeof AckFrame>;
export type HistoryFrame = v.InferOutput<typeof HistoryFrame>;
export type ErrorFrame = v.InferOutput<typeof ErrorFrame>;
export type PresenceStateFrame = v.InferOutput<typeof PresenceStateFrame>;
export type PresenceDiffFrame = v.InferOutput<typeof PresenceDiffFrame>;
export type RefreshedFrame = v.InferOutput<typeof RefreshedFrame>;
export type ReconnectFrame = v.InferOutput<typeof ReconnectFrame>;
export type BroadcastedFrame = v.InferOutput<typeof BroadcastedFrame>;
