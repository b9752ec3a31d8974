import { describe, expect, it } from "vitest";
import { BACKEND_RATE, connect, fetchWorker, publish, token, uniqueRoom } from "./helpers.js";

async function httpPublish(room: string, body: unknown, jwt?: string) {
  return fetchWorker(`/v1/rooms/${room}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt ?? (await token({ sub: "backend", rate: BACKEND_RATE }))}`, "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function history(room: string, query: string) {
  return fetchWorker(`/v1/rooms/${room}/messages${query}`, { headers: { Authorization: `Bearer ${await token()}` } });
}

interface HistoryBody {
  room: string;
  epoch: string;
  head: number;
  hasMore: boolean;
  messages: { seq: number; id: string; from: string; data: unknown; ts: number }[];
}

describe("publishing over HTTP", () => {
  it("uses the same log, sequence and broadcast as a socket publish", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    await publish(alice, "ws-1", "from socket");
    const res = await httpPublish(room, { id: "http-1", data: { text: "from backend" } });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ seq: 2, id: "http-1", duplicate: false });
    const messages = await alice.take("message", 2);
    expect(messages[1]).toMatchObject({ seq: 2, id: "http-1", from: "backend", data: { text: "from backend" } });
    alice.close();
  });

  it("acks a repeated id with 200 and the original seq", async () => {
    const room = uniqueRoom();
    expect((await httpPublish(room, { id: "once", data: 1 })).status).toBe(201);
    const again = await httpPublish(room, { id: "once", data: 2 });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ seq: 1, id: "once", duplicate: true });
    const page = (await (await history(room, "")).json()) as HistoryBody;
    expect(page.messages.map((m) => m.data)).toEqual([1]);
  });

  it("generates an id when none is given", async () => {
    const res = await httpPublish(uniqueRoom(), { data: "no id" });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { id: string }).id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("rejects a body that is not JSON, lacks data, or has a bad id with 400 invalid_request", async () => {
    const room = uniqueRoom();
    for (const body of ["not json", { id: "x" }, { id: "bad id!", data: 1 }]) {
      const res = await httpPublish(room, body);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
    const page = (await (await history(room, "")).json()) as HistoryBody;
    expect(page.messages).toEqual([]);
  });
});

describe("history over HTTP", () => {
  it("pages forward with after and limit and says when more follow", async () => {
    const room = uniqueRoom();
    for (let i = 1; i <= 7; i++) await httpPublish(room, { id: `m${i}`, data: i });
    const first = (await (await history(room, "?after=0&limit=3")).json()) as HistoryBody;
    expect(first).toMatchObject({ room, head: 7, hasMore: true });
    expect(first.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    const second = (await (await history(room, "?after=3&limit=3")).json()) as HistoryBody;
    expect(second.messages.map((m) => m.seq)).toEqual([4, 5, 6]);
    const last = (await (await history(room, "?after=6&limit=3")).json()) as HistoryBody;
    expect(last).toMatchObject({ hasMore: false });
    expect(last.messages.map((m) => m.data)).toEqual([7]);
    expect(first.epoch).toBe(last.epoch);
  });

  it("caps a page at HISTORY_PAGE_MAX", async () => {
    const room = uniqueRoom();
    for (let i = 1; i <= 22; i++) await httpPublish(room, { id: `m${i}`, data: i });
    const page = (await (await history(room, "?limit=1000")).json()) as HistoryBody;
    expect(page.messages).toHaveLength(20);
    expect(page.hasMore).toBe(true);
  });

  it("returns an empty page for an empty room", async () => {
    const page = (await (await history(uniqueRoom(), "")).json()) as HistoryBody;
    expect(page).toMatchObject({ head: 0, hasMore: false, messages: [] });
  });

  it("rejects a bad after or limit with 400 invalid_request", async () => {
    const room = uniqueRoom();
    for (const q of ["?after=-1", "?after=abc", "?limit=0", "?limit=1.5", "?after=99999999999999999999"]) {
      const res = await history(room, q);
      expect(res.status, q).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "invalid_request" } });
    }
  });
});

describe("history over the socket", () => {
  it("answers a history frame with the requested page", async () => {
    const room = uniqueRoom();
    const alice = await connect(room);
    for (let i = 1; i <= 4; i++) await publish(alice, `m${i}`, i);
    alice.send({ type: "history", id: "h1", after: 1, limit: 2 });
    const page = await alice.next("history");
    expect(page).toMatchObject({ id: "h1", hasMore: true });
    expect(page.messages.map((m) => [m.seq, m.data])).toEqual([
      [2, 2],
      [3, 3],
    ]);
    alice.close();
  });
});
