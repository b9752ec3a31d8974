/**
 * Paged replay: sends a joining connection everything after its position, a page
 * per turn, so a large gap (100,000 messages) neither builds one huge frame in
 * memory nor blocks the room. Pages are cut by count (REPLAY_PAGE_SIZE) and by size
 * (about 1 MiB), and paced by flow control: once the connection's unconfirmed
 * traffic passes half its budget, the next page waits for a `progress` report (or
 * PACE_WAIT_MS, after which a connection that still reports nothing runs into its
 * budget and is closed as a slow consumer).
 *
 * The connection stays `joining` (live broadcasts skip it) until a page reaches the
 * head; then, in that same synchronous turn, what is batched for the others is
 * flushed and the connection goes live, so nothing is missed or sent twice.
 *
 * The cursor is kept in the connection's attachment (`replayedTo`), which is also
 * what makes the registry rebuild the connection as `joining` after a wake: every
 * such connection's replay restarts where it was, so none is left joining forever.
 */
import type { Connection } from "./connections.js";
import type { Page } from "./message-log.js";
import { describeError, log } from "../log.js";
import { messagesOrMessage } from "./wire.js";
import { sendText } from "./send.js";

/** How long a paused replay waits for a progress report before sending on. */
const PACE_WAIT_MS = 2_000;

export interface ReplayDeps {
  readonly room: () => string | undefined;
  readonly pageSize: number;
  /** Flow-control budget per connection, in characters. */
  readonly budget: number;
  page(after: number, limit: number): Page;
  /** Live messages batched for the others, sent now (before a connection goes live). */
  flushBroadcasts(): void;
  goLive(conn: Connection): void;
  saveCursor(conn: Connection, cursor: number | undefined): void;
  joining(): readonly Connection[];
  slow(conn: Connection): void;
  failed(conn: Connection): void;
  /** Metrics: a replay started, reached the head, or sent `n` messages. */
  count?(event: "started" | "finished" | "messages", n?: number): void;
}

export class ReplayRunner {
  readonly #deps: ReplayDeps;
  /** Connections still catching up, with the last seq each was sent. */
  readonly #cursors = new Map<Connection, number>();

  constructor(deps: ReplayDeps) {
    this.#deps = deps;
  }

  /** The lowest position an in-flight replay still needs; retention must not trim past it. */
  lowestCursor(): number | undefined {
    let lowest: number | undefined;
    for (const c of this.#cursors.values()) if (lowest === undefined || c < lowest) lowest = c;
    return lowest;
  }

  /** Sends the first page now (in the joining turn); continues in later turns if there is more. */
  start(conn: Connection, from: number): void {
    this.#deps.count?.("started");
    const cursor = this.#sendPage(conn, from);
    if (cursor === undefined) return;
    this.#cursors.set(conn, cursor);
    this.#deps.saveCursor(conn, cursor);
    this.#continue(conn);
  }

  /** After a wake: restart the replay of every connection that was still joining. */
  resumeAfterWake(): void {
    for (const conn of this.#deps.joining()) this.resume(conn);
  }

  /** Carries on the replay of a joining connection from the cursor in its attachment. */
  resume(conn: Connection): void {
    if (this.#cursors.has(conn) || conn.phase !== "joining") return;
    this.#cursors.set(conn, conn.session.replayedTo ?? 0);
    this.#continue(conn);
  }

  forget(conn: Connection): void {
    this.#cursors.delete(conn);
  }

  #continue(conn: Connection): void {
    void this.#loop(conn).catch((err) => {
      log("error", "room.replay", { room: this.#deps.room(), error: describeError(err) });
      this.forget(conn);
      this.#deps.failed(conn);
    });
  }

  async #loop(conn: Connection): Promise<void> {
    for (;;) {
      // Yield the turn so publishes and other connections are served between pages.
      await new Promise((resolve) => setTimeout(resolve, 0));
      // Paced: while over half the budget, wait for progress reports (at most PACE_WAIT_MS in all).
      const until = Date.now() + PACE_WAIT_MS;
      while (conn.flow.unconfirmed > this.#deps.budget / 2 && conn.phase === "joining" && Date.now() < until) {
        await conn.flow.nextProgress(until - Date.now());
      }
      const cursor = this.#cursors.get(conn);
      if (cursor === undefined || conn.phase !== "joining") return this.forget(conn);
      const next = this.#sendPage(conn, cursor);
      if (next === undefined) return;
      this.#cursors.set(conn, next);
      this.#deps.saveCursor(conn, next);
    }
  }

  /**
   * Sends one page after `after`; returns the new cursor, or undefined once the
   * connection is caught up (and live) or was closed for its budget.
   */
  #sendPage(conn: Connection, after: number): number | undefined {
    const page = this.#deps.page(after, this.#deps.pageSize);
    // The last page makes the connection live: first send what is batched for the
    // others (it is in this page already), so it cannot reach this one twice.
    if (!page.hasMore) this.#deps.flushBroadcasts();
    const last = page.messages.at(-1);
    if (last) {
      // Still over its budget after the pacing wait: it stopped reading.
      if (conn.flow.unconfirmed > this.#deps.budget) {
        this.forget(conn);
        this.#deps.slow(conn);
        return undefined;
      }
      const text = messagesOrMessage(page.messages);
      if (sendText(conn.ws, text)) {
        conn.flow.messages(last.seq, text.length);
        if (conn.trace.on) conn.trace.out(conn, text);
        this.#deps.count?.("messages", page.messages.length);
      }
    }
    if (page.hasMore) return last!.seq;
    this.forget(conn);
    this.#deps.goLive(conn);
    this.#deps.count?.("finished");
    return undefined;
  }
}
