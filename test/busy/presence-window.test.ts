import { describe, expect, it } from "vitest";
import { connect, fetchWorker, listedBy, token, uniqueRoom } from "../helpers.js";

// The "busy" project: PRESENCE_MAX_DELAY_MS=150, so changes within 150 ms go out as one merged diff.

describe("coalesced presence", () => {
  it("removes a user who joined and left inside one window from the view of a connection that joined inside it", async () => {
    const room = uniqueRoom("window");
    const watcher = await connect(room, await token({ sub: "watcher" }));
    await new Promise((r) => setTimeout(r, 300)); // the watcher's own window is over
    const admin = await token({ sub: "ops", cap: { "*": ["admin"] } });

    // One window: x joins, the observer joins (its presence_state lists x), x is kicked.
    const x = await connect(room, await token({ sub: "x" }));
    const observer = await connect(room, await token({ sub: "observer" }));
    const kick = await fetchWorker(`/v1/rooms/${room}/connections/x`, { method: "DELETE", headers: { Authorization: `Bearer ${admin}` } });
    expect(await kick.json()).toEqual({ closed: 1 });
    const state = observer.frames.find((f) => f.type === "presence_state");
    expect(state?.type === "presence_state" && state.members.map((m) => m.userId).sort()).toEqual(["observer", "watcher", "x"]);

    await observer.until(() => observer.frames.some((f) => f.type === "presence_diff"), 2_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(listedBy(observer)).toEqual(["observer", "watcher"]);
    expect(listedBy(watcher)).toEqual(["observer", "watcher"]);
    await x.closed;
    for (const s of [watcher, observer]) s.close();
  });
});
