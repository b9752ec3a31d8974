import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../src/index.js";
import { IDENTITY_HEADER, RESUME_HEADER } from "../src/room/room.js";
import { PROTOCOL_VERSION } from "@roomcast/protocol";
import { connect, fetchWorker, httpPublish, presentUsers, TestSocket, token, uniqueRoom, upgrade } from "./helpers.js";
import { expectRefused } from "./refusals.js";

// vitest.config.ts sets MAX_MESSAGE_BYTES=1024: a publish body may be 1024 + 1024 bytes.
const MESSAGE_BODY_CAP = 2_048;
const DRAIN_BODY_CAP = 1_024;
const CHUNK = 512;

/**
 * A body that, for these limits, never ends, counting the bytes anyone pulled from it;
 * nothing is pulled before the first read. Each pull waits a turn of the event loop, and
 * the stream fails after 4 MiB, so a server that reads it whole fails the test instead
 * of hanging the run.
 */
function endless(): { body: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (pulled >= 4 * 1024 * 1024) return controller.error(new Error("the server read 4 MiB of an endless body"));
        pulled += CHUNK;
        controller.enqueue(new Uint8Array(CHUNK).fill(0x20));
      },
    },
    { highWaterMark: 0 },
  );
  return { body, pulled: () => pulled };
}

/** A stream of exactly `text`, in chunks, so it travels without a Content-Length. */
function chunked(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + CHUNK));
      offset += CHUNK;
    },
  });
}

/** `json` padded with trailing spaces (still valid JSON) to exactly `bytes` UTF-8 bytes. */
function padded(json: unknown, bytes: number): string {
  const text = JSON.stringify(json);
  const length = new TextEncoder().encode(text).length;
  if (length > bytes) throw new Error(`${length} bytes already`);
  return text + " ".repeat(bytes - length);
}

/** Straight into the app in this isolate: what the handler pulls from the body is all that is pulled. */
async function inProcess(path: string, init: RequestInit): Promise<Response> {
  return app.fetch(new Request(`https://roomcast.test${path}`, init), env);
}

const publishHeaders = async (extra: Record<string, string> = {}) => ({
  Authorization: `Bearer ${await token()}`,
  "Content-Type": "application/json",
  ...extra,
});
const adminHeaders = async (extra: Record<string, string> = {}) => ({
  Authorization: `Bearer ${await token({ cap: { "*": ["admin"] } })}`,
  "Content-Type": "application/json",
  ...extra,
});

describe("POST /messages body limit", () => {
  it("refuses a Content-Length far over the cap with 413 without reading the body", async () => {
    const { body, pulled } = endless();
    const res = await inProcess(`/v1/rooms/${uniqueRoom()}/messages`, {
      method: "POST",
      headers: await publishHeaders({ "Content-Length": String(90 * 1024 * 1024) }),
      body,
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "message_too_large" } });
    expect(pulled()).toBe(0);
  });

  it("answers 413 through the Worker's fetch even though the body never ends", async () => {
    const { body, pulled } = endless();
    const res = await fetchWorker(`/v1/rooms/${uniqueRoom()}/messages`, {
      method: "POST",
      headers: await publishHeaders({ "Content-Length": String(90 * 1024 * 1024) }),
      body,
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "message_too_large" } });
    // The runtime pipes a little ahead of the Worker (512 bytes when this was written); reading it whole pulls all 4 MiB.
    expect(pulled()).toBeLessThan(64 * 1024);
  });

  it("refuses a chunked body once it passes the cap, and stops reading there", async () => {
    const { body, pulled } = endless();
    const res = await inProcess(`/v1/rooms/${uniqueRoom()}/messages`, { method: "POST", headers: await publishHeaders(), body });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: "message_too_large" } });
    expect(pulled()).toBeGreaterThan(MESSAGE_BODY_CAP);
    expect(pulled()).toBeLessThanOrEqual(MESSAGE_BODY_CAP + CHUNK);

    const e2 = endless();
    const viaWorker = await fetchWorker(`/v1/rooms/${uniqueRoom()}/messages`, { method: "POST", headers: await publishHeaders(), body: e2.body });
    expect(e2.pulled()).toBeLessThan(64 * 1024);
    expect(viaWorker.status).toBe(413);
  });

  it("accepts a body of exactly the cap, counted in UTF-8 bytes, chunked or with a Content-Length", async () => {
    const room = uniqueRoom();
    // 500 × "é" is 1000 bytes of data (1002 serialised, under 1024); the body is padded to the cap.
    const data = "é".repeat(500);
    const atCap = (id: string) => padded({ id, data }, MESSAGE_BODY_CAP);
    expect(new TextEncoder().encode(atCap("a")).length).toBe(MESSAGE_BODY_CAP);

    const withLength = await fetchWorker(`/v1/rooms/${room}/messages`, { method: "POST", headers: await publishHeaders(), body: atCap("with-length") });
    expect(withLength.status).toBe(201);
    const streamed = await fetchWorker(`/v1/rooms/${room}/messages`, { method: "POST", headers: await publishHeaders(), body: chunked(atCap("streamed")) });
    expect(streamed.status).toBe(201);
    expect(await streamed.json()).toMatchObject({ id: "streamed", duplicate: false });

    // One byte more is refused, either way.
    const over = atCap("over") + " ";
    for (const body of [over, chunked(over)]) {
      const res = await fetchWorker(`/v1/rooms/${room}/messages`, { method: "POST", headers: await publishHeaders(), body });
      expect(res.status).toBe(413);
      expect(await res.json()).toMatchObject({ error: { code: "message_too_large" } });
    }
  });
});

