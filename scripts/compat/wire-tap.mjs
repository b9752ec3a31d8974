/**
 * What the release rows check on the wire, below any client library: a socket factory
 * (the `createSocket(url, protocols, headers)` option of `@roomcast/client`, v0.1.0's
 * included, and of raw-v1-client.mjs) that opens a plain WebSocket and records, per user,
 * every socket's offered and selected subprotocol, `welcome.protocol`, the `seq` of every
 * `message`/`messages` entry, the publish ids sent and the `ack` frames received.
 * A client library hides duplicates and may paper over gaps; the tap does not.
 */

/** @typedef {{ offered: string[], selected?: string, welcomeProtocol?: string, resumed: boolean }} SocketRecord */

export function createWireTap() {
  /** @type {Map<string, { sockets: SocketRecord[], seqs: number[], published: Set<string>, acked: Map<string, boolean[]>, badFrames: string[] }>} */
  const users = new Map();
  const record = (user) => {
    if (!users.has(user)) users.set(user, { sockets: [], seqs: [], published: new Set(), acked: new Map(), badFrames: [] });
    return users.get(user);
  };

  return {
    users,
    /** A socket factory that records under `user`. */
    factory(user) {
      const r = record(user);
      return (url, protocols, headers) => {
        // Node ≥ 22 (undici): protocols and headers in one options object; no Origin header.
        const ws = new WebSocket(url, { protocols, headers });
        const s = { offered: protocols.filter((p) => !p.startsWith("roomcast.bearer.")), resumed: new URL(url).searchParams.has("epoch") };
        r.sockets.push(s);
        ws.addEventListener("open", () => (s.selected = ws.protocol));
        ws.addEventListener("message", (event) => {
          let f;
          try {
            f = JSON.parse(event.data);
          } catch {
            r.badFrames.push(String(event.data).slice(0, 80));
            return;
          }
          if (f.type === "welcome") s.welcomeProtocol = f.protocol;
          else if (f.type === "message") r.seqs.push(f.seq);
          else if (f.type === "messages" && Array.isArray(f.messages)) for (const m of f.messages) r.seqs.push(m.seq);
          else if (f.type === "ack") r.acked.set(f.id, [...(r.acked.get(f.id) ?? []), f.duplicate]);
        });
        const send = ws.send.bind(ws);
        ws.send = (data) => {
          if (typeof data === "string" && data.includes('"publish"')) {
            try {
              const f = JSON.parse(data);
              if (f.type === "publish") r.published.add(f.id);
            } catch {
              // not JSON: the server answers invalid_frame, which the scenario sees
            }
          }
          send(data);
        };
        return ws;
      };
    },
  };
}

/**
 * Problems seen on the wire, as sentences (empty: all good).
 * @param {ReturnType<typeof createWireTap>} tap
 * @param {{ protocol: string, offered?: string[] }} expect  the subprotocol every socket must select; `offered`: exactly this list
 */
export function wireProblems(tap, expect) {
  const problems = [];
  for (const [user, r] of tap.users) {
    const opened = r.sockets.filter((s) => s.selected !== undefined);
    if (opened.length < 2) problems.push(`${user}: ${opened.length} socket(s) opened, expected the first and one after the drain`);
    if (!r.sockets.some((s) => s.resumed && s.selected !== undefined)) problems.push(`${user}: no socket reconnected with ?epoch=&after=`);
    for (const s of opened) {
      if (expect.offered && s.offered.join(",") !== expect.offered.join(",")) problems.push(`${user}: offered ${s.offered.join(",")}, expected ${expect.offered.join(",")}`);
      if (s.selected !== expect.protocol) problems.push(`${user}: the server selected ${JSON.stringify(s.selected)} of ${s.offered.join(",")}, expected ${expect.protocol}`);
      if (s.welcomeProtocol !== undefined && s.welcomeProtocol !== s.selected) problems.push(`${user}: welcome.protocol ${s.welcomeProtocol} but the handshake selected ${s.selected}`);
    }
    // The room is fresh: every user must see seq 1..n, each exactly once, across all its sockets.
    const seen = new Set();
    for (const seq of r.seqs) {
      if (seen.has(seq)) problems.push(`${user}: message seq ${seq} arrived twice on the wire`);
      seen.add(seq);
    }
    const max = Math.max(0, ...seen);
    const missing = [];
    for (let seq = 1; seq <= max; seq++) if (!seen.has(seq)) missing.push(seq);
    if (missing.length) problems.push(`${user}: message seq ${missing.join(",")} never arrived (got ${[...seen].sort((a, b) => a - b).join(",")})`);
    if (r.badFrames.length) problems.push(`${user}: ${r.badFrames.length} frame(s) that are not JSON, e.g. ${r.badFrames[0]}`);
    // v1: every publish is answered by an ack frame (§6.4). v2: the echo is the ack, so a
    // publish made on a live socket gets none (an ack stays for duplicates and while joining).
    const unacked = [...r.published].filter((id) => !r.acked.has(id));
    if (expect.protocol === "roomcast.v1" && unacked.length) problems.push(`${user}: publish ${unacked.join(",")} got no ack frame under v1`);
    if (expect.protocol === "roomcast.v2" && r.published.size && !unacked.length) problems.push(`${user}: every publish got an ack frame under v2 (the echo should be the ack)`);
  }
  return [...new Set(problems)]; // a user's sockets usually fail alike: say it once
}

/** One line's worth: "alice 2 sockets roomcast.v1, 3 seqs, 2 publishes / 2 acks". */
export function wireSummary(tap) {
  return [...tap.users]
    .map(([user, r]) => {
      const selected = [...new Set(r.sockets.map((s) => s.selected ?? "not open"))].join("|");
      const acks = [...r.acked.values()].reduce((n, a) => n + a.length, 0);
      return `${user.split("-")[0]} ${r.sockets.length} sockets ${selected}, ${r.seqs.length} msgs, ${r.published.size} pub/${acks} ack`;
    })
    .join("; ");
}
