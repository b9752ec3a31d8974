/**
 * The live console (/console/) against a real `wrangler dev`: real clients (raw
 * WebSockets from Node, as docs/protocol.md §12 does) in a room, an admin in Chromium.
 * Each screenshot (docs/screenshots/console-*.png are copies) is taken after the test
 * checked what it shows.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken, type TestServer } from "../packages/client/test/integration/server.js";
import { eventually, launch, publishOverHttp, SCREENSHOTS, serve } from "./harness.js";

const DOCS = fileURLToPath(new URL("../docs/screenshots/", import.meta.url));

/** A raw client: a socket in the room that pings, with the frames it got and how it closed. */
class Client {
  frames: { type: string; [k: string]: unknown }[] = [];
  closed: number | null = null;
  private constructor(readonly userId: string, readonly ws: WebSocket) {}

  static async open(server: TestServer, room: string, userId: string): Promise<Client> {
    const token = await mintToken({ sub: userId, cap: { [room]: ["subscribe", "publish", "presence"] } });
    const url = `${server.url.replace("http", "ws")}/v1/rooms/${encodeURIComponent(room)}/ws`;
    // Node's WebSocket (undici) takes headers: the token never goes into the URL.
    const ws = new WebSocket(url, { protocols: ["roomcast.v1"], headers: { Authorization: `Bearer ${token}` } } as unknown as string[]);
    const client = new Client(userId, ws);
    ws.onmessage = (e) => client.frames.push(JSON.parse(String(e.data)));
    ws.onclose = (e) => (client.closed = e.code);
    await eventually(`${userId} welcomed`, async () => client.frames.some((f) => f.type === "welcome"), Boolean);
    return client;
  }

  send(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
  copyFileSync(`${SCREENSHOTS}${name}.png`, `${DOCS}${name}.png`);
}

describe("console", () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const room = `ops:console-${Date.now().toString(36)}`;
  const clients: Client[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([serve(), launch()]);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  });

  afterAll(async () => {
    for (const c of clients) c.ws.close();
    await browser?.close();
    await server?.dispose();
  });

  it("signs in with a pasted admin token kept out of the URL, and refuses a token without admin", async () => {
    await page.goto(`${server.url}/console/`);
    await page.fill("#token", await mintToken({ sub: "not-admin", cap: { "*": ["subscribe"] } }));
    await page.click("button[type=submit]");
    await page.locator("[role=alert]", { hasText: "forbidden" }).waitFor();
    await page.locator("#token").waitFor();
    const admin = await mintToken({ sub: "ops", cap: { "*": ["admin"] } });
    await page.fill("#token", `Bearer ${admin}`);
    await page.click("button[type=submit]");
    await page.locator("[data-testid=rooms-table]").waitFor();
    expect(page.url()).not.toContain(admin);
    expect(await page.evaluate(() => sessionStorage.getItem("roomcast.console.token"))).toBe(admin);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
  });

  it("lists the room the clients are in, with connections, users and a message rate", async () => {
    clients.push(await Client.open(server, room, "alice"), await Client.open(server, room, "alice"), await Client.open(server, room, "bob"));
    await publishOverHttp(server, room, "carol", ["one", "two", "three"]);
    const row = page.locator(`tr[data-room="${room}"]`);
    await row.waitFor({ timeout: 20_000 });
    await eventually("3 connections and 2 users listed", async () => [await row.locator("[data-col=connections]").textContent(), await row.locator("[data-col=users]").textContent()], (v) => v[0] === "3" && v[1] === "2");
    await expect.poll(() => row.locator("[data-col=head]").textContent(), { timeout: 10_000 }).toBe("3");
    // More messages between polls: the rate column derives from headSeq.
    const publishing = publishOverHttp(server, room, "carol", Array.from({ length: 8 }, (_, i) => `m${i}`));
    await expect.poll(async () => Number((await row.locator("[data-col=rate]").textContent())?.replace("/s", "")), { timeout: 15_000 }).toBeGreaterThan(0);
    await publishing;
    await shot(page, "console-rooms");
  });

