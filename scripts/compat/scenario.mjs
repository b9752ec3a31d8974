/**
 * The compatibility scenario: the same steps in every runtime (Node or a browser page).
 * Plain JavaScript with no imports, so a browser can load it as is next to the built client.
 *
 * Two users, alice and bob, each with their own client, in one fresh room:
 * connect (welcome), presence, publish → ack, a message from the other client, a forced
 * reconnect (the runner drains the room) that must resume without a gap or a duplicate, a
 * publish made while reconnecting, then leave. Every step has its own deadline, so a failure
 * names the step and what was last seen instead of hanging.
 *
 * @param {object} o
 * @param {Function} o.createClient   the built client's export
 * @param {string} o.url              server base URL
 * @param {string} o.room             a fresh room name
 * @param {{alice: string, bob: string}} o.tokens  JWTs (subs in o.users)
 * @param {{alice: string, bob: string}} o.users   the subs inside the tokens
 * @param {() => Promise<unknown>} o.drain          asks the runner to drain the room
 * @param {unknown} [o.WebSocket]     injected WebSocket constructor (Node 20)
 * @param {number} [o.stepTimeoutMs]
 * @returns {Promise<{steps: {name: string, ms: number}[]}>}
 */
export async function runScenario(o) {
  const stepTimeoutMs = o.stepTimeoutMs ?? 15_000;
  const steps = [];
  const clients = [];
  const options = (token) => ({ url: o.url, token, ...(o.WebSocket ? { WebSocket: o.WebSocket } : {}) });

  /** Set once the rooms exist: a room in `failed` will never get anywhere, so no step waits for it. */
  let fatal = () => "";
  /** Polls `check` every 20 ms until it returns true; throws with `what` and `detail()` on timeout. */
  const until = async (what, check, detail = () => "") => {
    const deadline = Date.now() + stepTimeoutMs;
    while (!check()) {
      if (fatal()) throw new Error(`${fatal()} while waiting for ${what}${detail() ? ` (${detail()})` : ""}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${stepTimeoutMs} ms waiting for ${what}${detail() ? ` (${detail()})` : ""}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const step = async (name, fn) => {
    const t0 = Date.now();
    try {
      await fn();
    } catch (err) {
      const e = new Error(`step "${name}" failed: ${err && err.message ? err.message : String(err)}`);
      e.steps = steps;
      throw e;
    }
    steps.push({ name, ms: Date.now() - t0 });
  };
  const texts = (room) => room.messages.map((m) => `${m.from}:${m.data && m.data.text}`);
  const memberIds = (room) => room.members.map((m) => m.userId).sort();

  try {
    const aliceClient = o.createClient(options(o.tokens.alice));
    const bobClient = o.createClient(options(o.tokens.bob));
    clients.push(aliceClient, bobClient);
    const alice = aliceClient.room(o.room);
    const bob = bobClient.room(o.room);
    const errors = [];
    for (const [who, r] of [["alice", alice], ["bob", bob]]) {
      r.on("error", (e) => errors.push(`${who}: ${e.code} ${e.message}`));
      r.on("state", (s) => s.error && errors.push(`${who}: ${s.oldState}→${s.newState} ${s.error.code}`));
    }
    fatal = () => [["alice", alice], ["bob", bob]].filter(([, r]) => r.state === "failed").map(([who]) => `${who}'s room failed`).join(", ");
    const lastErrors = () => (errors.length ? `errors: ${errors.slice(-3).join("; ")}` : `alice ${alice.state}, bob ${bob.state}`);

    await step("connect (welcome)", async () => {
      await until("both rooms connected", () => alice.state === "connected" && bob.state === "connected", lastErrors);
      if (alice.userId !== o.users.alice) throw new Error(`welcome.userId is ${alice.userId}, expected ${o.users.alice}`);
      if (bob.userId !== o.users.bob) throw new Error(`welcome.userId is ${bob.userId}, expected ${o.users.bob}`);
    });

    await step("presence", async () => {
      bob.setPresence({ status: "here" });
      const want = [o.users.alice, o.users.bob].sort().join(",");
      await until(
        "alice to see bob with his presence state",
        () => memberIds(alice).join(",") === want && alice.members.some((m) => m.userId === o.users.bob && m.connections.some((c) => c.state && c.state.status === "here")),
        () => `members: ${JSON.stringify(alice.members)}`,
      );
    });

    await step("publish → ack", async () => {
      const ack = await alice.publish({ text: "one" });
      if (typeof ack.seq !== "number" || ack.seq < 1 || ack.duplicate !== false) throw new Error(`bad ack ${JSON.stringify(ack)}`);
    });

    await step("message from the other client", async () => {
      await until("bob to receive alice's message", () => texts(bob).includes(`${o.users.alice}:one`), () => `bob has ${JSON.stringify(texts(bob))}`);
      await bob.publish({ text: "two" });
      await until("alice to receive bob's message", () => texts(alice).includes(`${o.users.bob}:two`), () => `alice has ${JSON.stringify(texts(alice))}`);
    });

    await step("forced reconnect resumes", async () => {
      let recovered = 0;
      let gaps = 0;
      let reconnecting = 0;
      const offs = [alice, bob].flatMap((r) => [
        r.on("recovered", () => recovered++),
        r.on("gap", () => gaps++),
        r.on("state", (s) => s.newState === "reconnecting" && reconnecting++),
      ]);
      await o.drain();
      // Published while the drain is in flight: it must arrive exactly once, after the resume at the latest.
      const during = alice.publish({ text: "three" });
      await until("both rooms to go through reconnecting", () => reconnecting >= 2, lastErrors);
      await until("both rooms to resume", () => recovered >= 2 && alice.state === "connected" && bob.state === "connected", lastErrors);
      await during;
      for (const off of offs) off();
      if (gaps !== 0) throw new Error(`${gaps} gap event(s) after a drain of a live room`);
      const want = [`${o.users.alice}:one`, `${o.users.bob}:two`, `${o.users.alice}:three`];
      for (const [who, r] of [["alice", alice], ["bob", bob]]) {
        await until(`${who} to hold exactly one, two, three`, () => texts(r).join("|") === want.join("|"), () => `${who} has ${JSON.stringify(texts(r))}`);
      }
    });

    await step("leave", async () => {
      alice.leave();
      await until("alice's room closed", () => alice.state === "closed", lastErrors);
    });

    await step("the other client sees the leave", async () => {
      // After the server's presence grace (1 s in the compat server).
      await until("bob to see alice leave", () => memberIds(bob).join(",") === o.users.bob, () => `members: ${JSON.stringify(memberIds(bob))}`);
      bob.leave();
      await until("bob's room closed", () => bob.state === "closed", lastErrors);
    });
    return { steps };
  } finally {
    for (const c of clients) {
      try {
        c.close();
      } catch {
        // closing is best effort; the step result already says what happened
      }
    }
  }
}
