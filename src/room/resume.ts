/**
 * Deciding where a joining connection's replay starts. Pure, so every case
 * Centrifugo tests (trimmed, ahead, other epoch, same position, empty room) is a
 * one-line unit test.
 */
import type { ResumeFailure } from "@roomcast/protocol";

export interface ResumeRequest {
  readonly epoch: string;
  /** The last seq the client has. */
  readonly after: number;
}

export interface LogPosition {
  readonly epoch: string;
  readonly head: number;
  /** Oldest retained seq; `head + 1` when nothing is retained. */
  readonly oldestSeq: number;
}

export interface ReplayPlan {
  /** Replay messages with `seq > from`, up to the head at join time and on into live. */
  readonly from: number;
  /** Absent when the client did not ask to resume. */
  readonly resume?: { recovered: boolean; reason?: ResumeFailure };
}

export function planReplay(request: ResumeRequest | undefined, log: LogPosition, historyOnJoin: number): ReplayPlan {
  // A fresh start: the most recent `historyOnJoin` messages that are still retained.
  const fresh = Math.max(log.head - historyOnJoin, log.oldestSeq - 1, 0);
  if (!request) return { from: fresh };
  if (request.epoch !== log.epoch) return { from: fresh, resume: { recovered: false, reason: "epoch_changed" } };
  if (request.after > log.head) return { from: fresh, resume: { recovered: false, reason: "ahead" } };
  // Messages after `request.after` must all be retained: the first one needed is after + 1.
  if (request.after + 1 < log.oldestSeq) return { from: fresh, resume: { recovered: false, reason: "trimmed" } };
  return { from: request.after, resume: { recovered: true } };
}
