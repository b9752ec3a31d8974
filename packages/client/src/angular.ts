/**
 * Angular bindings: `provideRoomcast()` and a `RoomcastService` whose room handles
 * expose signals, over the framework-free core in bindings.ts.
 *
 * Plain classes and `inject()`, no decorators: nothing here needs the Angular
 * compiler, so the same build works in AOT apps and JIT tests.
 *
 * - Rooms are reference-counted and left a tick after the last handle is
 *   released, so a route change that destroys one component and creates another
 *   for the same room reuses one room and one socket.
 * - SSR-safe: on the server platform no room is acquired (no socket is opened);
 *   handles stay "idle" and empty.
 */
import {
  DestroyRef,
  effect,
  inject,
  InjectionToken,
  Injector,
  makeEnvironmentProviders,
  PLATFORM_ID,
  signal,
  untracked,
  type EnvironmentProviders,
  type Signal,
} from "@angular/core";
import type { Member, Message } from "@roomcast/protocol";
import { acquireRoom, EMPTY_SNAPSHOT, roomView, type BindingClient, type BoundRoom, type RoomLease, type RoomSnapshot } from "./bindings.js";
import { createClient, type ClientOptions } from "./client.js";
import type { ConnectionState } from "./connection.js";
import { RoomcastClientError } from "./errors.js";
import type { OutboxEntry, PublishAck } from "./outbox.js";
import type { HistoryPage, PublishOptions } from "./room.js";

export type { BindingClient, BoundRoom, RoomSnapshot } from "./bindings.js";

export interface RoomcastConfig {
  /** A client you created; or `options` to let the service create (and own) one. */
  client?: BindingClient;
  options?: ClientOptions;
}

export const ROOMCAST_CONFIG = new InjectionToken<RoomcastConfig>("RoomcastConfig");

/**
 * Providers for `bootstrapApplication(App, { providers: [provideRoomcast({ client })] })`
 * (or a route's `providers`). A client the service created is closed when its
 * injector is destroyed.
 */
export function provideRoomcast(config: RoomcastConfig): EnvironmentProviders {
  if (!config || (!config.client && !config.options)) throw new TypeError("provideRoomcast needs a `client` or `options`");
  return makeEnvironmentProviders([
    { provide: ROOMCAST_CONFIG, useValue: config },
    { provide: RoomcastService, useFactory: () => new RoomcastService() },
  ]);
}

/** The client of `provideRoomcast`, and room handles with signals. */
export class RoomcastService {
  readonly client: BindingClient;
  /** False on the server platform: handles acquire no room there. */
  readonly #browser: boolean;

  /** Created by `provideRoomcast` (in an injection context). */
  constructor() {
    const config = inject(ROOMCAST_CONFIG, { optional: true });
    if (!config) throw new Error("RoomcastService needs provideRoomcast({ client }) in the application's providers");
    this.client = config.client ?? createClient(config.options!);
    this.#browser = inject(PLATFORM_ID) !== "server";
    const owned = !config.client;
    if (owned) inject(DestroyRef).onDestroy(() => this.client.close());
  }

  /**
   * A handle on room `name`, holding the room until you call `release()` (from
   * an injection context, prefer `injectRoom`, which releases on destroy).
   */
  room(name: string): RoomcastRoom {
    const handle = new RoomcastRoom(this.client, this.#browser);
    handle.open(name);
    return handle;
  }
}

/**
 * In an injection context (a component's field or constructor): a handle on room
 * `name`, released when the component (or service) is destroyed. `name` may be
 * a signal (or a function reading signals): a new name leaves the old room and
 * opens the new one.
 */
export function injectRoom(name: string | Signal<string> | (() => string)): RoomcastRoom {
  const service = inject(RoomcastService, { optional: true });
  if (!service) throw new Error("injectRoom needs provideRoomcast({ client }) in the application's providers");
  const destroyRef = inject(DestroyRef);
  if (typeof name === "string") {
    const handle = service.room(name);
    destroyRef.onDestroy(() => handle.release());
    return handle;
  }
  const read = name;
  const handle = new RoomcastRoom(service.client, inject(PLATFORM_ID) !== "server");
  // The first run comes with the first change detection, like a React effect.
  const watcher = effect(
    () => {
      const next = read();
      untracked(() => handle.open(next));
    },
    { injector: inject(Injector) },
  );
  destroyRef.onDestroy(() => {
    watcher.destroy();
    handle.release();
  });
  return handle;
}

/** One component's hold on a room: signals of what it shows, and the room's actions. */
export class RoomcastRoom {
  readonly #client: BindingClient;
  readonly #browser: boolean;
  #lease: RoomLease | undefined;
  #unsubscribe: (() => void) | undefined;
  #released = false;
  readonly #room = signal<BoundRoom | undefined>(undefined);
  readonly #snapshot = signal<RoomSnapshot>(EMPTY_SNAPSHOT);
  /** Sets the snapshot and every part signal. */
  readonly #apply: (snapshot: RoomSnapshot) => void;

