/**
 * The framework-free core of the UI bindings (Vue, Angular; React could use it
 * too): reference-counted rooms, and one immutable snapshot per room of what a
 * UI shows, replaced when any part of it changes.
 *
 * - Leases: every component that shows a room holds a lease; the room is left a
 *   tick after the last lease is released, so an unmount followed by a mount of
 *   the same room (a route change, React StrictMode, a Vue `v-if` flip) reuses
 *   one room and one socket. A hold keeps its own room object: neither a new lease
 *   nor a release ever opens a new room in place of one that was closed meanwhile
 *   (`client.close()`, the app's own `leave()`). Releasing leaves the room with
 *   `keepOutbox`: publishes queued in a durable outbox are sent when the room is
 *   opened again, or by the next page.
 * - Views: a snapshot `{ state, messages, members, pending, userId, features }` whose parts
 *   keep their identity while unchanged, so frameworks re-render only what changed.
 */
import type { Member, Message } from "@roomcast/protocol";
import type { ConnectionState } from "./connection.js";
import type { OutboxEntry, PublishAck } from "./outbox.js";
import type { PublishOptions, Room, RoomEvents } from "./room.js";

/**
 * The room surface the bindings use (contract C4): a `Room`, or any handle with
 * the same surface (such as a room shared across tabs).
 */
export type BoundRoom = Pick<
  Room,
  "name" | "state" | "members" | "messages" | "position" | "userId" | "features" | "pending" | "publish" | "setPresence" | "history" | "leave" | "on"
>;

/** What the bindings need of a client: a `RoomcastClient`, whatever handle type its `room()` returns. */
export interface BindingClient<R extends BoundRoom = BoundRoom> {
  room(name: string): R;
  close(): void;
}

// ---- leases ------------------------------------------------------------------

export interface RoomLease<R extends BoundRoom = BoundRoom> {
  readonly name: string;
  readonly room: R;
  /** Gives the lease back; the room is left a tick after its last lease. Safe to call twice. */
  release(): void;
}

interface Hold {
  room: BoundRoom;
  count: number;
  timer?: ReturnType<typeof setTimeout>;
}

const holds = new WeakMap<BindingClient, Map<string, Hold>>();

/** Takes a lease on `client.room(name)`; throws the client's TypeError for an invalid name. */
export function acquireRoom<R extends BoundRoom>(client: BindingClient<R>, name: string): RoomLease<R> {
  let rooms = holds.get(client);
  if (!rooms) holds.set(client, (rooms = new Map()));
  let hold = rooms.get(name);
  if (!hold) {
    hold = { room: client.room(name), count: 0 };
    rooms.set(name, hold);
  }
  if (hold.timer !== undefined) clearTimeout(hold.timer);
  hold.timer = undefined;
  hold.count++;
  const held = hold;
  const map = rooms;
  let released = false;
  return {
    name,
    room: held.room as R, // every hold of this client was made by its room()
    release: () => {
      if (released) return;
      released = true;
      held.count--;
      if (held.count > 0) return;
      held.timer = setTimeout(() => {
        if (held.count > 0) return;
        if (map.get(name) === held) map.delete(name);
        // An unmount is not the app leaving: durable outbox entries stay for next time.
        // (A no-op if the app, or client.close(), left the room already.)
        held.room.leave({ keepOutbox: true });
      }, 0);
    },
  };
}

// ---- snapshots ---------------------------------------------------------------

export interface RoomSnapshot {
  readonly state: ConnectionState;
  /** `room.messages`: the recent buffer, oldest first. */
  readonly messages: Message[];
  readonly members: Member[];
  /** Publishes waiting for an ack, oldest first. */
  readonly pending: OutboxEntry[];
  /** The user id of the last welcome (undefined before it). */
  readonly userId: string | undefined;
  /** `room.features`: the feature flags of the last welcome (`{}` before it). */
  readonly features: Readonly<Record<string, boolean>>;
}

