// scripts/lib/ports.mjs: ports for test servers never come from the kernel's ephemeral
// range (where an outgoing connection or another server's port 0 can take them between
// the check and the bind) and are never handed out twice by one process.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { ephemeralLow, freePort, isAddressInUse } from "./lib/ports.mjs";

const listen = (port) =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port }, () => resolve(srv));
  });
const close = (srv) => new Promise((r) => srv.close(r));

test("ports are below the ephemeral range, distinct, and free when handed out", async () => {
  const low = ephemeralLow();
  const ports = [];
  for (let i = 0; i < 200; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length, "a port was handed out twice");
  for (const port of ports) {
    assert.ok(port >= 10_000 && port < low, `${port} is not in [10000, ${low})`);
  }
  // Each one can really be bound (checked on a sample, in parallel).
  const servers = await Promise.all(ports.slice(0, 50).map(listen));
  await Promise.all(servers.map(close));
});

test("never a port that is in use, nor one the caller excludes", async () => {
  const held = [];
  for (let i = 0; i < 20; i++) held.push(await listen(await freePort()));
  const heldPorts = held.map((s) => s.address().port);
  try {
    for (let i = 0; i < 100; i++) {
      const port = await freePort("127.0.0.1", { not: [heldPorts[0]] });
      assert.ok(!heldPorts.includes(port), `${port} is held by this test`);
    }
  } finally {
    await Promise.all(held.map(close));
  }
});

test("recognises a lost port race in wrangler's and Node's words", () => {
  assert.ok(isAddressInUse(new Error("✘ [ERROR] Address already in use (127.0.0.1:36549). Please check")));
  assert.ok(isAddressInUse({ message: "listen EADDRINUSE: address already in use 127.0.0.1:9229" }));
  assert.ok(!isAddressInUse(new Error("wrangler dev did not start within 60 s")));
  assert.ok(!isAddressInUse(undefined));
});
