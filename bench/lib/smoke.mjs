/**
 * How the smoke run (CI) fits in under a minute. It only proves the harness works, so it
 * saves wall time where the numbers do not matter: the jobs of one system share a server
 * (`sharedServer`), and the plan runs in a few lanes at once (`smokeLanes`), so the
 * wrangler dev start-ups (about 10 s each) overlap roomcast-direct's scenarios.
 */

/**
 * The smoke plan cut into `count` lanes of about the same length. A system's jobs are split
 * into runs of consecutive jobs (one server each) no longer than a lane should be; the runs
 * then go, longest first, to the lane with the least work so far. A `null` in a lane ends a
 * run: the next job starts another server, even for the same system. Costs are rough
 * seconds seen in smoke runs on the 2-core sandbox; they only steer the split.
 * @template {{ system: string, job: { name: string } }} E
 * @param {E[]} entries  the plan, in order
 * @param {number} count  lanes wanted (at least 1)
 * @returns {(E | null)[][]}
 */
export function smokeLanes(entries, count) {
  const wanted = Number.isInteger(count) && count >= 1 ? count : 1;
  const groups = new Map();
  for (const entry of entries) groups.set(entry.system, [...(groups.get(entry.system) ?? []), entry]);
  let total = 0;
  for (const [system, group] of groups) total += startCost(system) + group.reduce((sum, e) => sum + jobCost(e.job), 0);
  const target = total / wanted;
  const runs = [];
  for (const [system, group] of groups) {
    let chunk = { cost: startCost(system), entries: /** @type {E[]} */ ([]) };
    for (const entry of group) {
      if (chunk.entries.length > 0 && chunk.cost + jobCost(entry.job) > target) {
        runs.push(chunk);
        chunk = { cost: startCost(system), entries: [] };
      }
      chunk.cost += jobCost(entry.job);
      chunk.entries.push(entry);
    }
    runs.push(chunk);
  }
  const lanes = Array.from({ length: Math.min(wanted, runs.length) }, () => ({ cost: 0, entries: /** @type {(E | null)[]} */ ([]) }));
  for (const chunk of runs.sort((a, b) => b.cost - a.cost)) {
    const lane = lanes.reduce((a, b) => (b.cost < a.cost ? b : a));
    lane.cost += chunk.cost;
    if (lane.entries.length > 0) lane.entries.push(null);
    lane.entries.push(...chunk.entries);
  }
  return lanes.map((lane) => lane.entries);
}

/** Seconds to start a system's server: wrangler dev, a bundle plus workerd, or a Node script. */
function startCost(/** @type {string} */ system) {
  if (system === "roomcast" || system === "partyserver") return 12;
  if (system === "socketio" || system === "ws") return 1;
  return 6;
}

/** Seconds a smoke job takes once its server is up. */
function jobCost(/** @type {{ name: string }} */ job) {
  return { slow: 12, storm: 7, presence: 6 }[job.name] ?? 3;
}

/**
 * The adapter with `start` answering one server for every job, whose `stop` (what each
 * scenario calls when it is done) leaves it running; `stop()` here stops it. The scenarios
 * each open rooms of their own, and the storm restarts the server it killed, so a server
 * stays usable from one job to the next. After `stop()`, the next `start` starts a new one.
 * @param {import("./adapter.mjs").Adapter} adapter
 */
export function sharedServer(adapter) {
  /** @type {import("./adapter.mjs").RunningServer | null} */
  let server = null;
  return {
    /** @type {import("./adapter.mjs").Adapter} */
    adapter: {
      ...adapter,
      async start(options) {
        server ??= await adapter.start(options);
        return { ...server, stop: async () => {} };
      },
    },
    async stop() {
      const s = server;
      server = null;
      await s?.stop();
    },
  };
}
