import { useEffect, useRef, useState } from "react";
import type { Api, RoomSummary } from "./api.js";
import { ago, errorText, rate } from "./format.js";
import { roomHref, usePoll } from "./hooks.js";
import { errorsByRoom, parsePrometheus } from "./prom.js";
import { RateTracker } from "./rates.js";

/** Pages of the directory read per poll at most (100 rooms a page by default). */
const MAX_PAGES = 10;
export const POLL_MS = 2_000;

interface Snapshot {
  rooms: RoomSummary[];
  truncated: boolean;
  errors: Map<string, number> | null;
  metricsError: string | null;
}

export function RoomsList({ api, onAuthError }: { api: Api; onAuthError: (err: unknown) => boolean }) {
  const msgRates = useRef(new RateTracker(10_000));
  const errRates = useRef(new RateTracker(60_000));
  const poll = usePoll<Snapshot>(async () => {
    const rooms: RoomSummary[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await api.rooms(cursor);
      rooms.push(...page.rooms);
      cursor = page.cursor;
    } while (cursor && ++pages < MAX_PAGES);
    let errors: Map<string, number> | null = null;
    let metricsError: string | null = null;
    try {
      errors = errorsByRoom(parsePrometheus(await api.metrics()));
    } catch (err) {
      if (onAuthError(err)) throw err;
      metricsError = errorText(err);
    }
    const now = Date.now();
    for (const r of rooms) {
      if (r.error) continue;
      msgRates.current.record(r.room, now, r.headSeq);
      if (errors) errRates.current.record(r.room, now, errors.get(r.room) ?? 0);
    }
    const keep = new Set(rooms.map((r) => r.room));
    msgRates.current.retain(keep);
    errRates.current.retain(keep);
    return { rooms, truncated: cursor !== undefined, errors, metricsError };
  }, POLL_MS, "rooms");
  useEffect(() => {
    if (poll.error) onAuthError(poll.error);
  }, [poll.error, onAuthError]);

  const [filter, setFilter] = useState("");
  const snap = poll.value;
  const now = poll.at || Date.now();
  const shown = snap?.rooms.filter((r) => r.room.includes(filter)).sort((a, b) => b.connections - a.connections || a.room.localeCompare(b.room));
  const total = snap?.rooms.reduce((n, r) => n + r.connections, 0) ?? 0;

  return (
    <main className="rooms">
      <section className="bar">
        <input aria-label="Filter rooms" placeholder="Filter rooms" value={filter} onChange={(e) => setFilter(e.target.value)} />
        <span className="muted" data-testid="rooms-total">
          {snap ? `${snap.rooms.length} active room${snap.rooms.length === 1 ? "" : "s"}${snap.truncated ? " (first pages only)" : ""}, ${total} connection${total === 1 ? "" : "s"}` : "Loading…"}
        </span>
        <DrainAll api={api} />
      </section>
      {poll.error !== undefined && <p className="error" role="alert">Could not refresh: {errorText(poll.error)}</p>}
      {snap?.metricsError && <p className="muted">Errors column unavailable: {snap.metricsError}</p>}
      <table data-testid="rooms-table">
        <thead>
          <tr><th>Room</th><th>Connections</th><th>Users</th><th>Messages</th><th>Rate</th><th>Errors (1 min)</th><th>Last activity</th></tr>
        </thead>
        <tbody>
          {shown?.map((r) => {
            const errTotal = snap?.errors?.get(r.room);
            const errRecent = errRates.current.increase(r.room);
            return (
              <tr key={r.room} data-room={r.room}>
                <td><a href={roomHref(r.room)}>{r.room}</a>{r.error && <div className="error small-text">{r.error}</div>}</td>
                <td data-col="connections">{r.connections}</td>
                <td data-col="users">{r.users}</td>
                <td data-col="head">{r.headSeq}</td>
                <td data-col="rate">{rate(msgRates.current.rate(r.room))}</td>
                <td data-col="errors" className={errRecent > 0 ? "bad" : ""}>
                  {errTotal === undefined ? (snap?.errors ? "0" : "–") : `${errRecent} (${errTotal} total)`}
                </td>
                <td>{ago(r.lastActivityAt, now)}</td>
              </tr>
            );
          })}
          {shown?.length === 0 && <tr><td colSpan={7} className="muted">{filter ? "No room matches." : "No active rooms."}</td></tr>}
        </tbody>
      </table>
    </main>
  );
}

function DrainAll({ api }: { api: Api }) {
  const [confirming, setConfirming] = useState(false);
  const [windowSeconds, setWindowSeconds] = useState("10");
  const [result, setResult] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const seconds = Number(windowSeconds);
  const valid = /^\d{1,3}$/.test(windowSeconds) && seconds <= 600;
  const drain = async () => {
    setBusy(true);
    try {
      const r = await api.drainAll(seconds);
      setResult(`Drained ${r.drained} of ${r.rooms} rooms${r.failed ? `, ${r.failed} failed` : ""}.`);
    } catch (err) {
      setResult(`Drain failed: ${errorText(err)}`);
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };
  return (
    <span className="drain-all">
      {!confirming ? (
        <button onClick={() => { setResult(null); setConfirming(true); }}>Drain all rooms…</button>
      ) : (
        <>
          <label>over <input aria-label="Drain window (seconds)" className="narrow" value={windowSeconds} onChange={(e) => setWindowSeconds(e.target.value.trim())} /> s</label>
          <button className="danger" disabled={!valid || busy} onClick={drain}>Confirm drain of every room</button>
          <button onClick={() => setConfirming(false)}>Cancel</button>
        </>
      )}
      {result && <span role="status" data-testid="drain-all-result">{result}</span>}
    </span>
  );
}
