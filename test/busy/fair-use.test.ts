import { describe, expect, it } from "vitest";
import { connect, token, uniqueRoom, upgrade, type TestSocket } from "../helpers.js";
import { expectRefused } from "../refusals.js";

// The "busy" project: MAX_CONNECTIONS_PER_USER=60, MAX_CONNECTIONS_PER_ROOM=400.

describe("connections per user", () => {
  it("refuses a user's connection past MAX_CONNECTIONS_PER_USER with too_many_connections (close 4006), and still admits others", async () => {
    const room = uniqueRoom("greedy");
    const jwt = await token({ sub: "greedy", cap: { "*": ["subscribe"] } });
    const mine: TestSocket[] = [];
    for (let i = 0; i < 60; i++) mine.push(await connect(room, jwt));
    await expectRefused(await upgrade(room, jwt), "too_many_connections");

    // Another user is not affected by greedy's cap.
    const other = await connect(room, await token({ sub: "other" }));
    expect((await other.next("welcome")).userId).toBe("other");

    // A slot freed is a slot again.
    mine.pop()!.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await connect(room, jwt);
    expect((await again.next("welcome")).userId).toBe("greedy");
    for (const s of [...mine, other, again]) s.close();
  });
});
