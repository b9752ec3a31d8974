/**
 * The demo as a newcomer meets it: a long conversation, reading back while others
 * write, an empty room, a bad room name, the first connection, offline versus a dead
 * server, and a phone. Each state is checked, then saved as a screenshot.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import type { TestServer } from "../packages/client/test/integration/server.js";
import { User, eventually, launch, messageListView, publishOverHttp, serve, uniqueDemoRoom } from "./harness.js";

let browser: Browser;
let server: TestServer;
const users: User[] = [];

beforeAll(async () => {
  // Room for 40-message bursts from one user over HTTP.
  [browser, server] = await Promise.all([launch(), serve({ PUBLISH_RATE_PER_SECOND: "200", PUBLISH_BURST: "200" })]);
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

const numbered = (prefix: string, n: number, from = 1) => Array.from({ length: n }, (_, i) => `${prefix} ${from + i}`);

describe("the demo's message list", () => {
  it("opens a room with a long history at its newest message", async () => {
    const room = uniqueDemoRoom();
    await publishOverHttp(server, room, "zoe", numbered("history", 40));
    const amy = await open("amy", room);
    await amy.waitForMessage("history 40");
    const view = await eventually("the newest row in view", () => messageListView(amy.page), (v) => v.lastInView);
    expect(view.scrollHeight, "the list is long enough to scroll").toBeGreaterThan(view.clientHeight * 2);
    expect(view.lastText).toBe("history 40");
    // Every message shows when the server stored it.
    await expect(amy.page.locator("li[data-seq] time").count()).resolves.toBe(40);
    await amy.screenshot("long-history");
  });

  it("follows new messages, but leaves a reader who scrolled up in place with a marker", async () => {
    const room = uniqueDemoRoom();
    const ben = await open("ben", room);
    await publishOverHttp(server, room, "cleo", numbered("live", 40));
    await ben.waitForMessage("live 40");
    await eventually("live 40 in view", () => messageListView(ben.page), (v) => v.lastInView && v.lastText === "live 40");

    // The reader scrolls up to read older messages; three more arrive.
    await ben.page.locator("[data-testid=message-list]").evaluate((list) => list.scrollTo({ top: 0 }));
    await eventually("scrolled up", () => messageListView(ben.page), (v) => v.scrollTop === 0);
    await publishOverHttp(server, room, "cleo", numbered("live", 3, 41));
    await ben.waitForMessage("live 43");
    const marker = ben.page.locator("[data-testid=new-messages]");
    await marker.waitFor();
    expect(await marker.textContent()).toContain("3 new messages");
    const held = await messageListView(ben.page);
    expect(held.scrollTop, "the list stayed where the reader left it").toBe(0);
    expect(held.lastInView, "the newest was not forced into view").toBe(false);
    await ben.screenshot("new-messages");

    // The marker takes the reader down to the newest, and goes away.
    await marker.click();
    await eventually("live 43 in view", () => messageListView(ben.page), (v) => v.lastInView && v.lastText === "live 43");
    await marker.waitFor({ state: "detached" });

    // Scrolled up again, the reader sends a message: their own row is brought into view.
    await ben.page.locator("[data-testid=message-list]").evaluate((list) => list.scrollTo({ top: 0 }));
    await eventually("scrolled up", () => messageListView(ben.page), (v) => v.scrollTop === 0);
    await ben.say("my own words");
    await eventually("own row in view", () => messageListView(ben.page), (v) => v.lastInView && v.lastText === "my own words");
  });

  it("does not bring back an own message as pending once it scrolled out of the recent buffer", async () => {
    const room = uniqueDemoRoom();
    const ada = await open("ada", room);
    await ada.say("an early word");
    await ada.waitForMessage("an early word");
    // The client keeps the 200 most recent messages; push ada's out of them.
    await publishOverHttp(server, room, "zoe", numbered("filler", 200));
    await ada.waitForMessage("filler 200");
    expect(await ada.count("an early word"), "out of the recent buffer").toBe(0);
    expect(await ada.page.locator("[data-testid=pending]", { hasText: "an early word" }).count(), "not shown again as pending").toBe(0);
    expect((await messageListView(ada.page)).lastText).toBe("filler 200");
  });

  it("shows the room's name and a hint in an empty room", async () => {
    const room = uniqueDemoRoom();
    const cat = await open("cat", room);
    const label = `#${room.slice("demo:".length)}`;
    await expect(cat.page.locator("[data-testid=room-title]").textContent()).resolves.toContain(label);
    expect(await cat.page.title()).toContain(label);
    const hint = cat.page.locator("[data-testid=empty-hint]");
    await hint.waitFor();
    expect(await hint.textContent()).toContain(`No messages in ${label} yet`);
    await cat.page.waitForTimeout(700); // the hint fades in
    await cat.screenshot("empty-room");
    await cat.say("first!");
    await cat.waitForMessage("first!");
    await hint.waitFor({ state: "detached" });
  });

  it("says so when the URL names a room the demo cannot open, and offers the lobby", async () => {
    const dan = await open("dan", uniqueDemoRoom());
    for (const bad of ["not a room!", "other:room", "demo:"]) {
      await dan.page.goto(`${server.url}/?room=${encodeURIComponent(bad)}`);
      const notice = dan.page.locator("[data-testid=invalid-room]");
      await notice.waitFor();
      expect(await notice.textContent()).toContain(`“${bad}” is not a room name this demo can open`);
      expect(await dan.page.locator("[data-testid=message-list]").count(), `${bad}: no chat shown`).toBe(0);
      if (bad === "not a room!") await dan.screenshot("invalid-room");
    }
    await dan.page.getByRole("button", { name: "Go to #lobby" }).click();
    await dan.waitForStatus("live");
    expect(new URL(dan.page.url()).searchParams.get("room")).toBe("demo:lobby");
    await expect(dan.page.locator("[data-testid=room-title]").textContent()).resolves.toContain("#lobby");

    // The room field says what is wrong with a name before it is used.
    await dan.page.fill("#custom-room", "no spaces!");
    await dan.page.locator("#custom-room-hint", { hasText: "Letters, digits and _ . : - only" }).waitFor();
    expect(await dan.page.locator(".rooms button[type=submit]").isDisabled()).toBe(true);
    await dan.page.fill("#custom-room", "fine-name");
    await dan.page.locator("#custom-room-hint").waitFor({ state: "detached" });
    await dan.page.click(".rooms button[type=submit]");
    await dan.page.locator("[data-testid=room-title]", { hasText: "#fine-name" }).waitFor();
    expect(new URL(dan.page.url()).searchParams.get("room")).toBe("demo:fine-name");
  });

  it("before the first connection says it is connecting, not that nobody is online", async () => {
    const room = uniqueDemoRoom();
    await publishOverHttp(server, room, "zoe", ["from before"]);
    const eve = await open("eve", room);
    // Sockets from now on reach a stand-in that never answers.
    await eve.page.routeWebSocket(/\/v1\/rooms\/.*\/ws/, () => {});
    await eve.page.reload();
    await eve.waitForStatus("connecting");
    const members = eve.page.locator("[data-testid=members-panel]");
    expect(await members.textContent()).toContain("Connecting…");
    expect(await members.textContent()).not.toMatch(/Online \(\d+\)|as last seen/);
    await expect(eve.page.locator("[data-testid=message-list]").textContent()).resolves.toContain("Connecting to #");
    expect(await eve.page.locator("[data-testid=empty-hint]").count(), "not called empty before it loaded").toBe(0);
    await eve.screenshot("connecting");
  });

  it("lays out a phone with the conversation first", async () => {
    const room = uniqueDemoRoom();
    await publishOverHttp(server, room, "zoe", numbered("phone", 30));
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const fay = await open("fay", room, phone);
    await open("gus", room);
    await eventually("gus online", () => fay.members(), (m) => m.gus === 1);
    await fay.waitForMessage("phone 30");
    const [list, members, composer] = await Promise.all(
      ["[data-testid=message-list]", "[data-testid=members-panel]", ".composer"].map((s) => fay.page.locator(s).boundingBox()),
    );
    expect(list && members && composer).toBeTruthy();
    expect(list!.y, "messages above the member list").toBeLessThan(members!.y);
    expect(list!.height, "the conversation takes most of the screen").toBeGreaterThan(844 * 0.45);
    expect(composer!.y + composer!.height, "the composer is on screen").toBeLessThanOrEqual(844);
    expect(list!.x + list!.width, "nothing wider than the phone").toBeLessThanOrEqual(390);
    await eventually("phone 30 in view", () => messageListView(fay.page), (v) => v.lastInView && v.lastText === "phone 30");
    await fay.screenshot("phone");
  });
});

describe("the demo's connection notices", () => {
  it("says why when the server refuses the room for good, and stops retrying", async () => {
    const ivo = await open("ivo", uniqueDemoRoom());
    // A stand-in server that refuses, as protocol.md §5 has the Worker refuse an upgrade.
    let attempts = 0;
    await ivo.page.routeWebSocket(/\/v1\/rooms\/.*\/ws/, (ws) => {
      attempts++;
      ws.send(JSON.stringify({ type: "error", code: "forbidden", message: "this token does not open this room" }));
      ws.close({ code: 4501, reason: "forbidden" });
    });
    await ivo.page.reload();
    await ivo.waitForStatus("failed");
    const notice = ivo.page.locator("[data-testid=connection-notice][data-kind=failed]");
    await notice.waitFor();
    expect(await notice.textContent()).toContain("forbidden: this token does not open this room");
    expect(await ivo.page.locator("[data-testid=message-list]").textContent()).not.toContain("Connecting");
    await ivo.screenshot("refused");
    await ivo.page.waitForTimeout(1_500);
    expect(attempts, "no retry after a refusal for good").toBe(1);
  });

  it("tells 'you are offline' apart from 'server unreachable'", async () => {
    const room = uniqueDemoRoom();
    const hal = await open("hal", room);
    const notice = hal.page.locator("[data-testid=connection-notice]");

    await hal.context.setOffline(true);
    await hal.waitForStatus("offline");
    await notice.and(hal.page.locator("[data-kind=offline]")).waitFor();
    expect(await notice.textContent()).toContain("You are offline");
    await hal.say("written offline");
    await hal.page.locator("[data-testid=pending]", { hasText: "queued (offline)" }).waitFor();
    await hal.screenshot("offline");
    await hal.context.setOffline(false);
    await hal.waitForStatus("live");
    await notice.waitFor({ state: "detached" });
    await hal.waitForMessage("written offline");

    await server.kill();
    try {
      await notice.and(hal.page.locator("[data-kind=unreachable]")).waitFor({ timeout: 20_000 });
      expect(await notice.textContent()).toContain(`Cannot reach the server at ${new URL(server.url).host}`);
      expect(await hal.page.locator("[data-testid=connection-status]").textContent()).not.toContain("offline");
      await hal.say("written while the server is down");
      await hal.page.locator("[data-testid=pending]", { hasText: "queued (not connected)" }).waitFor();
      await hal.screenshot("server-unreachable");
    } finally {
      await server.start();
    }
    await hal.waitForStatus("live", 40_000);
    await notice.waitFor({ state: "detached" });
    await hal.waitForMessage("written while the server is down");
  });
});
