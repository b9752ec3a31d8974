import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import type { TestServer } from "../packages/client/test/integration/server.js";
import { User, eventually, launch, serve, uniqueDemoRoom } from "./harness.js";

let browser: Browser;
let server: TestServer;
const users: User[] = [];

beforeAll(async () => {
  [browser, server] = await Promise.all([launch(), serve()]);
});
afterAll(async () => {
  for (const u of users) expect(u.errors, `console errors of ${u.name}`).toEqual([]);
  await browser?.close();
  await server?.dispose();
});

async function open(name: string, room: string, context?: User["context"]): Promise<User> {
  const user = await User.open(browser, server, name, room, context);
  users.push(user);
  return user;
}

describe("the demo chat in a real browser", () => {
  it("lets two users chat both ways and see each other in presence", async () => {
    const room = uniqueDemoRoom();
    const alice = await open("alice", room);
    const bob = await open("bob", room);
    await alice.say("hi bob");
    await bob.waitForMessage("hi bob");
    await bob.say("hey alice");
    await alice.waitForMessage("hey alice");
    await eventually("both in presence", () => alice.members(), (m) => m.alice === 1 && m.bob === 1);
    await eventually("both in presence for bob", () => bob.members(), (m) => m.alice === 1 && m.bob === 1);
    // Own messages are marked acked with their publish→ack latency.
    await alice.page.locator("li.mine .status", { hasText: /acked in \d+ ms/ }).first().waitFor();
    await bob.page.fill("#draft", "typing something");
    await alice.page.locator(".typing", { hasText: "bob is typing" }).waitFor();
    await alice.screenshot("chat");
  });

  it("shows a second tab of the same user as one member with two devices", async () => {
    const room = uniqueDemoRoom();
    const carol = await open("carol", room);
    await open("carol", room, carol.context); // same context: already signed in
    const dave = await open("dave", room);
    await eventually("carol with two devices", () => dave.members(), (m) => m.carol === 2 && m.dave === 1);
    await dave.screenshot("two-devices");
  });

  it("removes a user whose browser closed within the liveness timeout", async () => {
    const room = uniqueDemoRoom();
    const erin = await open("erin", room);
    const frank = await open("frank", room);
    await eventually("frank sees erin", () => frank.members(), (m) => m.erin === 1);
    await erin.context.close();
    users.splice(users.indexOf(erin), 1);
    // LIVENESS_TIMEOUT_SECONDS=10 for this server; a clean close leaves after the 1 s grace.
    await eventually("erin gone", () => frank.members(), (m) => !("erin" in m), 10_000);
  });

  it("queues messages while offline and delivers each exactly once when back", async () => {
    const room = uniqueDemoRoom();
    const gina = await open("gina", room);
    const hank = await open("hank", room);
    await gina.context.setOffline(true);
    await gina.waitForStatus("offline");
    await gina.say("sent while offline 1");
    await gina.say("sent while offline 2");
    await gina.page.locator("[data-testid=pending]", { hasText: "queued (offline)" }).first().waitFor();
    await gina.screenshot("offline-queue");
    expect(await hank.count("sent while offline 1")).toBe(0);
    await gina.context.setOffline(false);
    await gina.waitForStatus("live");
    await hank.waitForMessage("sent while offline 2");
    await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up, if there were one
    for (const user of [gina, hank]) {
      expect(await user.count("sent while offline 1")).toBe(1);
      expect(await user.count("sent while offline 2")).toBe(1);
    }
  });
});
