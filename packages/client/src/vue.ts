/**
 * Vue 3 bindings: a plugin that provides one client to the app, and composables
 * over the framework-free core in bindings.ts.
 *
 * - Rooms are reference-counted and left a tick after the last component using
 *   them unmounts, so a `v-if` flip or a route change to the same room reuses one
 *   room and one socket.
 * - SSR-safe: in a component, rooms are acquired in `onMounted`, which never runs
 *   on the server, so no socket is opened there; composables return empty values
 *   until the component mounts in the browser.
 */
import {
  computed,
  getCurrentInstance,
  inject,
  onMounted,
  onScopeDispose,
  onUnmounted,
  shallowRef,
  toValue,
  watch,
  type App,
  type ComputedRef,
  type InjectionKey,
  type MaybeRefOrGetter,
  type Plugin,
} from "vue";
import type { Member, Message } from "@roomcast/protocol";
import { acquireRoom, EMPTY_SNAPSHOT, roomView, type BindingClient, type BoundRoom, type RoomLease, type RoomSnapshot } from "./bindings.js";
import { createClient, type ClientOptions } from "./client.js";
import type { ConnectionState } from "./connection.js";
import { RoomcastClientError } from "./errors.js";
import type { OutboxEntry, PublishAck } from "./outbox.js";
import type { PublishOptions } from "./room.js";

export type { BindingClient, BoundRoom, RoomSnapshot } from "./bindings.js";

/** The injection key of the client (for `provide(ROOMCAST_CLIENT, client)` in a subtree). */
export const ROOMCAST_CLIENT: InjectionKey<BindingClient> = Symbol("roomcast client");

export interface RoomcastPluginOptions {
  /** A client you created; or `options` to let the plugin create (and own) one. */
  client?: BindingClient;
  options?: ClientOptions;
}

/**
 * `app.use(createRoomcast({ client }))` or `app.use(createRoomcast({ options }))`.
 * A client the plugin created is closed when the app unmounts. Creating a client
 * opens nothing until a room is used.
 */
export function createRoomcast(init: RoomcastPluginOptions): Plugin {
  if (!init || (!init.client && !init.options)) throw new TypeError("createRoomcast needs a `client` or `options`");
  return {
    install(app: App) {
      const client = init.client ?? createClient(init.options!);
      app.provide(ROOMCAST_CLIENT, client);
      if (!init.client) app.onUnmount(() => client.close());
    },
  };
}

/** The client provided by `createRoomcast` (or `provide(ROOMCAST_CLIENT, …)`). */
export function useRoomcastClient(): BindingClient {
  const client = inject(ROOMCAST_CLIENT, null);
  if (!client) throw new Error("Roomcast composables need app.use(createRoomcast({ client })) (or provide(ROOMCAST_CLIENT, client))");
  return client;
}

/**
 * The room handle for `name` (a string, ref or getter: a new name leaves the old
 * room and opens the new one). Undefined until mounted, and during SSR. Outside a
 * component (in an `effectScope`), the room is acquired at once and released when
 * the scope stops.
 */
export function useRoom(name: MaybeRefOrGetter<string>): ComputedRef<BoundRoom | undefined> {
  const client = useRoomcastClient();
  const room = shallowRef<BoundRoom | undefined>(undefined);
  let lease: RoomLease | undefined;
  let active = false;
  const open = (next: string) => {
    if (lease?.name === next) return;
    const previous = lease;
    // Acquire before releasing, so a failing name keeps nothing half-open.
    lease = acquireRoom(client, next);
    previous?.release();
    room.value = lease.room;
  };
  const close = () => {
    active = false;
    lease?.release();
    lease = undefined;
    room.value = undefined;
  };
  watch(
    () => toValue(name),
    (next) => {
      if (active) open(next);
    },
  );
  if (getCurrentInstance()) {
    onMounted(() => {
      active = true;
      open(toValue(name));
    });
    onUnmounted(close);
  } else {
    active = true;
    open(toValue(name));
    onScopeDispose(close);
  }
  return computed(() => room.value);
}

/** A ref to one part of the room's snapshot, following the room (a ref or getter too). */
function useSnapshot<T>(room: MaybeRefOrGetter<BoundRoom | undefined>, pick: (snapshot: RoomSnapshot) => T): ComputedRef<T> {
  const value = shallowRef<T>(pick(EMPTY_SNAPSHOT));
  watch(
    () => toValue(room),
    (current, _old, onCleanup) => {
      if (!current) {
        value.value = pick(EMPTY_SNAPSHOT);
        return;
      }
      const view = roomView(current);
      onCleanup(view.subscribe((snapshot) => (value.value = pick(snapshot))));
      value.value = pick(view.snapshot);
    },
    { immediate: true },
  );
  return computed(() => value.value);
}

/** Messages as delivered (history on join, replay, live): the room's recent buffer, newest last. */
export function useMessages(room: MaybeRefOrGetter<BoundRoom | undefined>): ComputedRef<Message[]> {
  return useSnapshot(room, (s) => s.messages);
}

/** Current members, one per user, each with their connections. */
export function usePresence(room: MaybeRefOrGetter<BoundRoom | undefined>): ComputedRef<Member[]> {
  return useSnapshot(room, (s) => s.members);
}

/** The room's connection state ("idle" until the room exists). */
export function useConnectionState(room: MaybeRefOrGetter<BoundRoom | undefined>): ComputedRef<ConnectionState> {
  return useSnapshot(room, (s) => s.state);
}

/** Publishes waiting for an ack, oldest first (what a UI shows as "sending…"). */
export function usePending(room: MaybeRefOrGetter<BoundRoom | undefined>): ComputedRef<OutboxEntry[]> {
  return useSnapshot(room, (s) => s.pending);
}

/** The user id the server knows us as (after the first welcome). */
export function useUserId(room: MaybeRefOrGetter<BoundRoom | undefined>): ComputedRef<string | undefined> {
  return useSnapshot(room, (s) => s.userId);
}

/** The feature flags the server exposes to this user in this room (`room.features`; `{}` until the first welcome). */
export function useFeatures(room: MaybeRefOrGetter<BoundRoom | undefined>): ComputedRef<Readonly<Record<string, boolean>>> {
  return useSnapshot(room, (s) => s.features);
}

/**
 * A `publish(data, options)` for the room, which keeps `usePending` current.
 * Before the room exists (not mounted yet, or SSR) it rejects with `room_closed`.
 */
export function usePublish(room: MaybeRefOrGetter<BoundRoom | undefined>): (data: unknown, options?: PublishOptions) => Promise<PublishAck> {
  return (data, options) => {
    const current = toValue(room);
    if (!current) return Promise.reject(new RoomcastClientError("room_closed", "the room is not open (the component is not mounted)"));
    return roomView(current).publish(data, options);
  };
}
