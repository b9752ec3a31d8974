/**
 * Reading refused upgrades as a client does (docs/protocol.md §5): an upgrade that
 * offered roomcast.v1 and fails a check is a 101 whose socket carries one id-less
 * error frame, then the close code of that error.
 */
import { expect } from "vitest";
import { ERRORS, PROTOCOL_VERSION, decodeServerFrame, type ErrorCode, type ServerFrame } from "@roomcast/protocol";

export interface Refusal {
  frames: ServerFrame[];
  close: { code: number; reason: string };
}

/** Accepts the socket of a 101 and collects its frames until the close (3 s at most). */
export async function readRefusal(res: Response): Promise<Refusal> {
  expect(res.status, "a refused roomcast.v1 upgrade is answered with 101").toBe(101);
  expect(res.headers.get("Sec-WebSocket-Protocol")).toBe(PROTOCOL_VERSION);
  const ws = res.webSocket!;
  const frames: ServerFrame[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no close within 3 s; frames: ${JSON.stringify(frames)}`)), 3_000);
    ws.addEventListener("close", (event) => {
      clearTimeout(timer);
      resolve({ code: event.code, reason: event.reason });
    });
  });
  ws.addEventListener("message", (event) => {
    const decoded = decodeServerFrame(event.data);
    if (!decoded.ok) throw new Error(`invalid frame from the server: ${String(event.data)}`);
    frames.push(decoded.frame);
  });
  ws.accept();
  return { frames, close: await closed };
}

/** Exactly one error frame `code` without id, then the close with that error's close code. */
export async function expectRefused(res: Response, code: ErrorCode, message?: RegExp): Promise<Refusal> {
  const refusal = await readRefusal(res);
  expect(refusal.frames).toEqual([{ type: "error", code, message: expect.any(String) }]);
  expect(refusal.close).toEqual({ code: (ERRORS[code] as { close?: number }).close, reason: code });
  if (message) expect((refusal.frames[0] as { message: string }).message).toMatch(message);
  return refusal;
}

/**
 * What became of an upgrade: the refusal's error code, or `"accepted"` (the first frame
 * is a welcome; the socket stays open and is returned).
 */
export async function upgradeOutcome(res: Response): Promise<{ code: ErrorCode | "accepted"; ws: WebSocket }> {
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  const first = new Promise<ServerFrame>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no frame within 3 s")), 3_000);
    ws.addEventListener("message", (event) => {
      clearTimeout(timer);
      const decoded = decodeServerFrame(event.data);
      if (decoded.ok) resolve(decoded.frame);
      else reject(new Error(`invalid frame: ${String(event.data)}`));
    }, { once: true });
  });
  ws.accept();
  const frame = await first;
  if (frame.type === "welcome") return { code: "accepted", ws };
  expect(frame).toMatchObject({ type: "error" });
  expect((frame as { id?: string }).id).toBeUndefined();
  return { code: (frame as { code: ErrorCode }).code, ws };
}
