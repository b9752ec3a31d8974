/**
 * A Roomcast client for the `slow` scenario, which needs more than the load
 * generator's connections give: acks with their seq (the head of the room), every
 * seq it applied (to count what it missed or got twice), a socket that can stop
 * reading (`pause()`), history requests, and the reconnect with `?epoch=&after=`
 * that docs/protocol.md §6.3 and §6.9 ask for after a 4005 `slow_consumer`.
 * Off the hot path: every frame is parsed in full.
 */
import WebSocket from "ws";
import { token } from "./roomcast-client.mjs";

export class RoomcastProbe {
  /**
   * @param {{ url: string, room: string, track?: boolean, log?: (line: string) => void }} o
   * `track`: remember how many times each seq arrived (for missed and duplicate counts).
   */
  constructor({ url, room, track = false, log = () => {} }) {
    this.url = url;
    this.room = room;
    this.track = track;
    this.log = log;
    /** @type {Map<number, number>} seq → times it arrived in a message frame */
    this.seen = new Map();
    this.firstSeq = null;
    this.lastSeq = 0;
    this.outOfOrder = 0;
    this.epoch = undefined;
    this.budget = undefined;
    this.welcomes = [];
    this.connections = 0;
    this.paused = false;
    // Flow control: characters of frames (all but pongs) since the last progress.
    this.unreported = 0;
    this.progressSent = 0;
    this.receivedChars = 0;
    // receivedChars when the last progress went out, and as of the stall (the last one the room saw).
    this.reportedChars = 0;
    this.stallReportedChars = null;
    this.stallSocket = null;
    this.resumeHead = null;
    this.backlogEnd = null;
    this.messageFrames = 0;
    this.historyAnswers = 0;
    this.historyChars = 0;
    this.acks = 0;
    this.headSeq = 0;
    this.published = 0;
    /** @type {{ code: string, unreported: number, receivedChars: number, historyAnswers: number, lastSeq: number }[]} */
    this.errors = [];
    this.closes = [];
    this.slowClose = null; // the first 4005, as seen: error frame (or bare close)
    this.reconnecting = null;
    this.ws = null;
    this.closedByUs = false;
  }

  /** Connects (resuming from the last applied seq once it has an epoch); resolves at welcome. */
  async connect() {
    const query = this.epoch === undefined ? "" : `?epoch=${encodeURIComponent(this.epoch)}&after=${this.lastSeq}`;
    const wsUrl = `${this.url.replace(/^http/, "ws")}/v1/rooms/${encodeURIComponent(this.room)}/ws${query}`;
    const ws = new WebSocket(wsUrl, ["roomcast.v1"], { perMessageDeflate: false, headers: { Authorization: `Bearer ${await token()}` } });
    this.ws = ws;
    this.connections++;
    // The last seq applied on this socket: message frames must continue from it, in order.
    let socketLast = this.epoch === undefined ? null : this.lastSeq;
    await new Promise((resolve, reject) => {
      let welcomed = false;
      ws.on("message", (raw, isBinary) => {
        if (isBinary || ws !== this.ws) return;
        const text = raw.toString();
        const frame = JSON.parse(text);
        // Flow control counts every frame but pongs (protocol.md §6.9).
        if (frame.type !== "pong" && frame.type !== "message" && frame.type !== "messages") this.#count(ws, text.length, frame.type === "history", 0);
        switch (frame.type) {
          case "welcome": {
            welcomed = true;
            this.epoch = frame.epoch;
            const budget = frame.limits?.maxUnconfirmedBytes;
            this.budget = typeof budget === "number" && budget > 0 ? budget : undefined;
            this.unreported = 0;
            this.welcomes.push({ seq: frame.seq, replay: frame.replay, resume: frame.resume ?? null });
            if (socketLast === null) socketLast = frame.seq - frame.replay;
            resolve(undefined);
            return;
          }
          case "message":
          case "messages": {
            const messages = frame.type === "message" ? [frame] : frame.messages;
            for (const m of messages) {
              if (socketLast !== null && m.seq !== socketLast + 1) this.outOfOrder++;
              socketLast = m.seq;
              if (this.track) {
                this.firstSeq ??= m.seq;
                this.seen.set(m.seq, (this.seen.get(m.seq) ?? 0) + 1);
              }
              if (m.seq > this.lastSeq) this.lastSeq = m.seq;
            }
            this.messageFrames++;
            this.#count(ws, text.length, false, messages[messages.length - 1].seq);
            return;
          }
          case "history":
            this.historyAnswers++;
            this.historyChars += text.length;
            return;
          case "ack":
            this.acks++;
            if (frame.seq > this.headSeq) this.headSeq = frame.seq;
            return;
          case "error":
            this.errors.push({ code: frame.code, unreported: this.unreported, receivedChars: this.receivedChars, historyAnswers: this.historyAnswers, lastSeq: this.lastSeq });
            if (frame.code === "slow_consumer") this.#slow(ws, "error frame");
            return;
          default:
            return;
        }
      });
      ws.on("error", (err) => {
        if (!welcomed) reject(err);
      });
      ws.once("close", (code, reason) => {
        this.closes.push({ code, reason: String(reason) });
        if (!welcomed) reject(new Error(`closed before welcome: ${code} ${reason}`));
        else if (code === 4005 && ws === this.ws) this.#slow(ws, "close");
      });
    });
  }

