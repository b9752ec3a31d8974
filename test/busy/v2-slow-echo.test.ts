import { PROTOCOL_V2, type ServerFrame } from "@roomcast/protocol";
import { describe, expect, it } from "vitest";
import { connect, httpPublish, token, uniqueRoom } from "../helpers.js";

// The "busy" project: BROADCAST_MAX_DELAY_MS=40 holds a publish that follows another
// within 40 ms in a batching window; MAX_UNCONFIRMED_BYTES is the default 8 MiB.
// docs/protocol.md, "Versions": a v2 connection closed for flow control before its
// publish's echo reached it gets that message in the replay of its resume, and that is its ack.

const BUDGET = 8 * 1_048_576;
const BIG = "x".repeat(60_000);

describe("roomcast.v2 and flow control", () => {
  it("a v2 publisher whose echo is skipped (closed 4005 slow_consumer first) is acked by its resume's replay", async () => {
    const room = uniqueRoom("v2-slow-echo");
    const jwt = await token({ sub: "pub" });
    const pub = await connect(room, jwt, { protocols: [PROTOCOL_V2], progress: false });
    const welcome = await pub.next("welcome");
    expect(welcome.protocol).toBe(PROTOCOL_V2);
    expect(welcome.limits.maxUnconfirmedBytes).toBe(BUDGET);
    // Bring the publisher (which never confirms) to ~370 KB under its budget.
    const fill = Math.floor((BUDGET - 400_000) / BIG.length);
    for (let i = 1; i <= fill; i++) await httpPublish(room, `fill${i}`, BIG);
    await pub.until((frames) => frames.filter((f) => f.type === "message").length === fill);
    expect(pub.frames.some((f) => f.type === "error")).toBe(false);
    // Back to back on its socket: `first` opens the window, `mine` waits in it (40 ms), and
    // the history answer (~1 MiB, sent at once) takes the publisher past its budget
    // before the window's frame is due: that frame, `mine`'s echo, is skipped and the
    // connection closed.
    pub.send({ type: "publish", id: "first", data: 1 });
    pub.send({ type: "publish", id: "mine", data: 2 });
    pub.send({ type: "history", id: "h", after: 0, limit: 20 });
    expect(await pub.closed).toMatchObject({ code: 4005, reason: "slow_consumer" });
    const own = (s: { frames: ServerFrame[] }, id: string) => s.frames.filter((f) => f.type === "message" && f.id === id);
    expect(own(pub, "mine")).toHaveLength(0); // the echo never reached it
    expect(pub.frames.some((f) => f.type === "ack")).toBe(false); // nor an ack: under v2 the echo is the ack
    expect(pub.frames.some((f) => f.type === "error" && f.code === "slow_consumer")).toBe(true);

    // The resume from its last applied seq replays `mine`, from the publisher: its ack.
    const applied = Math.max(...pub.frames.flatMap((f) => (f.type === "message" ? [f.seq] : [])));
    const back = await connect(room, jwt, { protocols: [PROTOCOL_V2], resume: { epoch: welcome.epoch, after: applied } });
    expect((await back.next("welcome")).resume).toEqual({ recovered: true });
    await back.until((frames) => own({ frames }, "mine").length > 0);
    const echo = own(back, "mine")[0] as Extract<ServerFrame, { type: "message" }>;
    expect(echo.from).toBe(welcome.userId);
    expect(echo.seq).toBeGreaterThan(applied);
    back.close();
  });
});
