/**
 * An error frame without an id whose code has a close code announces a close (clients
 * act on it at once, docs/protocol.md §7 `error`). So an answer to a client frame must
 * never come without an id: a presence frame may have none, and its refusal carries "".
 */
import { describe, expect, it } from "vitest";
import { ERRORS } from "@roomcast/protocol";
import { connect, token, uniqueRoom } from "./helpers.js";

describe("error frames answering a presence frame without id", () => {
  it("carry id \"\" (forbidden), so they cannot be read as a close announcement, and the socket stays open", async () => {
    const socket = await connect(uniqueRoom(), await token({ cap: { "*": ["subscribe", "publish"] } }));
    await socket.next("welcome");
    socket.send({ type: "presence", state: { typing: true } });
    const error = await socket.next("error");
    expect(ERRORS.forbidden.close).toBeDefined();
    expect(error).toMatchObject({ code: "forbidden", id: "" });
    // Still connected: a publish is acked.
    socket.send({ type: "publish", id: "still-open", data: 1 });
    expect(await socket.next("ack")).toMatchObject({ id: "still-open" });
    socket.close();
  });

  it("carry id \"\" (rate_limited, which now has close 4008), and never arrive without one", async () => {
    const socket = await connect(uniqueRoom(), await token());
    await socket.next("welcome");
    // PUBLISH_BURST is 10 in the test configuration.
    for (let i = 0; i < 14; i++) socket.send({ type: "presence", state: { n: i } });
    const error = await socket.next("error");
    expect(error).toMatchObject({ code: "rate_limited", id: "" });
    await new Promise((r) => setTimeout(r, 100));
    const errors = socket.frames.filter((f) => f.type === "error");
    expect(errors.every((f) => f.type === "error" && f.id === "")).toBe(true);
    socket.close();
  });
});