/** What a UI shows before a room exists (server rendering, before mount). */
export const EMPTY_SNAPSHOT: RoomSnapshot = Object.freeze({
  state: "idle",
  messages: Object.freeze([]) as unknown as Message[],
  members: Object.freeze([]) as unknown as Member[],
  pending: Object.freeze([]) as unknown as OutboxEntry[],
  userId: undefined,
  features: Object.freeze({}),
});

export interface RoomView {
  readonly room: BoundRoom;
  /** The current snapshot: the same object until something in it changed. */
  readonly snapshot: RoomSnapshot;
  /** Calls `listener` with each new snapshot; returns the unsubscribe function. */
  subscribe(listener: (snapshot: RoomSnapshot) => void): () => void;
  /** `room.publish`, and the snapshot follows the outbox (which raises no event of its own on a push or a rejection). */
  publish(data: unknown, options?: PublishOptions): Promise<PublishAck>;
  /** Re-reads the room; notifies if anything changed. */
  refresh(): void;
}

/** Every room event: any of them may change a part of the snapshot. */
const EVENTS: readonly (keyof RoomEvents)[] = ["state", "message", "presence", "recovered", "gap", "ack", "publish_failed", "restored", "error", "features"];

const views = new WeakMap<BoundRoom, RoomView>();

/** The one view of `room` (created on first use). */
export function roomView(room: BoundRoom): RoomView {
  let view = views.get(room);
  if (!view) views.set(room, (view = createView(room)));
  return view;
}

function createView(room: BoundRoom): RoomView {
  let current = read(room, undefined);
  const listeners = new Set<(snapshot: RoomSnapshot) => void>();
  let unsubscribe: (() => void) | undefined;

  const refresh = () => {
    const next = read(room, current);
    if (next === current) return;
    current = next;
    for (const listener of [...listeners]) listener(next);
  };
  // The room emits some events before it finished applying the frame (`state`
  // "connected" comes before the welcome's userId is stored): look again once the
  // frame is done. One follow-up per burst of events.
  let again = false;
  const onEvent = () => {
    refresh();
    if (again) return;
    again = true;
    queueMicrotask(() => {
      again = false;
      if (unsubscribe) refresh();
    });
  };

  return {
    room,
    get snapshot() {
      // Unwatched, nothing keeps it current: read now.
      if (!unsubscribe) current = read(room, current);
      return current;
    },
    subscribe(listener) {
      if (!unsubscribe) {
        current = read(room, current);
        const offs = EVENTS.map((event) => room.on(event, onEvent));
        unsubscribe = () => offs.forEach((off) => off());
      }
      listeners.add(listener);
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0) return;
        unsubscribe?.();
        unsubscribe = undefined;
      };
    },
    publish(data, options) {
      const promise = room.publish(data, options);
      refresh();
      promise.then(refresh, refresh);
      return promise;
    },
    refresh,
  };
}

/** A new snapshot if anything differs from `prev` (parts that did not change keep their identity), else `prev`. */
function read(room: BoundRoom, prev: RoomSnapshot | undefined): RoomSnapshot {
  const state = room.state;
  const messages = room.messages;
  const members = keep(prev?.members, room.members);
  const pending = keep(prev?.pending, room.pending);
  const userId = room.userId;
  // A room that predates flags (another RoomHandle implementation) has none.
  const features = room.features ?? EMPTY_SNAPSHOT.features;
  if (prev && prev.state === state && prev.messages === messages && prev.members === members && prev.pending === pending && prev.userId === userId && prev.features === features) {
    return prev;
  }
  return { state, messages, members, pending, userId, features };
}

/** `prev` if `next` holds the same items in the same order (the room builds a new array on every read). */
function keep<T>(prev: T[] | undefined, next: T[]): T[] {
  if (prev && prev.length === next.length && prev.every((item, i) => item === next[i])) return prev;
  return next;
}
