/**
 * Flow control for one connection. workerd does not expose how much is queued on a
 * socket (`bufferedAmount`), so the room cannot see a client that stopped reading:
 * every frame it sends such a client is buffered in the room's process, and one
 * client could push the room past its memory limit. So the client reports how far
 * it has read (`progress {seq}`), and the room counts what it sent beyond that.
 *
 * Counted, in characters of the frames' text: every frame the room sends the
 * connection but pongs. Message frames (`message`/`messages`, live or replay) are
 * confirmed by seq: a `progress` with `seq` confirms those up to that seq (to
 * within one mark, see MARK_CHARS). Every other frame (welcome, presence, history
 * answers, acks, errors) is confirmed by the next `progress`, whatever its seq.
 * What is left is `unconfirmed`; past the budget the room closes the connection
 * with 4005 `slow_consumer`, and a paged replay waits for progress while half of it
 * is used.
 *
 * This bounds what an honest client that stopped reading makes the room hold. It is
 * no defence against a hostile client, which can confirm what it never read.
 */

/** Confirmations are tracked to this granularity: one mark per this many characters sent. */
const MARK_CHARS = 16_384;

export class Flow {
  /** Characters of message frames sent. */
  #sent = 0;
  /** Characters of message frames confirmed. */
  #confirmed = 0;
  /** Characters of other frames (not messages) sent since the last progress. */
  #other = 0;
  /** The last seq sent in a message frame. */
  #lastSeq = 0;
  /** The last seq the client confirmed. */
  #confirmedSeq: number;
  /** Pairs [seq, sent-after-it], oldest first, from #head on: where a confirmation can land. */
  #marks: number[] = [];
  #head = 0;
  #lastMark = 0;
  #waiter: (() => void) | undefined;
  /** Told the size of every counted frame (metrics: bytes_out_total). */
  readonly #onSent: ((chars: number) => void) | undefined;

  constructor(confirmedSeq = 0, onSent?: (chars: number) => void) {
    this.#confirmedSeq = confirmedSeq;
    this.#onSent = onSent;
  }

  /** Characters sent and not yet confirmed. */
  get unconfirmed(): number {
    return this.#sent - this.#confirmed + this.#other;
  }

  get confirmedSeq(): number {
    return this.#confirmedSeq;
  }

  /** A message frame ending at `lastSeq` went out. */
  messages(lastSeq: number, chars: number): void {
    this.#onSent?.(chars);
    this.#sent += chars;
    this.#lastSeq = lastSeq;
    if (this.#sent - this.#lastMark >= MARK_CHARS) {
      this.#marks.push(lastSeq, this.#sent);
      this.#lastMark = this.#sent;
    }
  }

  /** A frame that is not a message frame went out (confirmed by the next progress). */
  other(chars: number): void {
    this.#onSent?.(chars);
    this.#other += chars;
  }

  /**
   * The client has applied everything up to `seq` and read every other frame before
   * this report. Returns whether `seq` moved forward.
   */
  progress(seq: number): boolean {
    this.#other = 0;
    if (seq >= this.#lastSeq) {
      // Everything sent so far is confirmed.
      this.#confirmed = this.#sent;
      this.#marks = [];
      this.#head = 0;
      this.#lastMark = this.#sent;
    } else {
      const marks = this.#marks;
      while (this.#head < marks.length && marks[this.#head]! <= seq) {
        this.#confirmed = marks[this.#head + 1]!;
        this.#head += 2;
      }
      if (this.#head > 64) {
        this.#marks = marks.slice(this.#head);
        this.#head = 0;
      }
    }
    const advanced = seq > this.#confirmedSeq;
    if (advanced) this.#confirmedSeq = seq;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
    return advanced;
  }

  /** Resolves at the next progress report, or after `timeoutMs`, whichever is first. */
  nextProgress(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.#waiter === done) this.#waiter = undefined;
        resolve();
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#waiter = done;
    });
  }
}
