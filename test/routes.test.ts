import { describe, expect, it } from "vitest";
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
