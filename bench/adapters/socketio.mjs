// Socket.IO 4.8 (bench/servers/socketio-server.mjs): one Node process, WebSocket
// transport only, no compression; `join` (acked) puts the socket in its room,
// `publish` does io.to(room).emit("message", payload), sender included.
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { startNodeServer } from "../lib/process.mjs";

const SERVER = fileURLToPath(new URL("../servers/socketio-server.mjs", import.meta.url));
const JOIN_TIMEOUT_MS = 15_000;

/** @type {import("../lib/adapter.mjs").Adapter} */
export default {
  name: "socketio",
  description: "Socket.IO 4.8.4 server, one Node 22 process, websocket transport only, no permessage-deflate; acked join, io.to(room).emit per publish (sender included)",
  start(options) {
    return startNodeServer(SERVER, "socketio", options);
  },

  /**
   * Resolves once the server has acked the join, so the socket is in the room.
   * `localAddress` reaches the underlying `ws` socket: engine.io-client's
   * websocket transport passes it through to `new WebSocket(uri, protocols, opts)`.
   */
  async connect({ url, room, localAddress, onMessage, onClose }) {
    /** @type {import("socket.io-client").Socket} */
    let socket;
    const open = () =>
      new Promise((resolve, reject) => {
        const s = io(url, {
          transports: ["websocket"],
          forceNew: true,
          reconnection: false,
          perMessageDeflate: false,
          timeout: JOIN_TIMEOUT_MS,
          // engine.io-client picks localAddress from its options for the ws transport
          .../** @type {any} */ (localAddress ? { localAddress } : {}),
        });
        let joined = false;
        const fail = (/** @type {Error} */ err) => {
          if (joined) return;
          s.disconnect();
          reject(err);
        };
        s.on("message", (payload) => onMessage(payload));
        s.once("connect_error", fail);
        s.once("connect", () => {
          s.timeout(JOIN_TIMEOUT_MS).emit("join", room, (/** @type {Error | null} */ err, /** @type {any} */ res) => {
            if (err) return fail(new Error(`join not acked within ${JOIN_TIMEOUT_MS} ms`));
            if (!res || res.room !== room) return fail(new Error(`join refused: ${JSON.stringify(res)}`));
            joined = true;
            socket = s;
            resolve(undefined);
          });
        });
        s.on("disconnect", (reason) => {
          if (!joined) fail(new Error(`disconnected before join: ${reason}`));
          else if (reason !== "io client disconnect") onClose?.();
        });
      });
    await open();
    return {
      publish: (data) => {
        socket.emit("publish", data);
      },
      close: () => {
        socket.disconnect();
      },
      reconnect: async () => {
        socket.disconnect();
        await open();
      },
    };
  },
};
