/**
 * Every frame of protocol `roomcast.v1`, as valibot schemas. Types are derived from
 * the schemas so the validator and the type can never drift apart.
 */
import * as v from "valibot";
import { ERRORS, type ErrorCode } from "./errors.js";
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

export const ClientFrame = v.variant("type", [PublishFrame, HistoryRequestFrame, PingFrame]);
export type ClientFrame = v.InferOutput<typeof ClientFrame>;
export type PublishFrame = v.InferOutput<typeof PublishFrame>;
export type HistoryRequestFrame = v.InferOutput<typeof HistoryRequestFrame>;

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
  /** How many `message` frames of recent history follow before live messages. */
  replay: v.pipe(v.number(), v.integer(), v.minValue(0)),
  permissions: v.array(Permission),
  /** Token expiry, seconds since the epoch. */
  expiresAt: v.number(),
  limits: v.object({
    maxMessageBytes: v.number(),
    publishRatePerSecond: v.number(),
    publishBurst: v.number(),
  }),
});

export const MessageFrame = v.object({ type: v.literal("message"), ...Message.entries });

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

const ErrorCodeSchema = v.picklist(Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]]);

export const ErrorFrame = v.object({
  type: v.literal("error"),
  code: ErrorCodeSchema,
  message: v.string(),
  /** The id of the client frame this answers, when it had one. */
  id: v.optional(v.string()),
});

export const PongFrame = v.object({ type: v.literal("pong") });

export const ServerFrame = v.variant("type", [
  WelcomeFrame,
  MessageFrame,
  AckFrame,
  HistoryFrame,
  ErrorFrame,
  PongFrame,
]);
export type ServerFrame = v.InferOutput<typeof ServerFrame>;
export type WelcomeFrame = v.InferOutput<typeof WelcomeFrame>;
export type MessageFrame = v.InferOutput<typeof MessageFrame>;
export type AckFrame = v.InferOutput<typeof AckFrame>;
export type HistoryFrame = v.InferOutput<typeof HistoryFrame>;
export type ErrorFrame = v.InferOutput<typeof ErrorFrame>;
