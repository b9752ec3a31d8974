/**
 * docs/client.md's browser example, run verbatim: the code block marked
 * `docs-example:browser` is bundled (esbuild, with the client's source) into a page
 * the browser loads from the server's own origin, against a real `wrangler dev`.
 * If the docs drift from the client or the server, this fails.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { TestServer } from "../packages/client/test/integration/server.js";
import { launch, serve } from "./harness.js";

const root = fileURLToPath(new URL("../", import.meta.url));

/** The first ```js block after the `docs-example:<name>` marker. */
function docsExample(name: string): string {
  const doc = readFileSync(`${root}docs/client.md`, "utf8");
  const marker = doc.indexOf(`<!-- docs-example:${name}`);
  if (marker === -1) throw new Error(`docs/client.md has no docs-example:${name} marker`);
  const block = /```js\n([\s\S]*?)```/.exec(doc.slice(marker));
  if (!block) throw new Error(`no js block after docs-example:${name}`);
  return block[1]!;
}

async function bundle(code: string): Promise<string> {
  const out = await build({
    stdin: { contents: code, resolveDir: root, loader: "js" },
    bundle: true,
    write: false,
    format: "esm",
    target: "es2022",
    alias: { "@roomcast/client": `${root}packages/client/src/index.ts` },
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  [server, browser] = await Promise.all([serve(), launch()]);
});

afterAll(async () => {
  await browser?.close();
  await server?.dispose();
});

test("docs/client.md's browser example works as written: it signs in, publishes and sees its own message", async () => {
  const script = await bundle(docsExample("browser"));
  const page = await browser.newPage();
  const logged: unknown[][] = [];
  const errors: string[] = [];
  const texts: string[] = [];
  page.on("console", async (m) => {
    texts.push(m.text());
    // A page closing under a pending read only loses that line.
    logged.push(await Promise.all(m.args().map((a) => a.jsonValue())).catch(() => []));
  });
  page.on("pageerror", (e) => errors.push(e.message));
  // The script runs in a document of the server's origin, as a bundler's output served from there would
  // (a synthesized response would count as a public page for Chromium's local-network checks). The token
  // request and the WebSocket go to the real server.
  await page.goto(`${server.url}/healthz`);
  await page.addScriptTag({ type: "module", content: script });
  const deadline = Date.now() + 20_000;
  const isAck = (args: unknown[]) => typeof (args[0] as { seq?: unknown } | null)?.seq === "number";
  // Both lines: the message event and the resolved publish (in either order).
  while (!(logged.some((args) => args[0] === "alice") && logged.some(isAck)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(logged.find((args) => args[0] === "alice"), `console: ${JSON.stringify(logged)} errors: ${JSON.stringify(errors)} texts: ${JSON.stringify(texts)}`).toEqual(["alice", { text: "hello" }]);
  const ack = logged.find(isAck)?.[0] as { seq: number; duplicate: boolean };
  expect(ack).toMatchObject({ duplicate: false });
  expect(ack.seq).toBeGreaterThan(0);
  expect(errors).toEqual([]);
  await page.close();
});
