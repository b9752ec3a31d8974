/**
 * The room's side of the rooms directory (directory.ts): `joined-first` when its first
 * connection is accepted, `active` at most once a minute while it has connections and
 * is awake anyway, `empty` when its last connection is gone.
 *
 * Reports are fire-and-forget (`ctx.waitUntil`): a join never waits for the directory,
 * and a directory that fails or is missing costs the room a warning line, never a
 * refused connection. Nothing here sets a timer or an alarm: a report only ever rides
 * on an event the room is awake for, so an idle room is never woken to report.
 * One stub per room instance, so its reports reach the shard in the order they were
 * sent (the shard also ignores reports older than its row).
 */
import type { Env } from "../env.js";
import { describeError, log } from "../log.js";
import type { DirectoryReport, RoomsDirectory } from "./directory.js";
import { shardName, shardOf } from "./shard.js";

/** At most one `active` report per room per this long. */
export const ACTIVE_REPORT_MS = 60_000;

type Stub = { report(r: DirectoryReport): Promise<{ ok: boolean; message?: string }> };

export class DirectoryReporter {
  readonly #namespace: Env["DIRECTORY"] | undefined;
  readonly #waitUntil: (p: Promise<unknown>) => void;
  #stub: Stub | undefined;
  #lastReportAt = 0;

  constructor(namespace: Env["DIRECTORY"] | undefined, waitUntil: (p: Promise<unknown>) => void) {
    this.#namespace = namespace;
    this.#waitUntil = waitUntil;
  }

  /** A connection was accepted; `connections` counts it. */
  joined(room: string | undefined, connections: number, now = Date.now()): void {
    if (connections === 1) this.#send("joined-first", room, connections, now);
    else this.active(room, connections, now);
  }

  /** The room is awake for a frame or its alarm: refresh its row, throttled. */
  active(room: string | undefined, connections: number, now = Date.now()): void {
    if (connections > 0 && now - this.#lastReportAt >= ACTIVE_REPORT_MS) this.#send("active", room, connections, now);
  }

  /** A connection is gone; `connections` no longer counts it. */
  left(room: string | undefined, connections: number, now = Date.now()): void {
    if (connections === 0) this.#send("empty", room, 0, now);
  }

  #send(kind: DirectoryReport["kind"], room: string | undefined, connections: number, at: number): void {
    if (room === undefined || !this.#namespace) return;
    this.#lastReportAt = at;
    try {
      this.#stub ??= this.#namespace.getByName(shardName(shardOf(room))) as unknown as Stub;
      const sent = this.#stub.report({ kind, room, connections, at }).then(
        (answer) => {
          if (!answer.ok) log("warn", "room.directory_report_refused", { room, kind, message: answer.message });
        },
        (err: unknown) => {
          this.#stub = undefined; // a broken stub is not reused
          log("warn", "room.directory_report_failed", { room, kind, error: describeError(err) });
        },
      );
      this.#waitUntil(sent);
    } catch (err) {
      this.#stub = undefined;
      log("warn", "room.directory_report_failed", { room, kind, error: describeError(err) });
    }
  }
}
