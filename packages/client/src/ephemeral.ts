/**
 * Ephemeral broadcasts (docs/client.md, "Ephemeral broadcasts"; docs/protocol.md
 * §6.4): traffic that must not be stored (cursors, typing, game state). Volatile,
 * like Socket.IO's volatile emits: a broadcast that cannot go out now is dropped,
 * never queued, so that a reconnect never replays a burst of stale cursor positions.
 */
import type { BroadcastedFrame } from "@roomcast/protocol";
import { Emitter } from "./emitter.js";

/** A broadcast from another connection of the room (the sender never gets its own). */
export interface Broadcast {
  /** The sender's user id (`sub`); another tab of yours too. */
  readonly from: string;
  /** The sending connection, as listed in presence (one per tab or device). */
  readonly connectionId: string;
  /** Server receive time, ms since the epoch. */
  readonly ts: number;
  readonly data: unknown;
}

/** Our broadcast frames carry ids with this prefix: the server echoes one only on a refusal. */
const ID_PREFIX = "bc.";

export class Broadcasts extends Emitter<{ broadcast: Broadcast }> {
  #counter = 0;

  /**
   * The frame for `data`. Throws like `publish` rejects: a TypeError for data that is
   * not JSON, a `message_too_large` RoomcastClientError (built by the caller's `tooLarge`).
   */
  frame(data: unknown, maxBytes: number, tooLarge: (max: number) => Error): string {
    let json: string | undefined;
    try {
      json = JSON.stringify(data);
    } catch (cause) {
      throw new TypeError("broadcast data must be JSON-serialisable", { cause });
    }
    if (json === undefined) throw new TypeError("broadcast data must be a JSON value (not undefined or a function)");
    // UTF-8 is at most 3 bytes per UTF-16 unit: encode only when it could be too large.
    if (json.length * 3 > maxBytes && new TextEncoder().encode(json).byteLength > maxBytes) throw tooLarge(maxBytes);
    const id = ID_PREFIX + (this.#counter++ % 1e9).toString(36);
    return `{"type":"broadcast","id":"${id}","data":${json}}`;
  }

  /** Whether an error frame's id is one of our broadcasts. */
  owns(id: string): boolean {
    return id.startsWith(ID_PREFIX);
  }

  /** A broadcast frame from the server, for the listeners. */
  received(frame: BroadcastedFrame): void {
    this.emit("broadcast", { from: frame.from, connectionId: frame.connectionId, ts: frame.ts, data: frame.data });
  }
}
