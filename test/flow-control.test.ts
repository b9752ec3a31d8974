import { describe, expect, it } from "vitest";
import { connect, httpPublish, token, uniqueRoom } from "./helpers.js";

// vitest.config.ts: MAX_UNCONFIRMED_BYTES=65536 (the smallest), MAX_MESSAGE_BYTES=1024,
// HISTORY_PAGE_MAX=20, RETENTION_MAX_MESSAGES=30, PUBLISH_BURST=10.

const KB = "x".repeat(900);

describe("flow control", () => {
  it("closes a connection that never confirms with 4005 slow_consumer once its budget is used, and it resumes with nothing lost", async () => {
    const room = uniqueRoom();
    const stalled = await connect(room, await token({ sub: "stalled" }), { progress: false });
    const healthy = await connect(room, await token({ sub: "healthy" }));
    const welcome = await stalled.next("welcome");
    expect(welcome.limits.maxUnconfirmedBytes).toBe(65_536);
    let seq = 0;
    // ~1 KB per message: 65,536 characters are used up after about 66 of them.
    for (let i = 1; i <= 80; i++) seq = await httpPublish(room, `m${i}`, KB);
    expect(await stalled.next("error")).toMatchObject({ code: "slow_consumer" });
    expect(await stalled.closed).toMatchObject({ code: 4005, reason: "slow_consumer" });
    const got = stalled.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);
    expect(got.length).toBeGreaterThan(50);
    expect(got.length).toBeLessThan(80);

    // The client that reports its reads got everything, and is still connected.
    await healthy.until((frames) => frames.filter((f) => f.type === "message").length === 80);
    expect(healthy.frames.some((f) => f.type === "error")).toBe(false);

    // The slow one comes back from its last applied seq (retention keeps 30, so resume
    // within what is kept) and misses nothing.
    const last = got.at(-1)!;
    const from = Math.max(last, seq - 25);
    const back = await connect(room, await token({ sub: "stalled" }), { resume: { epoch: welcome.epoch, after: from } });
    expect((await back.next("welcome")).resume).toEqual({ recovered: true });
    await back.until((frames) => frames.filter((f) => f.type === "message").length === seq - from);
    const replayed = back.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);
    expect(replayed).toEqual(Array.from({ length: seq - from }, (_, i) => from + 1 + i));
    for (const s of [healthy, back]) s.close();
  });

  it("counts unread history answers: a client asking for history without confirming is closed; one that confirms is not", async () => {
    const room = uniqueRoom();
    for (let i = 1; i <= 20; i++) await httpPublish(room, `h${i}`, KB);
    const run = async (progress: boolean) => {
      const socket = await connect(room, await token({ sub: progress ? "reads" : "hoards" }), { progress });
      await socket.next("welcome");
      // 20 messages of ~1 KB per answer: four answers are past 65,536 characters.
      for (let i = 0; i < 8; i++) {
        socket.send({ type: "history", id: `q${i}`, after: 0 });
        if (progress) await socket.next("history"); // and its progress goes back
      }
      return socket;
    };
    const hoards = await run(false);
    expect(await hoards.closed).toMatchObject({ code: 4005 });
    const answers = hoards.frames.filter((f) => f.type === "history").length;
    expect(answers).toBeGreaterThanOrEqual(3);
    expect(answers).toBeLessThan(8);

    const reads = await run(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(reads.frames.filter((f) => f.type === "history")).toHaveLength(8);
    expect(reads.frames.some((f) => f.type === "error")).toBe(false);
    reads.close();
  });

  it("accepts progress without spending the publish budget, and ignores a seq beyond the head", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    await alice.next("welcome");
    for (let i = 0; i < 50; i++) alice.send({ type: "progress", seq: i === 49 ? 1e12 : i });
    alice.send({ type: "publish", id: "still", data: 1 });
    expect(await alice.next("ack")).toMatchObject({ id: "still", seq: 1 });
    expect(alice.frames.some((f) => f.type === "error")).toBe(false);
    alice.send({ type: "progress", seq: -1 });
    expect(await alice.next("error")).toMatchObject({ code: "invalid_frame" });
    alice.close();
  });

  it("cuts a history answer by size as well as by count", async () => {
    const room = uniqueRoom();
    for (let i = 1; i <= 20; i++) await httpPublish(room, `s${i}`, KB);
    const alice = await connect(room);
    await alice.next("welcome");
    // A quarter of the 64 KiB budget per frame: about 16 messages of ~1 KB.
    alice.send({ type: "history", id: "all", after: 0, limit: 20 });
    const page = await alice.next("history");
    expect(page.hasMore).toBe(true);
    expect(page.messages.length).toBeGreaterThan(10);
    expect(page.messages.length).toBeLessThan(20);
    expect(JSON.stringify(page).length).toBeLessThan(65_536 / 4 + 2_000);
    alice.close();
  });
});
