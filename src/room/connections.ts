/**
 * The connection registry: the room's one answer to "who is here, and in which
 * phase". It is the only code that calls `acceptWebSocket`, `getWebSockets`,
 * `serializeAttachment` and `deserializeAttachment`; every other module sees
 * `Connection`s. (Except migrate-room.ts, which runs once at the start, before the
 * registry exists, to rewrite older attachment layouts.)
 *
 *   accept ──► joining ──(replay reaches the head, same turn)──► live ──► gone
 *                 └──────────────(close, kick, reap, drain, slow)─────────┘
 *
 * - `joining`: accepted, being welcomed and replayed. Live broadcasts skip it; its
 *   replay carries it up to the head and makes it live in that same synchronous turn
 *   (replay.ts), so it misses nothing and gets nothing twice.
 * - `live`: receives broadcasts.
 * - `gone`: closed, by the client or by the room. It is in no view any more; a
 *   close event that arrives for it later changes nothing.
 *
 * After a wake the registry is rebuilt from `getWebSockets()` and the attachments.
 * The runtime omits sockets whose close is already queued (they are closing), so a
 * socket the registry does not know is read from its attachment when its event
 * arrives ("adopted"), and `onAdopt` lets the room put it back into views built
 * before (presence), so that its departure is announced like any other.
 */
import { PROTOCOL_V1, PROTOCOL_V2, type ProtocolVersion } from "@roomcast/protocol";
import { readAttachment, writeAttachment, type Session } from "./attachment.js";
import { Flow } from "./flow.js";
import { NO_TRACE, type Tracer } from "./trace.js";

export type Phase = "joining" | "live" | "gone";

export class Connection {
  readonly ws: WebSocket;
  #session: Session;
  #phase: Phase;
  readonly flow: Flow;
  /** When the room last handled a frame from it (memory only; see `lastSeen`). */
  lastFrame = 0;
  /** The room's debug-mode tracer (trace.ts), set by the registry; send paths check `trace.on`. */
  trace: Tracer = NO_TRACE;

  constructor(ws: WebSocket, session: Session, phase: Phase, onSent?: (chars: number) => void) {
    this.ws = ws;
    this.#session = session;
    this.#phase = phase;
    this.flow = new Flow(session.confirmed ?? 0, onSent);
  }

  get id(): string {
    return this.#session.connectionId;
  }
  get userId(): string {
    return this.#session.userId;
  }
  get session(): Session {
    return this.#session;
  }
  get phase(): Phase {
    return this.#phase;
  }
  /** The protocol version selected at the upgrade (kept in the attachment); anything unknown reads as v1. */
  get protocol(): ProtocolVersion {
    return this.#session.protocol === PROTOCOL_V2 ? PROTOCOL_V2 : PROTOCOL_V1;
  }
  /** roomcast.v2: a live publisher's own message frame is its ack (docs/protocol.md, "Versions"). */
  get v2(): boolean {
    return this.#session.protocol === PROTOCOL_V2;
  }

  /** @internal registry only */
  _set(session: Session, phase: Phase = this.#phase): void {
    this.#session = session;
    this.#phase = phase;
  }
}

export class ConnectionRegistry {
  readonly #ctx: DurableObjectState;
  readonly #byWs = new Map<WebSocket, Connection>();
  /** Open connections per user id (a user's tabs and devices). */
  readonly #perUser = new Map<string, number>();
  /** Views, rebuilt on first use after any change (getWebSockets() allocates; so would filtering on every broadcast). */
  #live: Connection[] | undefined;
  #open: Connection[] | undefined;
  #onAdopt: ((conn: Connection) => void) | undefined;
  #trace: Tracer = NO_TRACE;
  /** Every connection's flow control reports the frames it counts here (metrics: bytes_out_total). */
  readonly #onSent: ((chars: number) => void) | undefined;

  constructor(ctx: DurableObjectState, onSent?: (chars: number) => void) {
    this.#ctx = ctx;
    this.#onSent = onSent;
    for (const ws of ctx.getWebSockets()) this.#adopt(ws);
  }

