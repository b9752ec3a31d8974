/**
 * The verdict of a deploy rehearsal (scripts/deploy-rehearsal.mjs), from what it recorded:
 * every ack (id → seq, per room) and every message each client received. Pure functions,
 * so the check itself is tested (scripts/deploy-check.test.mjs) without a server.
 */

/**
 * Compares each client's deliveries with its room's acks. Every client is subscribed from
 * before the first publish to the end, so it must hold every acked message of its room,
 * once, at the acked seq.
 * @param {{ acked: Map<string, number>[], clients: { roomIndex: number, received: [number, string][], gaps?: { afterSeq: number }[] }[], ackConflicts?: number, roomNames?: string[] }} input
 *   acked[room] maps a publish id to the seq its ack gave; received is [seq, id] in arrival
 *   order; ackConflicts counts one id acked at two seqs or two ids at one seq.
 */
export function checkDeliveries({ acked, clients, ackConflicts = 0, roomNames = [] }) {
  let lost = 0;
  let duplicates = ackConflicts;
  let unexpected = 0;
  let deliveriesChecked = 0;
  const lostExamples = [];
  clients.forEach((c, index) => {
    const roomAcks = acked[c.roomIndex];
    const seqs = new Set();
    const ids = new Map();
    for (const [seq, id] of c.received) {
      if (seqs.has(seq) || ids.has(id)) duplicates++;
      seqs.add(seq);
      ids.set(id, seq);
    }
    deliveriesChecked += roomAcks.size;
    for (const [id, seq] of roomAcks) {
      if (ids.get(id) === seq) continue;
      lost++;
      if (lostExamples.length < 5) lostExamples.push({ client: index, room: roomNames[c.roomIndex] ?? c.roomIndex, id, seq, got: ids.get(id) ?? null });
    }
    for (const id of ids.keys()) if (!roomAcks.has(id)) unexpected++;
  });
  // A gap where the client held nothing yet is harmless: a room that never stored a message
  // keeps its epoch in memory (src/room/message-log.ts), so a restart before its first
  // message draws another, and its clients get epoch_changed for an empty log. Any other gap
  // means a resume did not recover.
  const allGaps = clients.flatMap((c) => c.gaps ?? []);
  const gaps = allGaps.filter((g) => g.afterSeq > 0).length;
  return { deliveriesChecked, lost, duplicates, unexpected, gaps, emptyLogGaps: allGaps.length - gaps, gapExamples: allGaps.slice(0, 5), lostExamples };
}

/** Highest number of events within any `spanMs` window of the sorted times `ts` (ms). */
export function peakRate(ts, spanMs = 1000) {
  let best = 0;
  for (let i = 0, j = 0; j < ts.length; j++) {
    while (ts[j] - ts[i] >= spanMs) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

/**
 * What makes a rehearsal fail, as sentences (none: it passed).
 * @param {{ lost: number, duplicates: number, unexpected: number, gaps: number, clientsBack: number, clients: number,
 *   settled: boolean, unanswered: number, publishesFailed: number, drained?: number, rooms: number, acked: number, settleDeadlineMs: number }} r
 */
export function problemsOf(r) {
  const problems = [];
  if (r.lost) problems.push(`${r.lost} acked deliveries lost`);
  if (r.duplicates) problems.push(`${r.duplicates} duplicates`);
  if (r.unexpected) problems.push(`${r.unexpected} received but never acked`);
  if (r.gaps) problems.push(`${r.gaps} resumes with a gap`);
  if (r.clientsBack < r.clients) problems.push(`${r.clients - r.clientsBack} clients not back`);
  if (!r.settled) problems.push(`not settled within ${r.settleDeadlineMs} ms (${r.unanswered} publishes unanswered)`);
  if (r.publishesFailed) problems.push(`${r.publishesFailed} publishes failed`);
  if (r.drained !== r.rooms) problems.push(`drain reached ${r.drained ?? 0} of ${r.rooms} rooms`);
  if (r.acked === 0) problems.push("nothing was acked");
  return problems;
}
