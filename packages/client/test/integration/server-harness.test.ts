// The test server itself (server.ts): a restart that finds its port taken for a moment
// (another process got it between kill and start) waits and gets it back, instead of
// failing the suite that asked for it — CI once failed on "Address already in use".
import { createServer, type Server } from "node:net";
import { afterAll, expect, it } from "vitest";
import { startServer, waitFor, type TestServer } from "./server.js";

let server: TestServer | undefined;
afterAll(async () => {
  await server?.dispose();
});

it("a restart whose port is briefly held by another process retries and serves on the same URL", async () => {
  server = await startServer();
  const port = Number(new URL(server.url).port);
  await server.kill();
  const squatter: Server = await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port }, () => resolve(s));
  });
  // Held until wrangler has failed on it once, then let go.
  const before = server.output().length;
  const lostOnce = () => server!.output().slice(before).includes("Address already in use");
  const released = waitFor("wrangler to fail on the held port", lostOnce, 30_000).finally(() => squatter.close());
  await server.start();
  await released;
  expect(lostOnce()).toBe(true);
  expect((await fetch(`${server.url}/healthz`)).ok).toBe(true);
}, 120_000);