  /** Called for a connection found after the registry was built (its close was queued at the wake). */
  /** The room's tracer (trace.ts), handed to every connection, those adopted already included. */
  set tracer(trace: Tracer) {
    this.#trace = trace;
    for (const conn of this.#byWs.values()) conn.trace = trace;
  }

  set onAdopt(fn: (conn: Connection) => void) {
    this.#onAdopt = fn;
  }

  /** Open connections (joining or live). */
  get size(): number {
    return this.#byWs.size;
  }

  /** How many open connections a user has in the room. */
  countOf(userId: string): number {
    return this.#perUser.get(userId) ?? 0;
  }

  /** Every socket the runtime holds for the room, closing ones included (allocates: not for hot paths). */
  socketCount(): number {
    return this.#ctx.getWebSockets().length;
  }

  /** The connection of a socket, or undefined for one that is gone or not ours. */
  get(ws: WebSocket): Connection | undefined {
    const known = this.#byWs.get(ws);
    if (known) return known;
    const adopted = this.#adopt(ws);
    if (adopted) this.#onAdopt?.(adopted);
    return adopted;
  }

  /** A socket the room closed itself (its attachment says so): frames and events that cross the close are ignored. */
  closedByRoom(ws: WebSocket): boolean {
    return readAttachment(ws)?.closing === true;
  }

  /** Accepts a new socket as `joining`. Tags let an operator's tooling find a user's sockets. */
  accept(ws: WebSocket, session: Session, tags: string[]): Connection {
    this.#ctx.acceptWebSocket(ws, tags);
    writeAttachment(ws, session);
    const conn = new Connection(ws, session, "joining", this.#onSent);
    this.#add(conn);
    return conn;
  }

  /** Replaces durable fields of a connection's session (written to its attachment). */
  update(conn: Connection, patch: Partial<Session>): void {
    if (conn.phase === "gone") return;
    const session = { ...conn.session, ...patch };
    for (const key of Object.keys(patch) as (keyof Session)[]) if (patch[key] === undefined) delete session[key];
    conn._set(session);
    writeAttachment(conn.ws, session);
  }

  /** The replay reached the head: from now on the connection gets live broadcasts. */
  goLive(conn: Connection): void {
    if (conn.phase !== "joining") return;
    const { replayedTo: _, ...session } = conn.session;
    conn._set(session, "live");
    if (_ !== undefined) writeAttachment(conn.ws, session);
    this.#changed();
  }

  /**
   * The connection leaves every view. The attachment records it (`closing`), so that
   * an event that follows for the same socket (the close after the room closed it, an
   * error after a close, perhaps after a wake) is not taken for another departure.
   * Returns false if it was gone already.
   */
  retire(conn: Connection): boolean {
    if (conn.phase === "gone") return false;
    const session: Session = { ...conn.session, closing: true };
    conn._set(session, "gone");
    this.#byWs.delete(conn.ws);
    const left = this.countOf(conn.userId) - 1;
    if (left > 0) this.#perUser.set(conn.userId, left);
    else this.#perUser.delete(conn.userId);
    this.#changed();
    try {
      writeAttachment(conn.ws, session);
    } catch {
      // The socket is already closed: no event will follow anyway.
    }
    return true;
  }

  /** Connections receiving live broadcasts. */
  live(): readonly Connection[] {
    return (this.#live ??= [...this.#byWs.values()].filter((c) => c.phase === "live"));
  }

  /** Joining and live connections (everyone presence diffs go to). */
  open(): readonly Connection[] {
    return (this.#open ??= [...this.#byWs.values()]);
  }

  joining(): Connection[] {
    return this.open().filter((c) => c.phase === "joining");
  }

  ofUser(userId: string): Connection[] {
    return this.open().filter((c) => c.userId === userId);
  }

  /** When the runtime last auto-answered this socket's ping (without waking the room). */
  lastPing(conn: Connection): number {
    return this.#ctx.getWebSocketAutoResponseTimestamp(conn.ws)?.getTime() ?? 0;
  }

  #adopt(ws: WebSocket): Connection | undefined {
    const session = readAttachment(ws);
    if (!session || session.closing) return undefined;
    const conn = new Connection(ws, session, session.replayedTo !== undefined ? "joining" : "live", this.#onSent);
    this.#add(conn);
    return conn;
  }

  #add(conn: Connection): void {
    conn.trace = this.#trace;
    this.#byWs.set(conn.ws, conn);
    this.#perUser.set(conn.userId, this.countOf(conn.userId) + 1);
    this.#changed();
  }

  #changed(): void {
    this.#live = undefined;
    this.#open = undefined;
  }
}
