// Socket.IO 4.8 broadcast server.
//   node socketio-server.mjs <port>
// Listens on 127.0.0.1:<port>, WebSocket transport only, no compression.
// Client events:
//   join(room, ack)   puts the socket in <room> (one room per socket) and acks { room }
//   publish(payload)  io.to(room).emit("message", payload): everyone in the room, sender included
// Prints "ready" once listening.
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: socketio-server.mjs <port>");
  process.exit(2);
}

const http = createServer((_req, res) => {
  res.writeHead(404).end();
});

const io = new Server(http, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 64 * 1024,
  // No connection-state recovery, no CORS: loopback benchmark clients only.
});

io.on("connection", (socket) => {
  /** @type {string | null} */
  let room = null;
  socket.on("join", (name, ack) => {
    if (typeof name !== "string" || !name) {
      if (typeof ack === "function") ack({ error: "room must be a non-empty string" });
      return;
    }
    if (room !== null) socket.leave(room);
    room = name;
    socket.join(name);
    if (typeof ack === "function") ack({ room: name });
  });
  socket.on("publish", (payload) => {
    if (room !== null) io.to(room).emit("message", payload);
  });
});

http.on("error", (err) => {
  console.error(err);
  process.exit(1);
});
http.listen({ host: "127.0.0.1", port, backlog: 4096 }, () => console.log("ready"));

const shutdown = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
