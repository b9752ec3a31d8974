/**
 * What tabs of one group say to each other over their BroadcastChannel. Every
 * message received is validated here first: another tab may run an older or newer
 * build of the app, and a BroadcastChannel carries whatever any script of the
 * origin posts on it.
 */
import { Member, Message } from "@roomcast/protocol";
import * as v from "valibot";

/** Bumped on any incompatible change; tabs ignore messages of another version. */
export const WIRE_VERSION = 1;

const TabId = v.pipe(v.string(), v.minLength(1), v.maxLength(100));
const Seq = v.pipe(v.number(), v.integer(), v.minValue(0));
const ConnectionState = v.picklist(["idle", "connecting", "connected", "reconnecting", "closed", "failed"]);
/** A RoomcastClientError as plain data (structured clone drops the class). */
export const WireError = v.object({ code: v.string(), message: v.string(), sent: v.optional(v.boolean()) });
export type WireError = v.InferOutput<typeof WireError>;
const Ack = v.object({ id: v.string(), seq: Seq, duplicate: v.boolean() });
const Entry = v.object({ id: v.string(), data: v.unknown(), createdAt: v.number() });
/** `room.features`: the feature flags of the leader's latest welcome (as the protocol's welcome has them). */
const Features = v.record(v.string(), v.boolean());
const GapInfo = v.object({ reason: v.picklist(["epoch_changed", "trimmed", "ahead"]), epoch: v.string(), from: Seq, reset: v.optional(v.boolean()) });

const Ms = v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(86_400_000)));
const Count = v.pipe(v.number(), v.integer(), v.minValue(0));
const Latency = { p50: Ms, p90: Ms, p99: Ms, count: Count, samples: Count };
/** The leader room's `stats()` (the tab's own state replaces `state`). */
const Stats = v.object({
  rtt: v.object({ last: Ms, ...Latency }),
  publishAck: v.object(Latency),
  reconnects: Count,
  state: ConnectionState,
  since: v.number(),
});

const base = { v: v.literal(WIRE_VERSION), from: TabId };

/** Leader → everyone. */
const LeaderMessages = [
  /** A tab took the lock and serves the group now. */
  v.object({ ...base, t: v.literal("leader") }),
  /** The leader is going away (leave or page hide): a new one follows. */
  v.object({ ...base, t: v.literal("bye") }),
  /** Everything a tab needs to join the group, for `to` (answer to `hello`). */
  v.object({
    ...base,
    t: v.literal("snapshot"),
    to: TabId,
    state: ConnectionState,
    members: v.array(Member),
    userId: v.optional(v.string()),
    epoch: v.optional(v.string()),
    seq: Seq,
    messages: v.array(Message),
    presence: v.optional(v.unknown()),
    /** Entries restored from the durable outbox that no tab submitted, still unacked. */
    restored: v.optional(v.array(Entry)),
    /** The leader room's `features` (absent from an older build: none yet). */
    features: v.optional(Features),
  }),
  v.object({ ...base, t: v.literal("state"), oldState: ConnectionState, newState: ConnectionState, retryInMs: v.optional(v.number()), error: v.optional(WireError), userId: v.optional(v.string()) }),
  v.object({ ...base, t: v.literal("message"), epoch: v.string(), message: Message }),
  /** The log goes on after `gap.from`; with `reset`, it is another log and starts over (messages emptied). */
  v.object({ ...base, t: v.literal("gap"), gap: GapInfo }),
  v.object({ ...base, t: v.literal("recovered"), epoch: v.string(), seq: Seq }),
  /** The leader's room loaded these from the durable outbox (a previous page's publishes). */
  v.object({ ...base, t: v.literal("restored"), entries: v.array(Entry) }),
  v.object({ ...base, t: v.literal("presence"), members: v.array(Member) }),
  /** After each of the leader room's welcomes (an older build's tab ignores it: unknown `t`). */
  v.object({ ...base, t: v.literal("features"), features: Features }),
  /** The leader room's latency numbers, after each of its pongs. */
  v.object({ ...base, t: v.literal("stats"), stats: Stats }),
  v.object({ ...base, t: v.literal("ack"), ack: Ack }),
  v.object({ ...base, t: v.literal("error"), error: WireError }),
  v.object({ ...base, t: v.literal("publish_failed"), id: v.string(), data: v.unknown(), error: WireError, kept: v.boolean() }),
  /** The outcome of `to`'s publish or history request `req`. */
  v.object({ ...base, t: v.literal("result"), to: TabId, req: v.string(), ack: v.optional(Ack), page: v.optional(v.object({ messages: v.array(Message), hasMore: v.boolean() })), error: v.optional(WireError) }),
] as const;

/** Any tab → the leader (and, being a broadcast, everyone). */
const TabMessages = [
  v.object({ ...base, t: v.literal("hello") }),
  v.object({ ...base, t: v.literal("publish"), id: v.string(), data: v.unknown() }),
  v.object({ ...base, t: v.literal("history"), req: v.string(), after: v.optional(Seq), limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))) }),
  /** The group's presence state (one connection, so one state: the last one set wins). */
  v.object({ ...base, t: v.literal("presence-set"), state: v.unknown() }),
] as const;

export const TabMessage = v.variant("t", [...LeaderMessages, ...TabMessages]);
export type TabMessage = v.InferOutput<typeof TabMessage>;

/** Distributes `Omit` over the union, so each variant keeps its own fields. */
type Body<T> = T extends unknown ? Omit<T, "v" | "from"> : never;
export type TabMessageBody = Body<TabMessage>;

/** The message, or undefined for anything that is not a valid message of this version. */
export function decodeTabMessage(data: unknown): TabMessage | undefined {
  const result = v.safeParse(TabMessage, data);
  return result.success ? result.output : undefined;
}
