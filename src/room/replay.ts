/**
 * Paged replay: sends a joining socket everything after its position, a page per
 * turn, so a large gap (100,000 messages) neither builds one huge batch in memory
 * nor blocks the room. While a socket is being replayed, live broadcasts skip it;
 * the replay keeps paging until it reaches the head and marks the socket live in
 * that same synchronous turn, so nothing is missed or sent twice.
 *
 * The cursor is kept in the socket's attachment and `meta.replays` flags that some
 * replay is in flight, so a wake in the middle restarts the replay where it was.
 */
import { readSession, writeSession } from "./attachment.js";
import { messageFrame } from "./message-log.js";
import { messagesFrame } from "./broadcaster.js";
import { describeError, log } from "../log.js";
import { sendText } from "./send.js";
import type { RoomCore } from "./room-core.js";

const REPLAYS_FLAG = "replays";

export class ReplayRunner {
  readonly #core: RoomCore;
  /** Sockets still catching up, with the last seq each was sent. */
  readonly #cursors = new Map<WebSocket, number>();

  constructor(core: RoomCore) {
    this.#core = core;
  }

  /** The sockets live broadcasts must skip. */
  get active(): ReadonlyMap<WebSocket, number> {
    return this.#cursors;
  }

  /** The lowest position an in-flight replay still needs; retention must not trim past it. */
  lowestCursor(): number | undefined {
    let lowest: number | undefined;
    for (const c of this.#cursors.values()) if (lowest === undefined || c < lowest) lowest = c;
    return lowest;
  }

  /** Sends the first page now; continues in later turns if there is more. */
  start(ws: WebSocket, from: number): void {
    const cursor = this.#sendPage(ws, from);
    if (cursor === undefined) return;
    this.#cursors.set(ws, cursor);
    this.#saveCursor(ws, cursor);
    this.#core.log.setMeta(REPLAYS_FLAG, "1");
    this.#continue(ws);
  }

  /** After a wake: restart the replays that were in flight, if the flag says there were any. */
  resumeAfterWake(): void {
    if (this.#core.log.getMeta(REPLAYS_FLAG) !== "1") return;
    for (const [ws, session] of this.#core.sessions()) {
      if (session.replayedTo === undefined) continue;
      this.#cursors.set(ws, session.replayedTo);
      this.#continue(ws);
    }
    if (this.#cursors.size === 0) this.#core.log.setMeta(REPLAYS_FLAG, "0");
  }

  forget(ws: WebSocket): void {
    if (this.#cursors.delete(ws) && this.#cursors.size === 0) this.#core.log.setMeta(REPLAYS_FLAG, "0");
  }

  #continue(ws: WebSocket): void {
    void this.#loop(ws).catch((err) => {
      log("error", "room.replay", { room: this.#core.room, error: describeError(err) });
      this.forget(ws);
      try {
        ws.close(4002, "internal_error");
      } catch {
        // already closed
      }
    });
  }

  async #loop(ws: WebSocket): Promise<void> {
    for (;;) {
      // Yield the turn so publishes and other sockets are served between pages.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const cursor = this.#cursors.get(ws);
      if (cursor === undefined || ws.readyState !== 1) return this.forget(ws);
      const next = this.#sendPage(ws, cursor);
      if (next === undefined) {
        this.forget(ws);
        this.#saveCursor(ws, undefined);
        return;
      }
      this.#cursors.set(ws, next);
      this.#saveCursor(ws, next);
    }
  }

  /** Sends one page after `after`; returns the new cursor, or undefined when the socket is caught up. */
  #sendPage(ws: WebSocket, after: number): number | undefined {
    const page = this.#core.log.page(after, this.#core.limits.REPLAY_PAGE_SIZE);
    // The last page makes the socket live: first send what is batched for the others
    // (it is in this page already), so it cannot reach this socket twice.
    if (!page.hasMore) this.#core.broadcaster.flush();
    if (page.messages.length === 1) sendText(ws, messageFrame(page.messages[0]!));
    else if (page.messages.length > 1) sendText(ws, messagesFrame(page.messages));
    if (!page.hasMore) return undefined;
    return page.messages[page.messages.length - 1]!.seq;
  }

  #saveCursor(ws: WebSocket, cursor: number | undefined): void {
    const session = readSession(ws);
    if (!session) return;
    const { replayedTo: _, ...rest } = session;
    writeSession(ws, cursor === undefined ? rest : { ...rest, replayedTo: cursor });
  }
}
