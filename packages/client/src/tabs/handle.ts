/**
 * `RoomHandle`: the public surface of a room (contract C4), implemented by `Room`
 * (one socket in this tab) and by `SharedRoom` (one socket for all tabs of the
 * origin). Framework bindings and apps that want to accept either type against this.
 */
import type { Member, Message } from "@roomcast/protocol";
import type { ConnectionState } from "../connection.js";
import type { Listener } from "../emitter.js";
import type { OutboxEntry, PublishAck } from "../outbox.js";
import type { HistoryPage, PublishOptions, RoomEvents } from "../room.js";
import type { RoomStats } from "../stats.js";

export interface RoomHandle {
  readonly name: string;
  readonly state: ConnectionState;
  /** Current members, one per user. */
  readonly members: Member[];
  /** The most recent messages delivered (a new array after each one), oldest first. */
  readonly messages: Message[];
  /** The position this handle has delivered up to. */
  readonly position: { epoch: string | undefined; seq: number };
  /** The user id the server knows us as (after the first welcome). */
  readonly userId: string | undefined;
  /** The feature flags of the latest welcome (`{}` before it, frozen): docs/client.md. */
  readonly features: Readonly<Record<string, boolean>>;
  /** Publishes of this handle waiting for an ack, oldest first. */
  readonly pending: OutboxEntry[];
  publish(data: unknown, options?: PublishOptions): Promise<PublishAck>;
  setPresence(state: unknown): void;
  history(options?: { after?: number; limit?: number }): Promise<HistoryPage>;
  /** Client-side latency (RTT, publish→ack), reconnects and state: docs/client.md, "Latency and stats". */
  stats(): RoomStats;
  /** Leaves for good; `{ keepOutbox: true }` keeps durable outbox entries for a later session. */
  leave(options?: { keepOutbox?: boolean }): void;
  on<K extends keyof RoomEvents>(event: K, listener: Listener<RoomEvents[K]>): () => void;
  off<K extends keyof RoomEvents>(event: K, listener: Listener<RoomEvents[K]>): void;
}

/** What the client drives on every room it holds (browser network and visibility signals). */
export interface ManagedRoom extends RoomHandle {
  /** @internal */
  nudge(kind: "online" | "offline" | "visible"): void;
  /** @internal Called after each new RTT sample (what a leader tab relays); returns the unsubscribe. */
  onStats(listener: () => void): () => void;
}