  /** The room (undefined on the server, before a signal name's first run, and after `release()`). */
  readonly room: Signal<BoundRoom | undefined> = this.#room.asReadonly();
  /** The snapshot of all parts below; each part's signal changes only when that part does. */
  readonly snapshot: Signal<RoomSnapshot> = this.#snapshot.asReadonly();
  readonly state: Signal<ConnectionState>;
  /** Messages as delivered (history on join, replay, live): the room's recent buffer, newest last. */
  readonly messages: Signal<Message[]>;
  /** Current members, one per user, each with their connections. */
  readonly members: Signal<Member[]>;
  /** Publishes waiting for an ack, oldest first. */
  readonly pending: Signal<OutboxEntry[]>;
  /** The user id the server knows us as (after the first welcome). */
  readonly userId: Signal<string | undefined>;
  /** The feature flags the server exposes to this user in this room (`room.features`; `{}` until the first welcome). */
  readonly features: Signal<Readonly<Record<string, boolean>>>;

  /** @internal Use `RoomcastService.room()` or `injectRoom()`. */
  constructor(client: BindingClient, browser: boolean) {
    this.#client = client;
    this.#browser = browser;
    // Part signals are plain signals set from the snapshot (not `computed`), so a
    // template that reads one part is not re-checked when another part changes.
    const part = <T>(pick: (s: RoomSnapshot) => T) => {
      const value = signal(pick(EMPTY_SNAPSHOT));
      return { value, set: (s: RoomSnapshot) => value.set(pick(s)) };
    };
    const parts = [part((s) => s.state), part((s) => s.messages), part((s) => s.members), part((s) => s.pending), part((s) => s.userId), part((s) => s.features)] as const;
    this.state = parts[0].value.asReadonly();
    this.messages = parts[1].value.asReadonly();
    this.members = parts[2].value.asReadonly();
    this.pending = parts[3].value.asReadonly();
    this.userId = parts[4].value.asReadonly();
    this.features = parts[5].value.asReadonly();
    this.#apply = (s) => {
      this.#snapshot.set(s);
      for (const p of parts) p.set(s);
    };
  }

  /** The room's name (undefined while there is no room). */
  get name(): string | undefined {
    return this.#lease?.name;
  }

  /** @internal Switches this handle to room `name` (acquire first, then release the old one). */
  open(name: string): void {
    if (this.#released || !this.#browser || this.#lease?.name === name) return;
    const lease = acquireRoom(this.#client, name);
    this.#detach();
    this.#lease = lease;
    const view = roomView(lease.room);
    this.#unsubscribe = view.subscribe(this.#apply);
    this.#room.set(lease.room);
    this.#apply(view.snapshot);
  }

  /** Gives the room back (it is left a tick after its last holder); the handle is empty afterwards. Safe to call twice. */
  release(): void {
    this.#released = true;
    this.#detach();
    this.#room.set(undefined);
    this.#apply(EMPTY_SNAPSHOT);
  }

  /** `room.publish`, keeping `pending` current. Rejects with `room_closed` while there is no room. */
  publish(data: unknown, options?: PublishOptions): Promise<PublishAck> {
    const room = this.#lease?.room;
    if (!room) return Promise.reject(noRoom());
    return roomView(room).publish(data, options);
  }

  /** Sets this connection's presence state (ignored while there is no room). */
  setPresence(state: unknown): void {
    this.#lease?.room.setPresence(state);
  }

  /** A page of stored messages; rejects with `room_closed` while there is no room. */
  history(options?: { after?: number; limit?: number }): Promise<HistoryPage> {
    const room = this.#lease?.room;
    if (!room) return Promise.reject(noRoom());
    return room.history(options);
  }

  #detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#lease?.release();
    this.#lease = undefined;
  }
}

function noRoom(): RoomcastClientError {
  return new RoomcastClientError("room_closed", "no room: the handle was released, or this is the server");
}