describe("POST /drain body limit", () => {
  it("refuses a Content-Length over 1 KiB with 400 invalid_request without reading the body", async () => {
    const { body, pulled } = endless();
    const res = await inProcess(`/v1/rooms/${uniqueRoom()}/drain`, {
      method: "POST",
      headers: await adminHeaders({ "Content-Length": String(90 * 1024 * 1024) }),
      body,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    expect(pulled()).toBe(0);
  });

  it("refuses a chunked body past 1 KiB, and accepts one of exactly 1 KiB", async () => {
    const { body, pulled } = endless();
    const res = await inProcess(`/v1/rooms/${uniqueRoom()}/drain`, { method: "POST", headers: await adminHeaders(), body });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    expect(pulled()).toBeLessThanOrEqual(DRAIN_BODY_CAP + CHUNK);

    const room = uniqueRoom();
    const atCap = padded({ windowSeconds: 0 }, DRAIN_BODY_CAP);
    const ok = await fetchWorker(`/v1/rooms/${room}/drain`, { method: "POST", headers: await adminHeaders(), body: chunked(atCap) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ connections: 0, windowMs: 0 });
    const over = await fetchWorker(`/v1/rooms/${room}/drain`, { method: "POST", headers: await adminHeaders(), body: atCap + " " });
    expect(over.status).toBe(400);
  });
});

describe("non-ASCII user ids", () => {
  // verify.ts counts `sub` in UTF-16 code units (String#length): 100 × U+1F600 (4 UTF-8
  // bytes, 2 units each) is the longest such `sub` accepted.
  const sub = "😀".repeat(100);

  it("the longest accepted sub of 4-byte characters connects, publishes and is listed exactly", async () => {
    expect(sub.length).toBe(200);
    const room = uniqueRoom();
    const socket = await connect(room, await token({ sub }));
    const welcome = await socket.next("welcome");
    expect(socket.response.status).toBe(101);
    expect(welcome.userId).toBe(sub);

    const seq = await httpPublish(room, "emoji-1", { text: "hi" }, sub);
    const message = await socket.next("message");
    expect(message).toMatchObject({ seq, id: "emoji-1", from: sub });

    expect(await presentUsers(room)).toEqual([sub]);
    socket.close();
  });

  it("reaches the room in an ASCII identity header (header values are ByteStrings)", async () => {
    // The app with a ROOMS binding that records what the Worker hands the room.
    const room = uniqueRoom();
    const sent: Headers[] = [];
    const rooms = {
      getByName: (name: string) => ({
        fetch: (url: string, init: RequestInit) => {
          sent.push(new Headers(init.headers));
          return env.ROOMS.getByName(name).fetch(url, init);
        },
      }),
    };
    const res = await app.fetch(
      new Request(`https://roomcast.test/v1/rooms/${room}/ws?epoch=e-1&after=0`, {
        headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": PROTOCOL_VERSION, Authorization: `Bearer ${await token({ sub })}` },
      }),
      { ...env, ROOMS: rooms },
    );
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    const socket = new TestSocket(res.webSocket!, res);
    expect((await socket.next("welcome")).userId).toBe(sub);
    expect(sent).toHaveLength(1);
    for (const name of [IDENTITY_HEADER, RESUME_HEADER]) {
      const value = sent[0]!.get(name)!;
      expect(value).toMatch(/^[\x21-\x7e]+$/);
    }
    expect(JSON.parse(decodeURIComponent(sent[0]!.get(IDENTITY_HEADER)!))).toMatchObject({ userId: sub, room });
    socket.close();
  });

  it("one character more is refused (unauthorized)", async () => {
    const res = await upgrade(uniqueRoom(), await token({ sub: `${sub}a` }));
    await expectRefused(res, "unauthorized");
  });

  it("the room decodes the identity header, and refuses a malformed encoding as a malformed identity", async () => {
    const room = uniqueRoom();
    const identity = { userId: sub, room, permissions: ["subscribe"], expiresAt: Math.floor(Date.now() / 1000) + 300 };
    const good = encodeURIComponent(JSON.stringify(identity));
    const accepted = await env.ROOMS.getByName(room).fetch("https://room.internal/connect", { headers: { Upgrade: "websocket", [IDENTITY_HEADER]: good } });
    expect(accepted.status).toBe(101);
    accepted.webSocket!.accept();
    const socket = new TestSocket(accepted.webSocket!, accepted);
    expect((await socket.next("welcome")).userId).toBe(sub);
    socket.close();
    for (const header of [good.slice(0, -1) + "%", "%E0%A4%A", encodeURIComponent("{not json")]) {
      const res = await env.ROOMS.getByName(room).fetch("https://room.internal/connect", { headers: { Upgrade: "websocket", [IDENTITY_HEADER]: header } });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: { code: "invalid_request", message: "missing or malformed internal identity" } });
    }
  });
});
