import { describe, expect, it } from "vitest";
import { planReplay, type LogPosition } from "../src/room/resume.js";

const EPOCH = "epoch-a";
const HISTORY = 5;

/** A log whose retained messages are `oldestSeq..head` in epoch `EPOCH`. */
const log = (head: number, oldestSeq: number): LogPosition => ({ epoch: EPOCH, head, oldestSeq });

describe("planReplay without a resume request", () => {
  it("starts fresh from the most recent history, with no resume verdict", () => {
    expect(planReplay(undefined, log(100, 1), HISTORY)).toEqual({ from: 95 });
  });

  it("never starts before the oldest retained message", () => {
    // Only 98..100 are retained: the fresh start is after 97, not after 95.
    expect(planReplay(undefined, log(100, 98), HISTORY)).toEqual({ from: 97 });
  });

  it("never starts below zero in a room with fewer messages than the history size", () => {
    expect(planReplay(undefined, log(3, 1), HISTORY)).toEqual({ from: 0 });
    expect(planReplay(undefined, log(0, 1), HISTORY)).toEqual({ from: 0 });
  });

  it("replays nothing when history on join is zero", () => {
    expect(planReplay(undefined, log(100, 1), 0)).toEqual({ from: 100 });
  });
});

describe("planReplay with a resume request", () => {
  it("recovers with nothing to replay when the client is at the head", () => {
    expect(planReplay({ epoch: EPOCH, after: 42 }, log(42, 1), HISTORY)).toEqual({ from: 42, resume: { recovered: true } });
  });

  it("recovers in an empty room", () => {
    expect(planReplay({ epoch: EPOCH, after: 0 }, log(0, 1), HISTORY)).toEqual({ from: 0, resume: { recovered: true } });
  });

  it("recovers from a retained position, replaying everything after it", () => {
    // A gap far larger than the history size is still replayed in full.
    expect(planReplay({ epoch: EPOCH, after: 10 }, log(100, 1), HISTORY)).toEqual({ from: 10, resume: { recovered: true } });
  });

  it("recovers from a position exactly at the trim edge (the first message needed is the oldest retained)", () => {
    expect(planReplay({ epoch: EPOCH, after: 19 }, log(100, 20), HISTORY)).toEqual({ from: 19, resume: { recovered: true } });
  });

  it("refuses a position whose next message was trimmed, and starts fresh", () => {
    expect(planReplay({ epoch: EPOCH, after: 18 }, log(100, 20), HISTORY)).toEqual({
      from: 95,
      resume: { recovered: false, reason: "trimmed" },
    });
    expect(planReplay({ epoch: EPOCH, after: 0 }, log(100, 20), HISTORY)).toEqual({
      from: 95,
      resume: { recovered: false, reason: "trimmed" },
    });
  });

  it("refuses a position ahead of the head, and starts fresh", () => {
    expect(planReplay({ epoch: EPOCH, after: 101 }, log(100, 1), HISTORY)).toEqual({
      from: 95,
      resume: { recovered: false, reason: "ahead" },
    });
    expect(planReplay({ epoch: EPOCH, after: 1 }, log(0, 1), HISTORY)).toEqual({
      from: 0,
      resume: { recovered: false, reason: "ahead" },
    });
  });

  it("refuses a position from another epoch, and starts fresh", () => {
    // Even a position that would be valid in this log means nothing in another one.
    expect(planReplay({ epoch: "epoch-b", after: 50 }, log(100, 1), HISTORY)).toEqual({
      from: 95,
      resume: { recovered: false, reason: "epoch_changed" },
    });
  });

  it("checks the epoch before the position", () => {
    expect(planReplay({ epoch: "epoch-b", after: 500 }, log(100, 1), HISTORY).resume).toEqual({
      recovered: false,
      reason: "epoch_changed",
    });
  });

  describe("when every message has been trimmed (head 10, oldest 11)", () => {
    const everythingTrimmed = log(10, 11);

    it("recovers a client that already has the head", () => {
      expect(planReplay({ epoch: EPOCH, after: 10 }, everythingTrimmed, HISTORY)).toEqual({ from: 10, resume: { recovered: true } });
    });

    it("refuses a client that is missing the last message, and starts fresh with nothing to replay", () => {
      expect(planReplay({ epoch: EPOCH, after: 9 }, everythingTrimmed, HISTORY)).toEqual({
        from: 10,
        resume: { recovered: false, reason: "trimmed" },
      });
    });

    it("starts a fresh client at the head", () => {
      expect(planReplay(undefined, everythingTrimmed, HISTORY)).toEqual({ from: 10 });
    });
  });
});
