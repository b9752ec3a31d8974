import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { connect, token, uniqueRoom } from "./helpers.js";

const stub = (room: string) => env.ROOMS.getByName(room);

describe("the alarm", () => {
  it("is armed again for the next duty after a run that failed", async () => {
    const room = uniqueRoom();
    const alice = await connect(room, await token({ sub: "alice" }));
    await alice.next("welcome");
    // Make the next alarm run fail where it reschedules itself (storage refusing the
    // write), once; the platform would retry it, but the instance stays awake.
    await runInDurableObject(stub(room), (_instance, state) => {
      const storage = state.storage as unknown as Record<string, unknown>;
      const setAlarm = state.storage.setAlarm.bind(state.storage);
      let failed = false;
      storage.setAlarm = (at: number) => {
        if (failed) return setAlarm(at);
        failed = true;
        return Promise.reject(new Error("injected: storage refused setAlarm"));
      };
    });
    await expect(runDurableObjectAlarm(stub(room))).rejects.toThrow(/injected/);
    await runInDurableObject(stub(room), (_instance, state) => state.storage.deleteAlarm()); // no retry pending

    // A new duty: bob's liveness deadline. It must be scheduled on this same instance.
    const bob = await connect(room, await token({ sub: "bob" }));
    await bob.next("welcome");
    const at = await runInDurableObject(stub(room), (_instance, state) => state.storage.getAlarm());
    expect(at).toBeGreaterThan(Date.now());
    for (const s of [alice, bob]) s.close();
  });
});
