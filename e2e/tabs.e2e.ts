/**
 * `shareAcrossTabs` in Chromium: three tabs of one browser share one server
 * connection; messages published in each reach all three once; closing the
 * leader tab hands the connection to another tab (takeover time measured) and
 * messages published during the switch arrive once in every tab.
 */
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken, type TestServer } from "../packages/client/test/integration/server.js";
import { SCREENSHOTS, eventually, launch, serve } from "./harness.js";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

let browser: Browser;
let server: TestServer;
let bundle: string;
/** Serves the test page; on loopback, so Chromium's local network access checks let it reach the dev server. */
let pages: Server;
let pageOrigin: string;

beforeAll(async () => {
  const src = (path: string) => fileURLToPath(new URL(path, import.meta.url));
  const built = await build({
    entryPoints: [src("./tabs/page.ts")],
    bundle: true,
    write: false,
    format: "esm",
    target: "es2022",
    alias: { "@roomcast/protocol": src("../packages/protocol/src/index.ts") },
  });
  bundle = built.outputFiles[0]!.text;
  pages = createServer((req, res) => {
    if (req.url?.startsWith("/page.js")) {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(bundle);
    } else {
      res.writeHead(200, { "Content-Type": "text/html" }).end(`<!doctype html><meta charset="utf-8"><title>tabs</title><script type="module" src="/page.js"></script>`);
    }
  });
  await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve));
  pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  // The page's origin is not the server's: allow it (the server's own origin is not used here).
  [browser, server] = await Promise.all([launch(), serve({ ALLOWED_ORIGINS: pageOrigin })]);
});
afterAll(async () => {
  await browser?.close();
  await server?.dispose();
  await new Promise((resolve) => pages?.close(resolve));
});

interface Probe {
  state: string;
  leader: boolean;
  messages: { seq: number; text: string }[];
  acks: Record<string, number>;
  errors: string[];
}

async function openTab(context: BrowserContext, room: string, errors: string[]): Promise<Page> {
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
    if (process.env.TABS_DEBUG) console.log(`[tab] ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  await page.exposeFunction("roomcastToken", () => mintToken({ sub: "tess" }));
  await page.goto(`${pageOrigin}/?server=${encodeURIComponent(server.url)}&room=${encodeURIComponent(room)}${process.env.TABS_DEBUG ? "&debug" : ""}`);
  return page;
}

const probe = (page: Page) => page.evaluate(() => JSON.parse(JSON.stringify(window.tab)) as Probe);

/** Connections per user, as the server counts them. */
async function connections(room: string): Promise<Record<string, number>> {
  const token = await mintToken({ sub: "observer", cap: { "*": ["subscribe"] } });
  const res = await fetch(`${server.url}/v1/rooms/${encodeURIComponent(room)}/presence`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`presence: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { members: { userId: string; connections: unknown[] }[] };
  return Object.fromEntries(body.members.map((m) => [m.userId, m.connections.length]));
}

/** Each text exactly once in the tab, in increasing seq. */
function expectOnce(p: Probe, texts: string[], tab: string): void {
  for (const text of texts) expect(p.messages.filter((m) => m.text === text), `${tab}: "${text}"`).toHaveLength(1);
  const seqs = p.messages.map((m) => m.seq);
  expect(seqs, `${tab}: seqs`).toEqual([...new Set(seqs)].sort((a, b) => a - b));
}

async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: `${SCREENSHOTS}${name}.png` });
}

describe("one connection shared by all tabs (shareAcrossTabs)", () => {
  it("three tabs → one server connection, every message once in every tab, and a takeover within 2 s when the leader closes", async () => {
    const room = `tabs-${Date.now().toString(36)}`;
    const context = await browser.newContext({ viewport: { width: 700, height: 420 } });
    const errors: string[] = [];
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(await openTab(context, room, errors));
    for (const tab of tabs) await eventually("tab connected", () => probe(tab), (p) => p.state === "connected");
    const roles = await Promise.all(tabs.map(async (t) => (await probe(t)).leader));
    expect(roles.filter(Boolean)).toHaveLength(1);
    await eventually("one connection on the server", () => connections(room), (c) => c.tess === 1);

    const first = ["one", "two", "three"];
    await Promise.all(tabs.map((t, i) => t.evaluate((text) => window.tab.publish(text), first[i]!)));
    for (const tab of tabs) await eventually("all three messages", () => probe(tab), (p) => first.every((t) => p.messages.some((m) => m.text === t)));
    for (const [i, tab] of tabs.entries()) {
      await eventually("own publish acked in its tab", () => probe(tab), (p) => p.acks[first[i]!] !== undefined);
      expectOnce(await probe(tab), first, `tab ${i}`);
    }
    expect(await connections(room)).toEqual({ tess: 1 });
    for (const [i, tab] of tabs.entries()) await screenshot(tab, `tabs-${i}-${roles[i] ? "leader" : "follower"}`);

    // Close the leader; the others publish while the connection moves.
    const leaderIndex = roles.indexOf(true);
    const rest = tabs.filter((_, i) => i !== leaderIndex);
    const closedAt = Date.now();
    await tabs[leaderIndex]!.close();
    await Promise.all(rest.map((t, i) => t.evaluate((text) => window.tab.publish(text), `during switch ${i}`)));
    const takeover = await eventually(
      "a new leader, connected",
      async () => Promise.all(rest.map(probe)),
      (ps) => ps.some((p) => p.leader && p.state === "connected"),
      10_000,
    );
    const takeoverMs = Date.now() - closedAt;
    console.log(`takeover after the leader tab closed: ${takeoverMs} ms (new leader connected)`);
    expect(takeover.filter((p) => p.leader)).toHaveLength(1);
    expect(takeoverMs).toBeLessThan(2_000);

    const all = [...first, "during switch 0", "during switch 1", "after switch"];
    await rest[0]!.evaluate(() => window.tab.publish("after switch"));
    for (const tab of rest) await eventually("every message", () => probe(tab), (p) => all.every((t) => p.messages.some((m) => m.text === t)));
    await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up, if there were one
    for (const [i, tab] of rest.entries()) {
      const p = await probe(tab);
      expectOnce(p, all, `remaining tab ${i}`);
      expect(p.acks[`during switch ${i}`], `remaining tab ${i}: its publish settled`).toBeGreaterThan(0);
      expect(p.errors, `remaining tab ${i}: errors`).toEqual([]);
      await screenshot(tab, `tabs-after-takeover-${i}${p.leader ? "-leader" : ""}`);
    }
    // The old leader's connection leaves after the presence grace (1 s here).
    await eventually("one connection again", () => connections(room), (c) => c.tess === 1, 10_000);
    expect(errors.filter((e) => !/WebSocket connection to .* failed|net::ERR_/.test(e))).toEqual([]);
    await context.close();
  });
});