  it("shows one room: its connections, presence and retained range", async () => {
    await page.click(`tr[data-room="${room}"] a`);
    const table = page.locator("[data-testid=connections-table]");
    await eventually("three connection rows", () => table.locator("tbody tr[data-user]").count(), (n) => n === 3);
    expect(await table.locator("tbody tr[data-user=alice]").count()).toBe(2);
    expect(await table.locator("tbody tr[data-user=bob] td").nth(4).textContent()).toBe("roomcast.v1");
    await eventually("presence lists alice (2 devices) and bob", () => page.locator("[data-testid=presence] li").evaluateAll((li) => li.map((x) => `${x.getAttribute("data-user")}:${x.getAttribute("data-devices")}`).sort().join(",")), (s) => s === "alice:2,bob:1");
    expect(await page.locator("[data-testid=summary-retention]").textContent()).toBe("1..11");
    expect(await page.locator("[data-testid=trace-status]").textContent()).toBe("Tracing off");
    // A ping shows up as the connection's last ping.
    for (const c of clients) c.send({ type: "ping" });
    await eventually("every connection has pinged", () => table.locator("tbody tr td:nth-child(3)").allTextContents(), (t) => t.length === 3 && t.every((x) => x !== "never"));
    await shot(page, "console-room");
  });

  it("traces the room: frames in and out in the timeline and the chart, then stops", async () => {
    await page.click("button:has-text('Start tracing')");
    await page.locator("[data-testid=trace-status]", { hasText: /^Tracing until/ }).waitFor();
    const [alice, , bob] = clients;
    for (let i = 0; i < 3; i++) alice!.send({ type: "publish", id: `flow-${i}`, data: { text: `flow ${i}` } });
    bob!.send({ type: "ping" });
    const timeline = page.locator("[data-testid=trace-timeline]");
    await eventually("alice's three publishes traced in", () => timeline.locator("tr[data-dir=in][data-type=publish]").count(), (n) => n === 3);
    const row = timeline.locator("tr[data-dir=in][data-type=publish]").first();
    expect(await row.locator("td").nth(4).textContent()).toBe("alice");
    // Payloads were not asked for: no data column content.
    expect(await row.locator("td.data").textContent()).toBe("");
    await eventually("frames out traced (acks and deliveries)", () => timeline.locator("tr[data-dir=out]").count(), (n) => n >= 3);
    await eventually("the chart has bars in and out", () => page.locator("[data-testid=flow-chart] rect.in, [data-testid=flow-chart] rect.out").count(), (n) => n >= 2);
    // Rates are averaged over the chart's window: three frames make a small but non-zero rate.
    const rates = (await page.locator("[data-testid=flow-rates]").textContent()) ?? "";
    expect(Number(/in ([\d.]+)\/s/.exec(rates)?.[1])).toBeGreaterThan(0);
    expect(Number(/out ([\d.]+)\/s/.exec(rates)?.[1])).toBeGreaterThan(0);
    await shot(page, "console-flow");
    await page.click("button:has-text('Stop tracing')");
    await page.locator("[data-testid=trace-status]", { hasText: "Tracing off" }).waitFor();
  });

  it("kicks a user from the room view", async () => {
    const bob = clients[2]!;
    await page.click("button:has-text('Kick bob')");
    await page.locator("[data-testid=kick-result]", { hasText: "Kicked bob: 1 connection closed" }).waitFor();
    await eventually("bob closed with 4502", async () => bob.closed, (c) => c === 4502);
    await eventually("bob gone from the connections", () => page.locator("[data-testid=connections-table] tbody tr[data-user=bob]").count(), (n) => n === 0);
  });

  it("drains the room, then every room", async () => {
    await page.click("button:has-text('Drain this room…')");
    await page.fill("[aria-label='Drain window (seconds)']", "0");
    await page.click("button:has-text('Confirm drain')");
    await page.locator("[data-testid=drain-result]", { hasText: "2 connections told to reconnect within 0 s" }).waitFor();
    await eventually("alice's sockets got reconnect frames and 4000 closes", async () => clients.slice(0, 2).map((c) => [c.frames.some((f) => f.type === "reconnect"), c.closed]), (v) => v.every(([r, c]) => r === true && c === 4000));
    // Back on the list, with a fresh client so the room is active again.
    clients.push(await Client.open(server, room, "dave"));
    await page.click("header h1 a");
    await page.locator(`tr[data-room="${room}"]`).waitFor();
    await page.click("button:has-text('Drain all rooms…')");
    await page.fill("[aria-label='Drain window (seconds)']", "0");
    await page.click("button:has-text('Confirm drain of every room')");
    await page.locator("[data-testid=drain-all-result]", { hasText: /^Drained [1-9]\d* of [1-9]\d* rooms\.$/ }).waitFor();
    await eventually("dave drained", async () => clients[3]!.closed, (c) => c === 4000);
    // The browser logs each refused request (the 403 sign-in, a 503 from an endpoint not built yet); nothing else.
    expect(errors.filter((e) => !/^Failed to load resource/.test(e))).toEqual([]);
  });
});
