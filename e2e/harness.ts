/**
 * End-to-end harness: a real `wrangler dev` serving the built demo, and Debian's
 * Chromium driven by playwright-core with the flags that keep it off the network.
 */
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { mintToken, startServer, type TestServer } from "../packages/client/test/integration/server.js";

export const SCREENSHOTS = fileURLToPath(new URL("../test-results/e2e/", import.meta.url));

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
    ],
  });
}

export async function serve(vars: Record<string, string> = {}): Promise<TestServer> {
  return startServer({ PRESENCE_GRACE_SECONDS: "1", LIVENESS_TIMEOUT_SECONDS: "10", ...vars });
}

/**
 * What the browser itself logs when the network or the server is away (tests cause
 * outages on purpose); anything else on the console is the app's fault.
 */
const NETWORK_NOISE = [/net::ERR_/, /^WebSocket connection to .* failed/, /^Failed to load resource/];

/** A signed-in user in their own browser context (own storage), with console errors collected. */
export class User {
  readonly consoleErrors: string[] = [];

  /** Console errors and uncaught exceptions from the app (browser network noise excluded). */
  get errors(): string[] {
    return this.consoleErrors.filter((e) => !NETWORK_NOISE.some((re) => re.test(e)));
  }
  private constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {}

  static async open(browser: Browser, server: TestServer, name: string, room: string, context?: BrowserContext): Promise<User> {
    const ctx = context ?? (await browser.newContext({ viewport: { width: 1000, height: 700 } }));
    const page = await ctx.newPage();
    const user = new User(name, ctx, page);
    page.on("console", (m) => {
      if (m.type() === "error") user.consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => user.consoleErrors.push(`uncaught: ${e.message}`));
    await page.goto(`${server.url}/?room=${encodeURIComponent(room)}`);
    if (await page.locator("#name").isVisible()) {
      await page.fill("#name", name);
      await page.click("button[type=submit]");
    }
    await user.waitForStatus("live");
    return user;
  }

  async waitForStatus(text: string, timeout = 20_000): Promise<void> {
    await this.page.locator("[data-testid=connection-status]", { hasText: text }).waitFor({ timeout });
  }

  async say(text: string): Promise<void> {
    await this.page.fill("#draft", text);
    await this.page.press("#draft", "Enter");
  }

  /** How many delivered messages (from the server, not pending) carry exactly `text`. */
  async count(text: string): Promise<number> {
    return this.page.locator("li[data-seq] .text", { hasText: new RegExp(`^${escape(text)}$`) }).count();
  }

  async waitForMessage(text: string, timeout = 20_000): Promise<void> {
    await this.page.locator("li[data-seq] .text", { hasText: new RegExp(`^${escape(text)}$`) }).first().waitFor({ timeout });
  }

  /** user id → device count, from the presence list. */
  async members(): Promise<Record<string, number>> {
    return this.page.locator("[data-testid=members] li").evaluateAll((items) =>
      Object.fromEntries(items.map((li) => [li.getAttribute("data-user"), Number(li.getAttribute("data-devices"))])),
    );
  }

  async screenshot(name: string): Promise<void> {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await this.page.screenshot({ path: `${SCREENSHOTS}${name}.png` });
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

let counter = 0;
export function uniqueDemoRoom(): string {
  return `demo:e2e-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}

/** Polls an async check until it holds. */
export async function eventually<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stores messages in `room` over the HTTP API, as `from`, one after another (each acked before the next). */
export async function publishOverHttp(server: TestServer, room: string, from: string, texts: string[]): Promise<void> {
  const token = await mintToken({ sub: from });
  for (const [i, text] of texts.entries()) {
    const res = await fetch(`${server.url}/v1/rooms/${encodeURIComponent(room)}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ id: `http-${Date.now().toString(36)}-${i}`, data: { text } }),
    });
    if (!res.ok) throw new Error(`publish "${text}" answered ${res.status}: ${await res.text()}`);
  }
}

/** Where the demo's message list stands: scroll metrics and whether its last row is fully visible in it. */
export async function messageListView(page: Page): Promise<{ scrollTop: number; scrollHeight: number; clientHeight: number; lastText: string | null; lastInView: boolean }> {
  return page.locator("[data-testid=message-list]").evaluate((list) => {
    const last = list.lastElementChild;
    const box = list.getBoundingClientRect();
    const row = last?.getBoundingClientRect();
    return {
      scrollTop: list.scrollTop,
      scrollHeight: list.scrollHeight,
      clientHeight: list.clientHeight,
      lastText: last?.querySelector(".text")?.textContent ?? null,
      lastInView: !!row && row.top >= box.top - 1 && row.bottom <= box.bottom + 1,
    };
  });
}
