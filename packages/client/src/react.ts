/**
 * React bindings. Each hook wraps the one stable client of the nearest
 * `RoomcastProvider` with `useSyncExternalStore`.
 *
 * - StrictMode-safe: rooms are reference-counted and released a tick late, so the
 *   mount → unmount → mount of StrictMode reuses one room and opens one socket; a
 *   client the provider owns is closed a tick late too.
 * - Releasing a room never forgets its durable outbox (only an app's own
 *   `room.leave()` does): publishes queued when a component unmounts are sent when
 *   the room is opened again, or by the next page.
 * - SSR-safe: rooms are acquired in effects, which never run on the server, so no
 *   socket is opened there; hooks return empty snapshots until hydration.
 */
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import type { Member, Message } from "@roomcast/protocol";
import { createClient, type ClientOptions, type RoomcastClient } from "./client.js";
import type { ConnectionState } from "./connection.js";
import type { Room } from "./room.js";

const ClientContext = createContext<RoomcastClient | null>(null);

/** Provider-owned clients whose close is scheduled (cancelled by a remount). */
const closing = new WeakMap<RoomcastClient, ReturnType<typeof setTimeout>>();

export interface RoomcastProviderProps {
  /** A client you created; or `options` to let the provider create (and own) one. */
  client?: RoomcastClient;
  options?: ClientOptions;
  children?: ReactNode;
}

export function RoomcastProvider({ client, options, children }: RoomcastProviderProps) {
  // Created once per provider; creating a client opens nothing until a room is used.
  const [owned] = useState(() => (client ? undefined : options ? createClient(options) : undefined));
  const value = client ?? owned;
  if (!value) throw new TypeError("RoomcastProvider needs a `client` or `options`");
  useEffect(() => {
    if (!owned) return undefined;
    const pending = closing.get(owned);
    if (pending !== undefined) clearTimeout(pending);
    closing.delete(owned);
    // A tick late: StrictMode unmounts and remounts the provider with the same client.
    return () => void closing.set(owned, setTimeout(() => owned.close(), 0));
  }, [owned]);
  return createElement(ClientContext.Provider, { value }, children);
}

export function useRoomcastClient(): RoomcastClient {
  const client = useContext(ClientContext);
  if (!client) throw new Error("Roomcast hooks must be used inside <RoomcastProvider>");
  return client;
}

// ---- room reference counting ----------------------------------------------------

/** Each hold keeps its own room: releasing never calls `client.room()`, which would open a new one. */
interface Hold {
  readonly room: Room;
  count: number;
  timer?: ReturnType<typeof setTimeout>;
}

const holds = new WeakMap<RoomcastClient, Map<string, Hold>>();

/**
 * A room held by hooks that was closed meanwhile (`client.close()`, or the app's own
 * `leave()`) stays that room, closed: a hook never opens a new one in its place.
 */
function acquire(client: RoomcastClient, name: string): Room {
  let rooms = holds.get(client);
  if (!rooms) holds.set(client, (rooms = new Map()));
  let hold = rooms.get(name);
  if (!hold) rooms.set(name, (hold = { room: client.room(name), count: 0 }));
  if (hold.timer !== undefined) clearTimeout(hold.timer);
  hold.timer = undefined;
  hold.count++;
  return hold.room;
}

function release(client: RoomcastClient, name: string): void {
  const rooms = holds.get(client);
  const hold = rooms?.get(name);
  if (!rooms || !hold) return;
  hold.count--;
  if (hold.count > 0) return;
  // A tick late: StrictMode (and a quick remount) acquires again before this fires.
  hold.timer = setTimeout(() => {
    if (hold.count !== 0) return;
    rooms.delete(name);
    // An unmount is not the app leaving: durable outbox entries stay for next time.
    hold.room.leave({ keepOutbox: true });
  }, 0);
}

/** The room handle for `name` (undefined during SSR and before the first effect). */
export function useRoom(name: string): Room | undefined {
  const client = useRoomcastClient();
  const [room, setRoom] = useState<Room | undefined>(undefined);
  useEffect(() => {
    setRoom(acquire(client, name));
    return () => release(client, name);
  }, [client, name]);
  return room?.name === name ? room : undefined;
}

// ---- stores over room events ----------------------------------------------------

function useRoomStore<T>(room: Room | undefined, initial: T, subscribe: (room: Room, set: (value: T) => void) => () => void, read: (room: Room) => T): T {
  const store = useMemo(() => {
    let value = room ? read(room) : initial;
    return {
      subscribe: (notify: () => void) => {
        if (!room) return () => {};
        value = read(room);
        return subscribe(room, (next) => {
          value = next;
          notify();
        });
      },
      get: () => value,
    };
    // `read`, `subscribe` and `initial` are stable per hook below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [room]);
  return useSyncExternalStore(store.subscribe, store.get, () => initial);
}

const NO_MESSAGES: Message[] = [];
const NO_MEMBERS: Member[] = [];

/**
 * Messages as delivered (history on join, replay, live): the room's recent buffer,
 * newest last. Starts over (empty, then the new log's replay) after a gap with
 * `reset`, when the server's log is a different one.
 */
export function useMessages(room: Room | undefined): Message[] {
  return useRoomStore(
    room,
    NO_MESSAGES,
    (r, set) => {
      const offMessage = r.on("message", () => set(r.messages));
      const offGap = r.on("gap", () => set(r.messages));
      return () => {
        offMessage();
        offGap();
      };
    },
    (r) => r.messages,
  );
}

/** Current members, one per user, each with their connections. */
export function usePresence(room: Room | undefined): Member[] {
  return useRoomStore(room, NO_MEMBERS, (r, set) => r.on("presence", set), (r) => r.members);
}

const NO_FEATURES: Readonly<Record<string, boolean>> = Object.freeze({});

/**
 * The feature flags the server exposes to this user in this room (`room.features`):
 * `{}` until the first welcome, then each welcome's (stable per user or room, for A/B tests).
 */
export function useFeatures(room: Room | undefined): Readonly<Record<string, boolean>> {
  return useRoomStore(room, NO_FEATURES, (r, set) => r.on("features", set), (r) => r.features);
}

/** The room's connection state ("idle" until the room exists). */
export function useConnectionState(room: Room | undefined): ConnectionState {
  return useRoomStore<ConnectionState>(room, "idle", (r, set) => r.on("state", (c) => set(c.newState)), (r) => r.state);
}
