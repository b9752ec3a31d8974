/**
 * One room's view of the flags: `welcome.features` for each connection, and the room-level
 * flags that gate its own behaviour, re-applied whenever the flags in force change (a new
 * read of the overrides, a new room name). Costs a number compare per message while
 * nothing changed; never sets a timer, so an idle room stays idle.
 */
import { describeError, log } from "../log.js";
import { builtinFlags, featuresFor, roomFlag, type EffectiveFlag, type Flags } from "./flags.js";

/** What the room does with its room-level flags (called at start and after each change). */
export type ApplyFlags = (on: (name: string) => boolean, flags: ReadonlyMap<string, EffectiveFlag>) => void;

export class RoomFlags {
  readonly #flags: Flags;
  readonly #room: () => string | undefined;
  readonly #apply: ApplyFlags;
  #applied: ReadonlyMap<string, EffectiveFlag> | undefined;
  #appliedRoom: string | undefined;

  constructor(flags: Flags, room: () => string | undefined, apply: ApplyFlags) {
    this.#flags = flags;
    this.#room = room;
    this.#apply = apply;
    // Built inside the room's constructor (blockConcurrencyWhile): a throw here would reset the
    // room on every start. Whatever goes wrong, the room starts with the built-in defaults.
    try {
      this.sync();
    } catch (err) {
      log("error", "flags.init_failed", { error: describeError(err), message: "the room starts with the built-in flag defaults" });
      const builtins = builtinFlags();
      const room = this.#room() ?? "";
      this.#applied = undefined; // try the real flags again on the next sync
      try {
        this.#apply((name) => roomFlag(builtins, name, room), builtins);
      } catch {
        // Nothing more to fall back to: the room's own defaults stay.
      }
    }
  }

  /** Re-applies the room-level flags if the flags in force or the room's name changed. */
  sync(): void {
    const current = this.#flags.current();
    const room = this.#room() ?? "";
    if (current === this.#applied && room === this.#appliedRoom) return;
    this.#applied = current;
    this.#appliedRoom = room;
    this.#apply((name) => roomFlag(current, name, room), current);
  }

  /**
   * Before a connect: with a stale cache, starts a read and applies it when it answers;
   * waits for it (bounded) only when nothing was read yet in this isolate or after an admin
   * change here (OverrideCache.fresh), otherwise the welcome uses the last value.
   */
  async fresh(): Promise<void> {
    const cache = this.#flags.cache;
    if (cache.stale) void cache.refreshIfStale().then(() => this.sync()).catch((err: unknown) => log("error", "flags.apply_failed", { error: describeError(err) }));
    await cache.fresh();
    this.sync();
  }

  /** On room activity (a stored message): starts a read if the cache is stale; applies it when it answers. */
  activity(): void {
    if (this.#flags.cache.stale) void this.#flags.cache.refreshIfStale().then(() => this.sync());
    else this.sync();
  }

  /** The exposed flags' values for this user in this room. */
  features(userId: string): Record<string, boolean> {
    this.sync();
    return featuresFor(this.#flags.current(), this.#room() ?? "", userId);
  }
}

/**
 * `adaptive_batching` (room-level, default on): the broadcaster's adaptive window
 * (broadcaster.ts, issue #15) on or off for this room.
 */
export function applyAdaptiveBatching(broadcaster: object, on: boolean): void {
  // The property is the broadcaster's own contract (`adaptive`, settable); a build without it has nothing to switch.
  if ("adaptive" in broadcaster) (broadcaster as { adaptive: boolean }).adaptive = on;
}
