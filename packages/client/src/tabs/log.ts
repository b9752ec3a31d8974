/**
 * One tab's copy of the room's message log: a position (epoch, seq) and the recent
 * messages. Every tab of a group keeps its own, fed by the leader in order; a
 * message at or below the position was delivered already and is dropped, so a
 * takeover, a replay or a resync never shows a message twice.
 */
import type { Message } from "@roomcast/protocol";

/** Kept for snapshots even when the app asks for a smaller `messageBuffer`. */
const SNAPSHOT_MESSAGES = 200;

export class TabLog {
  #epoch: string | undefined;
  #seq = 0;
  #recent: Message[] = [];
  #view: Message[] = [];
  readonly #visible: number;
  readonly #kept: number;

  constructor(messageBuffer: number) {
    this.#visible = messageBuffer;
    this.#kept = Math.max(messageBuffer, SNAPSHOT_MESSAGES);
  }

  get epoch(): string | undefined {
    return this.#epoch;
  }
  get seq(): number {
    return this.#seq;
  }
  /** What the app sees as `messages` (at most `messageBuffer`). */
  get messages(): Message[] {
    return this.#view;
  }
  /** What a snapshot carries to a tab that joins. */
  get recent(): Message[] {
    return this.#recent;
  }

  /** A new log: drops everything, the position becomes (epoch, seq). */
  reset(epoch: string, seq: number): void {
    this.#epoch = epoch;
    this.#seq = seq;
    this.#recent = [];
    this.#view = [];
  }

  /** Messages up to `seq` will not come (retention deleted them): keep what we have, go on from `seq`. */
  skipTo(epoch: string, seq: number): void {
    if (epoch !== this.#epoch) return this.reset(epoch, seq);
    this.#seq = Math.max(this.#seq, seq);
  }

  /**
   * How `message` of `epoch` relates to the log: "next" (deliver it: `add`), "old"
   * (delivered already), "gap" (messages are missing before it), "epoch" (another log).
   * An empty log takes any first message.
   */
  classify(epoch: string, message: Message): "next" | "old" | "gap" | "epoch" {
    if (this.#epoch === undefined) return "next";
    if (epoch !== this.#epoch) return "epoch";
    if (message.seq <= this.#seq) return "old";
    return message.seq === this.#seq + 1 ? "next" : "gap";
  }

  add(epoch: string, message: Message): void {
    this.#epoch = epoch;
    this.#seq = message.seq;
    this.#recent = [...this.#recent, message].slice(-this.#kept);
    this.#view = this.#visible > 0 ? this.#recent.slice(-this.#visible) : [];
  }
}
