import { describe, expect, it } from "vitest";
import type { ServerFrame } from "@roomcast/protocol";
import { connect, token, uniqueRoom, type TestSocket } from "../helpers.js";

// The "busy" project (vitest.config.ts): BROADCAST_MAX_DELAY_MS=40, so a busy room's
// batching window stays open 40 ms and a join surely lands inside one; rooms here
// hold over 100 sockets, where every broadcast opens a window too.

type Welcome = Extract<ServerFrame, { type: "welcome" }>;

/** §6.2 for one connection: welcome first, then message seqs contiguous from the replay's start, no duplicate. */
function violations(name: string, socket: TestSocket, after?: number): string[] {
  const out: string[] = [];
  const first = socket.frames[0];
  if (first?.type !== "welcome") return [`${name}: first frame is ${first?.type}, not welcome`];
  const welcome = first as Welcome;
  const seqs = socket.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);
  const start = welcome.resume?.recovered ? after! + 1 : welcome.seq - welcome.replay + 1;
  for (const [i, seq] of seqs.entries()) {
    if (seq !== start + i) {
      out.push(`${name}: message #${i} is seq ${seq}, expected ${start + i} (welcome.seq ${welcome.seq}, replay ${welcome.replay}; seqs ${seqs.slice(Math.max(0, i - 3), i + 3).join(",")})`);
      break;
    }
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("joins and resumes during live traffic in a busy room", () => {
  it("gives every newcomer its welcome first, then every seq once and in order", async () => {
    const room = uniqueRoom("busy");
    const crowd: TestSocket[] = [];
    // Two users of 55 sockets each (under MAX_CONNECTIONS_PER_USER and the Worker's connect limiter).
    const jwts = [await token({ sub: "crowd-a", cap: { "*": ["subscribe"] } }), await token({ sub: "crowd-b", cap: { "*": ["subscribe"] } })];
    for (let i = 0; i < 110; i++) crowd.push(await connect(room, jwts[i % 2]));
    const publisher = await connect(room, await token({ sub: "pub", cap: { "*": ["subscribe", "publish"] } }));
    const { epoch } = await publisher.next("welcome");

    let sent = 0;
    let publishing = true;
    const traffic = (async () => {
      while (publishing) {
        for (let b = 0; b < 5; b++) publisher.send({ type: "publish", id: `p${sent++}`, data: { n: sent } });
        await sleep(3);
      }
    })();

    const joiners: { name: string; socket: TestSocket; after?: number }[] = [];
    const joinerJwt = await token({ sub: "joiner", cap: { "*": ["subscribe"] } });
    for (let i = 0; i < 24; i++) {
      await sleep(15);
      if (i % 2 === 0) {
        joiners.push({ name: `fresh-${i}`, socket: await connect(room, joinerJwt) });
      } else {
        // Resume from a recent position that a reader would have applied.
        const seen = publisher.frames.filter((f) => f.type === "message");
        const after = (seen.at(-1 - (i % 7) * 3) as { seq: number } | undefined)?.seq ?? 0;
        joiners.push({ name: `resume-${i}`, socket: await connect(room, joinerJwt, { resume: { epoch, after } }), after });
      }
    }
    publishing = false;
    await traffic;
    const acks = await publisher.take("ack", sent, 10_000);
    const head = Math.max(...acks.map((a) => a.seq));

    for (const { socket } of joiners) await socket.until((frames) => frames.some((f) => f.type === "message" && f.seq === head), 10_000);
    const found = joiners.flatMap(({ name, socket, after }) => violations(name, socket, after));
    expect(found).toEqual([]);
    for (const { socket } of joiners) {
      const seqs = socket.frames.filter((f) => f.type === "message").map((f) => (f as { seq: number }).seq);
      expect(seqs.at(-1)).toBe(head);
    }
    for (const s of [...crowd, publisher, ...joiners.map((j) => j.socket)]) s.close();
  });
});
