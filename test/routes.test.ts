import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../src/index.js";
import { authConfigFromEnv, verifyToken } from "../src/auth/verify.js";
import { fetchWorker, token, uniqueRoom, upgrade } from "./helpers.js";

describe("routes", () => {
  it("reports health with the protocol version", async () => {
    const res = await fetchWorker("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, protocol: "roomcast.v1" });
  });

  it("answers unknown routes with 404 not_found as JSON", async () => {
    const res = await fetchWorker("/v2/anything");
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
  });

  it("answers a plain GET of the socket route with 426 upgrade_required", async () => {
    const res = await fetchWorker(`/v1/rooms/${uniqueRoom()}/ws`, { headers: { Authorization: `Bearer ${await token()}` } });
    expect(res.status).toBe(426);
    expect(await res.json()).toMatchObject({ error: { code: "upgrade_required" } });
  });

  it("refuses an upgrade that does not offer roomcast.v1 with 400 unsupported_protocol", async () => {
    for (const protocols of [[], ["roomcast.v0"], ["chat"]]) {
      const res = await upgrade(uniqueRoom(), await token(), { protocols });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "unsupported_protocol" } });
    }
  });
});

describe("the dev token endpoint", () => {
  it("is absent (404) unless DEV_TOKEN_ENDPOINT=enabled and ENVIRONMENT=development", async () => {
    // The test environment is ENVIRONMENT=test without DEV_TOKEN_ENDPOINT, like production.
    const res = await fetchWorker("/dev/token", { method: "POST", body: JSON.stringify({ name: "alice" }) });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: "not_found" } });
  });

  it("mints a demo token that the Worker accepts, when enabled for development", async () => {
    const devEnv = { ...env, ENVIRONMENT: "development", DEV_TOKEN_ENDPOINT: "enabled" };
    const res = await app.request("/dev/token", { method: "POST", body: JSON.stringify({ name: "alice" }) }, devEnv);
    expect(res.status).toBe(200);
    const { token: jwt, expiresAt } = (await res.json()) as { token: string; expiresAt: number };
    const verified = await verifyToken(jwt, authConfigFromEnv(devEnv));
    expect(verified).toMatchObject({ userId: "alice", cap: { "demo:*": ["subscribe", "publish", "presence"] }, expiresAt });
    const bad = await app.request("/dev/token", { method: "POST", body: JSON.stringify({ name: "no spaces" }) }, devEnv);
    expect(bad.status).toBe(400);
  });
});
