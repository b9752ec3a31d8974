/**
 * How benchmark clients speak Roomcast: a `ws` socket offering `roomcast.v1` with a
 * bearer token, ready once `welcome` arrives; `message` frames are deliveries, and
 * `progress` is reported as docs/protocol.md §6.9 asks (the room closes a client that
 * never confirms what it read with 4005 once it is 8 MiB behind).
 * (Not @roomcast/client: the load generator must cost the same for every system,
 * so every adapter uses a bare `ws` socket and JSON.)
 */
import { SignJWT } from "jose";
import WebSocket from "ws";

export const BENCH_SECRET = "roomcast-dev-only-benchmarks";

/** Limits opened up for load (defaults stay for everything else, including retention). */
export const BENCH_VARS = {
  JWT_SECRET: BENCH_SECRET,
  ENVIRONMENT: "development",
  PUBLISH_RATE_PER_SECOND: "10000",
  PUBLISH_BURST: "100000",
  MAX_CONNECTIONS_PER_ROOM: "32000",
  // Clients have their own users, but some scenarios (the slow probe) share one: keep the per-user cap as open as the room cap.
  MAX_CONNECTIONS_PER_USER: "32000",
  HISTORY_ON_JOIN: "0",
  LIVENESS_TIMEOUT_SECONDS: "3600",
};

const key = new TextEncoder().encode(BENCH_SECRET);
let tokenPromise;
/** One token for every benchmark client (the room does not care who publishes). */
export function token() {
  tokenPromise ??= new SignJWT({ cap: { "*": ["subscribe", "publish"] } })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("bench")
    .setExpirationTime("6h")
    .sign(key);
  return tokenPromise;
}

const userTokens = new Map();
/**
 * A token per benchmark user, as real clients have: per-user limits (connections,
 * rate budget, connection attempts) then apply to each client as they would in
 * production, not to one "bench" user holding every socket.
 */
function userToken(sub) {
  let jwt = userTokens.get(sub);
  if (!jwt) {
    jwt = new SignJWT({ cap: { "*": ["subscribe", "publish"] } }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime("6h").sign(key);
    userTokens.set(sub, jwt);
  }
  return jwt;
}

/** A token that lists its holder in presence, as user `sub`. */
function presenceToken(sub) {
  return new SignJWT({ cap: { "*": ["subscribe", "publish", "presence"] } })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("6h")
    .sign(key);
}

let counter = 0;

/**
 * The `ws` option for permessage-deflate. Off unless asked for (`deflate: true` in the
 * connect options, or BENCH_DEFLATE=1 for every client of a run). On, the client offers
 * it the way browsers do (`permessage-deflate; client_max_window_bits`) and compresses
 * every frame it sends (threshold 0: browsers have no size threshold).
 * @param {boolean | undefined} deflate
 */
export function perMessageDeflate(deflate) {
  return (deflate ?? process.env.BENCH_DEFLATE === "1") ? { threshold: 0 } : false;
}

/**
 * What every bench connection also exposes, for the compression scenario: bytes the
 * client's TCP socket has read so far (frames as on the wire, compressed or not, with
 * their headers) and the extensions the server accepted (`""` when none).
 * @param {import("ws").WebSocket} ws
 */
export function wireStats(ws) {
  let last = 0;
  return {
    bytesRead: () => (last = /** @type {any} */ (ws)._socket?.bytesRead ?? last),
    extensions: () => String(/** @type {any} */ (ws).extensions ?? ""),
  };
}

/** @returns {Promise<import("./adapter.mjs").Connection>} */
export async function connectRoomcast({ url, room, user, localAddress, onMessage, onClose, presence = false, onPresence, deflate, protocols = ["roomcast.v1"] }) {
  const jwt = presence ? await presenceToken(user) : user ? await userToken(user) : await token();
  const wsUrl = `${url.replace(/^http/, "ws")}/v1/rooms/${encodeURIComponent(room)}/ws`;
  const ws = new WebSocket(wsUrl, protocols, { localAddress, perMessageDeflate: perMessageDeflate(deflate), headers: { Authorization: `Bearer ${jwt}` } });
  let closedByUs = false;
  // Flow control (docs/protocol.md §6.9): count the characters of every frame received
  // (the room counts all but pongs; counting those too only reports a little early) and
  // report the highest seq applied every quarter of welcome.limits.maxUnconfirmedBytes,
  // and after a history answer; a server that announces no budget gets no progress at
  // all (reportEvery stays Infinity). The seq comes for free: message frames are parsed
  // in full anyway. Per frame: one addition and one comparison.
  let reportEvery = Infinity;
  let unreported = 0;
  let lastSeq = 0;
  const report = () => {
    unreported = 0;
    if (ws.readyState === WebSocket.OPEN) ws.send(`{"type":"progress","seq":${lastSeq}}`);
  };
  await new Promise((resolve, reject) => {
    let welcomed = false;
    ws.on("message", (raw, isBinary) => {
      if (isBinary) return;
      const text = raw.toString();
      unreported += text.length;
      // Cheap dispatch: only message frames are parsed in full on the hot path.
      if (text.startsWith('{"type":"message",')) {
        const m = JSON.parse(text);
        lastSeq = m.seq;
        onMessage(m.data);
      } else if (text.startsWith('{"type":"messages"')) {
        const { messages } = JSON.parse(text);
        for (const m of messages) onMessage(m.data);
        lastSeq = messages[messages.length - 1].seq;
      } else if (onPresence && text.startsWith('{"type":"presence_')) onPresence(JSON.parse(text));
      else if (text.startsWith('{"type":"history"')) {
        // Not asked for by the benchmarks; the protocol wants a report after each answer.
        if (reportEvery !== Infinity) report();
      } else if (!welcomed && text.startsWith('{"type":"welcome"')) {
        const welcome = JSON.parse(text);
        const budget = welcome.limits?.maxUnconfirmedBytes;
        if (typeof budget === "number" && budget > 0) reportEvery = budget / 4;
        lastSeq = welcome.seq - welcome.replay;
        welcomed = true;
        resolve(undefined);
      }
      if (unreported >= reportEvery) report();
    });
    ws.on("error", (err) => {
      if (!welcomed) reject(err);
    });
    ws.once("close", (code, reason) => {
      if (!welcomed) reject(new Error(`closed before welcome: ${code} ${reason}`));
      else if (!closedByUs) onClose?.();
    });
  });
  const prefix = `b${(counter++).toString(36)}-`;
  let n = 0;
  return {
    ...wireStats(ws),
    publish: (data) => ws.send(JSON.stringify({ type: "publish", id: prefix + (n++).toString(36), data })),
    close: () => {
      closedByUs = true;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
      else ws.terminate();
    },
  };
}