  #count(ws, chars, history, seq) {
    this.receivedChars += chars;
    // The backlog: frames on the stalled socket that the room had sent before it read again
    // (message frames up to the head at that moment; every other frame, history answers first).
    if (ws === this.stallSocket && (this.resumeHead === null || seq === 0 || seq <= this.resumeHead)) this.backlogEnd = this.receivedChars;
    this.unreported += chars;
    if (this.budget === undefined || this.paused) return;
    if (history || this.unreported >= this.budget / 4) this.#report();
  }

  #report() {
    this.unreported = 0;
    this.reportedChars = this.receivedChars;
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "progress", seq: this.lastSeq }));
      this.progressSent++;
    }
  }

  /** Closed for being slow: note it (the first time), and come back resuming, unless paused. */
  #slow(ws, seenAs) {
    if (ws !== this.ws) return;
    // What the room had sent beyond the last progress it saw: counted from the last one before
    // the stall (the ones sent while reading the backlog reached it after it had closed the socket).
    const confirmed = this.stallReportedChars ?? this.reportedChars;
    this.slowClose ??= { seenAs, unconfirmed: this.receivedChars - confirmed, receivedChars: this.receivedChars, historyAnswers: this.historyAnswers, lastSeq: this.lastSeq };
    this.ws = null; // the socket is finished: its frames are ignored from here on
    ws.terminate();
    this.pendingReconnect = true;
    if (!this.paused) this.#reconnect();
  }

  #reconnect() {
    this.pendingReconnect = false;
    this.reconnecting = this.connect()
      .catch((err) => this.log(`  slow client: reconnect failed: ${err.message}`))
      .finally(() => (this.reconnecting = null));
  }

  /** Stops reading: the socket's TCP stream is paused (ws.pause() pauses ws._socket and keeps ws from resuming it). */
  pause() {
    this.paused = true;
    this.stallReportedChars = this.reportedChars;
    this.stallSocket = this.ws;
    this.ws?.pause();
  }

  /**
   * What the room had sent on the stalled socket beyond the last progress it saw, as read
   * back: every frame but messages after `resumeHead` (the room's head when the client read
   * again). Null before the stall.
   */
  get backlogChars() {
    return this.backlogEnd === null || this.stallReportedChars === null ? null : this.backlogEnd - this.stallReportedChars;
  }

  /** Reads again (and reconnects if the room closed it meanwhile); `head`: the room's newest seq now. */
  resume(head) {
    this.resumeHead = head;
    this.paused = false;
    if (this.pendingReconnect) this.#reconnect();
    else {
      this.ws?.resume();
      if (this.budget !== undefined && this.unreported >= this.budget / 4) this.#report();
    }
  }

  /** The socket's local port (to find its kernel queues), or undefined. */
  get localPort() {
    return this.ws?._socket?.localPort;
  }

  send(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  publish(data) {
    this.published++;
    this.send({ type: "publish", id: `p${this.published.toString(36)}`, data });
  }

  /** Seqs from the first one received to `head` that never arrived, and arrivals beyond the first. */
  audit(head) {
    let missed = 0;
    let duplicates = 0;
    for (const count of this.seen.values()) duplicates += count - 1;
    if (this.firstSeq !== null) for (let s = this.firstSeq; s <= head; s++) if (!this.seen.has(s)) missed++;
    return { missed, duplicates, outOfOrder: this.outOfOrder };
  }

  close() {
    this.closedByUs = true;
    const ws = this.ws;
    this.ws = null;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close();
    else ws?.terminate();
  }
}
