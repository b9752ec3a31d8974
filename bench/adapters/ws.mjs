// Raw `ws` broadcast server (bench/servers/ws-server.mjs): the floor. One Node
// process, rooms in a Map, every text message relayed as the same Buffer to each
// socket of its room (sender included), no compression.
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { startNodeServer } from "../lib/process.mjs";
import { perMessageDeflate, wireStats } from "../lib/roomcast-client.mjs";

const SERVER = fileURLToPath(new URL("../servers/ws-server.mjs", import.meta.url));

/**
 * A JSON-over-WebSocket connection with the `ws` package (bufferutil is used when
 * installed). Shared by the adapters whose servers speak plain JSON text frames.
 * Resolves on `open`; rejects if the socket errors or closes before that.
 * `onClose` fires only for closes this side did not ask for (server gone, network).
 * `reconnect()` makes one attempt with a fresh socket and the same handlers.
 *
 * @param {string} wsUrl
 * @param {import("../lib/adapter.mjs").ConnectOptions} o
 * @returns {Promise<import("../lib/adapter.mjs").Connection>}
 */
export async function connectJson(wsUrl, { localAddress, onMessage, onClose, deflate }) {
  /** @type {WebSocket} */
  let socket;
  const open = () =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { localAddress, perMessageDeflate: perMessageDeflate(deflate) });
      let opened = false;
      ws.on("message", (data, isBinary) => {
        if (!isBinary) onMessage(JSON.parse(data.toString()));
      });
      ws.once("open", () => {
        opened = true;
        socket = ws;
        resolve(undefined);
      });
      ws.on("error", (err) => {
        if (!opened) reject(err);
      });
      ws.once("close", (code, reason) => {
        if (!opened) reject(new Error(`closed before open: ${code} ${reason}`));
        else if (!(/** @type {any} */ (ws).closedByUs)) onClose?.();
      });
    });
  const closeOurs = () => {
    if (!socket) return;
    /** @type {any} */ (socket).closedByUs = true;
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close();
    else socket.terminate();
  };
  await open();
  return {
    bytesRead: () => (socket ? wireStats(socket).bytesRead() : 0),
    extensions: () => (socket ? wireStats(socket).extensions() : ""),
    publish: (data) => socket.send(JSON.stringify(data)),
    close: closeOurs,
    reconnect: async () => {
      closeOurs();
      await open();
    },
  };
}

/** "http://host:port" -> "ws://host:port" + path */
export const wsUrl = (/** @type {string} */ base, /** @type {string} */ path) => base.replace(/^http/, "ws") + path;

/** @type {import("../lib/adapter.mjs").Adapter} */
export default {
  name: "ws",
  description: "raw ws 8.23 broadcast server, one Node 22 process, /rooms/<room>, relays each text frame's bytes unchanged to the room (sender included), no permessage-deflate",
  start(options) {
    return startNodeServer(SERVER, "ws", options);
  },
  connect(o) {
    return connectJson(wsUrl(o.url, `/rooms/${encodeURIComponent(o.room)}`), o);
  },
};
