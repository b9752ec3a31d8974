/** Stand-ins for unit tests of the room's modules: a connection whose socket records what it was sent. */
import { Connection, type Phase } from "../src/room/connections.js";
import type { Session } from "../src/room/attachment.js";

let n = 0;

export function fakeConnection(phase: Phase = "live", userId = `u${n}`) {
  const sent: string[] = [];
  const ws = { send: (text: string) => void sent.push(text), readyState: 1 } as unknown as WebSocket;
  const session: Session = {
    connectionId: `c${n++}`,
    userId,
    permissions: ["subscribe", "publish", "presence"],
    expiresAt: 0,
    protocol: "roomcast.v1",
    joinedAt: 0,
    state: null,
    announced: true,
  };
  return { sent, ws, conn: new Connection(ws, session, phase) };
}
