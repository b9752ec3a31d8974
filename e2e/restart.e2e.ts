import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import type { TestServer } from "../packages/client/test/integration/server.js";
import { User, eventually, launch, serve, uniqueDemoRoom } from "./harness.js";

let browser: Browser;
let server: TestServer;

beforeAll(async () => {
  [browser, server] = await Promise.all([launch(), serve()]);
});
afterAll(async () => {
  await browser?.close();
  await server?.dispose();
});

describe("outages", () => {
  it("reconnects both pages after the dev server is stopped and started, and loses nothing", async () => {
    const room = uniqueDemoRoom();
    const ivy = await User.open(browser, server, "ivy", room);
    const jack = await User.open(browser, server, "jack", room);
    await ivy.say("before the restart");
    await jack.waitForMessage("before the restart");

    await server.kill();
    await ivy.waitForStatus("reconnecting");
    await jack.waitForStatus("reconnecting");
    await ivy.screenshot("reconnecting");
    await ivy.say("during the outage");
    await server.start();

    await ivy.waitForStatus("live", 40_000);
    await jack.waitForStatus("live", 40_000);
    await jack.waitForMessage("during the outage");
    await jack.say("after the restart");
    await ivy.waitForMessage("after the restart");
    for (const user of [ivy, jack]) {
      for (const text of ["before the restart", "during the outage", "after the restart"]) {
        expect(await user.count(text), `${user.name}: ${text}`).toBe(1);
      }
      expect(user.errors).toEqual([]);
    }
  });

  it("delivers a message queued before a page reload exactly once (durable outbox)", async () => {
    const room = uniqueDemoRoom();
    const kate = await User.open(browser, server, "kate", room);
    const liam = await User.open(browser, server, "liam", room);
    // Hold kate's sockets: they reach a stand-in that never says welcome, so her
    // publish stays queued in the IndexedDB outbox.
    let hold = true;
    await kate.page.routeWebSocket(/\/v1\/rooms\/.*\/ws/, (ws) => {
      if (!hold) ws.connectToServer();
    });
    await kate.page.reload();
    await kate.waitForStatus("connecting");
    await kate.say("queued before reload");
    await kate.page.locator("[data-testid=pending]", { hasText: "queued before reload" }).waitFor();
    await new Promise((r) => setTimeout(r, 300)); // let the IndexedDB write commit
    hold = false;
    await kate.page.reload();
    await kate.waitForStatus("live");
    await liam.waitForMessage("queued before reload");
    await eventually("delivered once at kate", () => kate.count("queued before reload"), (n) => n === 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await liam.count("queued before reload")).toBe(1);
    expect(await kate.count("queued before reload")).toBe(1);
  });
});
