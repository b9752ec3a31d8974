/**
 * The room's single alarm serves every timed duty: ending presence grace periods,
 * closing sessions whose token expired, reaping sockets that stopped pinging, and
 * trimming the log to its retention. Each run recomputes everything from current
 * state, so a repeated or late run (alarms are at-least-once) is harmless.
 *
 * A room with no connections and nothing to trim schedules no alarm at all, so an
 * idle room costs nothing. With connections, the alarm fires when the earliest
 * socket could have gone stale; pings in between are answered by the runtime's
 * auto-response and never wake the room.
 */
import type { RoomCore } from "./room-core.js";

/** What the alarm's duties use of the room, and nothing else. */
export type AlarmHost = Pick<
  RoomCore,
  "alarmStarted" | "setNextAlarm" | "presence" | "grace" | "bans" | "broadcastPresence" | "connections" | "tokenDeadline" | "graceDeadline" | "lastSeen" | "close" | "limits" | "log" | "replays" | "meter" | "tracer"
>;

/** Most messages deleted per alarm run; the alarm comes back soon for the rest. */
const TRIM_BATCH = 5_000;
/** When retention is blocked by an in-flight replay, look again after this long. */
const RETRY_MS = 5_000;

export async function runAlarm(core: AlarmHost, now: number): Promise<void> {
  core.alarmStarted();
  // Debug mode ends by itself at its next event; an alarm that runs anyway ends it too (none is set for it).
  core.tracer.expire(now);
  const next = new Earliest();
  // Metrics: every run counts as "all"; each duty that did work counts once per run.
  // Counted without arming a flush: an idle room's liveness alarm alone must not cost a metrics
  // write; the count goes out with the next flush a duty (or any later activity) arms.
  core.meter.inc("alarm_runs_total", { duty: "all" }, 1, false);
  const worked = new Set<string>();
  const duty = (name: string) => worked.add(name);

  // 1. Presence grace periods that ran out without a reconnect.
  const presence = core.presence();
  const { diff, expired } = presence.expireGrace(now);
  core.grace.delete(expired);
  if (expired.length > 0) duty("grace");
  core.broadcastPresence(diff);
  next.add(presence.nextGraceDeadline());

  // 2. Sessions: expired tokens and vanished sockets.
  const timeoutMs = core.limits.LIVENESS_TIMEOUT_SECONDS * 1000;
  for (const conn of [...core.connections.open()]) {
    const tokenDeadline = core.tokenDeadline(conn.session);
    if (tokenDeadline <= now) {
      // The client will come back with a fresh token: give it the usual grace.
      core.close(conn, "token_expired", core.graceDeadline(now));
      duty("token_expiry");
      continue;
    }
    const lastSeen = core.lastSeen(conn);
    if (lastSeen + timeoutMs <= now) {
      // Gone without a close frame: it has already been silent far longer than any grace.
      core.close(conn, "connection_stale", undefined);
      duty("liveness");
      continue;
    }
    next.add(tokenDeadline);
    next.add(lastSeen + timeoutMs);
  }
  next.add(presence.nextGraceDeadline());

  // 3. Retention.
  const retainedBefore = core.log.size;
  next.add(trim(core, now));
  if (core.log.size < retainedBefore) duty("retention");

  // 4. Bans from kicks that have run out.
  next.add(core.bans.expire(now));

  for (const name of worked) core.meter.inc("alarm_runs_total", { duty: name });
  await core.setNextAlarm(next.value);
}

/** Trims what retention allows now; returns when the alarm should look again, if ever. */
export function trim(core: Pick<AlarmHost, "log" | "limits" | "replays">, now: number): number | undefined {
  const { log, limits } = core;
  const maxAgeMs = limits.RETENTION_MAX_AGE_SECONDS * 1000;
  let bound = Math.max(
    log.head - limits.RETENTION_MAX_MESSAGES,
    log.lastSeqBefore(now - maxAgeMs),
    log.seqFreeing(log.bytes - limits.RETENTION_MAX_BYTES, TRIM_BATCH),
  );
  // Never trim what an in-flight replay has yet to send.
  const lowest = core.replays.lowestCursor();
  const blocked = lowest !== undefined && lowest < bound;
  if (blocked) bound = lowest;
  if (bound >= log.oldestSeq) log.trim(bound, TRIM_BATCH);

  const countLeft = log.size > limits.RETENTION_MAX_MESSAGES || log.bytes > limits.RETENTION_MAX_BYTES;
  const ageLeft = log.oldestTs !== undefined && log.oldestTs + maxAgeMs <= now;
  if (blocked) return now + RETRY_MS;
  if (countLeft || ageLeft) return now + 100; // more than one batch: come back shortly
  return log.oldestTs !== undefined ? log.oldestTs + maxAgeMs : undefined;
}

class Earliest {
  value: number | undefined;
  add(t: number | undefined): void {
    if (t !== undefined && (this.value === undefined || t < this.value)) this.value = t;
  }
}
