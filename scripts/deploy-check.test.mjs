// The deploy rehearsal's verdict (scripts/lib/deploy-check.mjs): each way a deploy can lose
// or repeat a message must fail it, and what is harmless must not.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkDeliveries, peakRate, problemsOf } from "./lib/deploy-check.mjs";

const acks = (...pairs) => new Map(pairs);
const room0 = acks(["a", 1], ["b", 2], ["c", 3]);

describe("checkDeliveries", () => {
  it("passes clients that hold every acked message once at its seq", () => {
    const r = checkDeliveries({ acked: [room0], clients: [{ roomIndex: 0, received: [[1, "a"], [2, "b"], [3, "c"]] }] });
    assert.deepEqual({ lost: r.lost, duplicates: r.duplicates, unexpected: r.unexpected, gaps: r.gaps, checked: r.deliveriesChecked }, { lost: 0, duplicates: 0, unexpected: 0, gaps: 0, checked: 3 });
  });

  it("counts an acked message a client of its room never got as lost, per client", () => {
    const r = checkDeliveries({
      acked: [room0],
      clients: [
        { roomIndex: 0, received: [[1, "a"], [3, "c"]] },
        { roomIndex: 0, received: [[1, "a"], [2, "b"], [3, "c"]] },
      ],
      roomNames: ["r0"],
    });
    assert.equal(r.lost, 1);
    assert.deepEqual(r.lostExamples, [{ client: 0, room: "r0", id: "b", seq: 2, got: null }]);
    assert.deepEqual(problemsOf({ ...ok(), lost: r.lost }), ["1 acked deliveries lost"]);
  });

  it("counts a message delivered at another seq than its ack as lost", () => {
    const r = checkDeliveries({ acked: [room0], clients: [{ roomIndex: 0, received: [[1, "a"], [2, "b"], [4, "c"]] }] });
    assert.equal(r.lost, 1);
  });

  it("counts a seq or an id delivered twice as a duplicate", () => {
    const twiceSeq = checkDeliveries({ acked: [room0], clients: [{ roomIndex: 0, received: [[1, "a"], [2, "b"], [2, "b"], [3, "c"]] }] });
    const twiceId = checkDeliveries({ acked: [room0], clients: [{ roomIndex: 0, received: [[1, "a"], [2, "b"], [3, "c"], [4, "a"]] }] });
    assert.equal(twiceSeq.duplicates, 1);
    assert.equal(twiceId.duplicates, 1);
  });

  it("adds conflicting acks (one id stored twice) to the duplicates", () => {
    assert.equal(checkDeliveries({ acked: [room0], clients: [], ackConflicts: 2 }).duplicates, 2);
  });

  it("counts a message nobody's ack promised as unexpected", () => {
    const r = checkDeliveries({ acked: [room0], clients: [{ roomIndex: 0, received: [[1, "a"], [2, "b"], [3, "c"], [4, "x"]] }] });
    assert.equal(r.unexpected, 1);
  });

  it("checks each client against its own room only", () => {
    const r = checkDeliveries({ acked: [room0, acks(["z", 1])], clients: [{ roomIndex: 1, received: [[1, "z"]] }] });
    assert.equal(r.lost, 0);
    assert.equal(r.deliveriesChecked, 1);
  });

  it("fails a gap after the client held messages, not one on an empty log", () => {
    const r = checkDeliveries({ acked: [room0], clients: [{ roomIndex: 0, received: [[1, "a"], [2, "b"], [3, "c"]], gaps: [{ afterSeq: 0 }, { afterSeq: 2 }] }] });
    assert.equal(r.gaps, 1);
    assert.equal(r.emptyLogGaps, 1);
  });
});

function ok() {
  return { lost: 0, duplicates: 0, unexpected: 0, gaps: 0, clientsBack: 4, clients: 4, settled: true, unanswered: 0, publishesFailed: 0, drained: 2, rooms: 2, acked: 10, settleDeadlineMs: 1000 };
}

describe("problemsOf", () => {
  it("has nothing to say about a clean run", () => assert.deepEqual(problemsOf(ok()), []));
  it("fails clients not back, unsettled publishes, failed publishes, rooms not drained, nothing acked", () => {
    assert.deepEqual(problemsOf({ ...ok(), clientsBack: 3 }), ["1 clients not back"]);
    assert.deepEqual(problemsOf({ ...ok(), settled: false, unanswered: 2 }), ["not settled within 1000 ms (2 publishes unanswered)"]);
    assert.deepEqual(problemsOf({ ...ok(), publishesFailed: 1 }), ["1 publishes failed"]);
    assert.deepEqual(problemsOf({ ...ok(), drained: 1 }), ["drain reached 1 of 2 rooms"]);
    assert.deepEqual(problemsOf({ ...ok(), acked: 0 }), ["nothing was acked"]);
  });
});

describe("peakRate", () => {
  it("is the most events within any 1 s window", () => {
    assert.equal(peakRate([]), 0);
    // 999, 1000, 1500 and 1600 lie within one second; 0 and 1000 are a full second apart (half-open).
    assert.equal(peakRate([0, 100, 999, 1000, 1500, 1600]), 4);
    assert.equal(peakRate([0, 1000, 2000]), 1);
  });
});
