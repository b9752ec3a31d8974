// wrangler.toml turns permessage-deflate off (compatibility flag no_web_socket_compression;
// why: docs/benchmarks.md "Compression"). This runs the production bundle on workerd the way
// the benchmarks' roomcast-direct does, with the compatibility date and flags read from
// wrangler.toml, and checks that a client offering deflate, as every browser does, is answered
// without the extension and still gets its welcome.
import assert from "node:assert/strict";
import { cpus } from "node:os";
import { test } from "node:test";
import { SignJWT } from "jose";
import WebSocket from "ws";
import roomcastDirect from "../bench/adapters/roomcast-direct.mjs";
import { freePort } from "../bench/lib/process.mjs";
import { BENCH_SECRET } from "../bench/lib/roomcast-client.mjs";

test("a client offering permessage-deflate is answered without it", { timeout: 120_000 }, async () => {
  const server = await roomcastDirect.start({ port: await freePort(), cpus: `0-${cpus().length - 1}`, log: () => {} });
  try {
    const jwt = await new SignJWT({ cap: { "*": ["subscribe"] } })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("deflate-check")
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(BENCH_SECRET));
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/v1/rooms/compression-check/ws`, ["roomcast.v1"], {
      perMessageDeflate: true, // offers "permessage-deflate; client_max_window_bits", as browsers do
      headers: { Authorization: `Bearer ${jwt}` },
    });
    let answered = null;
    ws.once("upgrade", (res) => {
      answered = res.headers["sec-websocket-extensions"] ?? null;
    });
    const welcome = await new Promise((resolve, reject) => {
      ws.on("message", (raw) => {
        const frame = JSON.parse(raw.toString());
        if (frame.type === "welcome") resolve(frame);
      });
      ws.once("error", reject);
      ws.once("close", (code, reason) => reject(new Error(`closed before welcome: ${code} ${reason}`)));
    });
    ws.close();
    assert.equal(welcome.type, "welcome");
    assert.equal(answered, null, `the server accepted ${answered}`);
    assert.equal(ws.extensions, "");
  } finally {
    await server.stop();
  }
});
