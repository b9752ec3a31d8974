// Raw `ws` broadcast server: the floor every other system is measured against.
//   node ws-server.mjs <port>
// Listens on 127.0.0.1:<port>; a socket at /rooms/<room> joins <room>; every text
// message is sent, as received (the same Buffer, not re-encoded), to every socket
// in its room, the sender included. Prints "ready" once listening.
import { WebSocketServer } from "ws";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: ws-server.mjs <port>");
  process.exit(2);
}

/** @type {Map<string, Set<import("ws").WebSocket>>} */
const rooms = new Map();

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 64 * 1024,
  backlog: 4096,
});

wss.on("connection", (ws, req) => {
  const match = /^\/rooms\/([^/?#]+)/.exec(req.url ?? "");
  if (!match) {
    ws.close(1008, "expected /rooms/<room>");
    return;
  }
  const name = decodeURIComponent(match[1]);
  let room = rooms.get(name);
  if (!room) rooms.set(name, (room = new Set()));
  room.add(ws);
  const members = room;

  ws.on("message", (data, isBinary) => {
    if (isBinary) return; // the protocol is JSON text
    for (const peer of members) {
      if (peer.readyState === 1) peer.send(data, { binary: false });
    }
  });
  ws.on("close", () => {
    members.delete(ws);
    if (members.size === 0 && rooms.get(name) === members) rooms.delete(name);
  });
  ws.on("error", () => {});
});

wss.on("listening", () => console.log("ready"));
wss.on("error", (err) => {
  console.error(err);
  process.exit(1);
});

const shutdown = () => {
  wss.close();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
