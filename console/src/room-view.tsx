import { useEffect, useRef, useState } from "react";
import type { Api, ConnectionInfo, RoomSummary } from "./api.js";
import { ago, errorText, rate } from "./format.js";
import { usePoll } from "./hooks.js";
import { RateTracker } from "./rates.js";
import { TracePanel } from "./trace-panel.js";

export const ROOM_POLL_MS = 1_500;

export function RoomView({ api, room, onAuthError }: { api: Api; room: string; onAuthError: (err: unknown) => boolean }) {
  const rates = useRef(new RateTracker(10_000));
  const poll = usePoll<RoomSummary>(async () => {
    const s = await api.room(room);
    rates.current.record("head", Date.now(), s.headSeq);
    return s;
  }, ROOM_POLL_MS, room);
  useEffect(() => {
    if (poll.error) onAuthError(poll.error);
  }, [poll.error, onAuthError]);
  const s = poll.value;
  const now = poll.at || Date.now();

  return (
    <main className="room">
      {poll.error !== undefined && <p className="error" role="alert">Could not refresh: {errorText(poll.error)}</p>}
      <section className="cards" data-testid="room-summary">
        <Card label="Connections" value={s?.connections} testid="connections" />
        <Card label="Users" value={s?.users} testid="users" />
        <Card label="Retained" value={s ? (s.headSeq === 0 ? "empty" : `${s.firstSeq}..${s.headSeq}`) : undefined} testid="retention" />
        <Card label="Message rate" value={s ? rate(rates.current.rate("head")) : undefined} testid="rate" />
        <Card label="Last activity" value={s ? ago(s.lastActivityAt, now) : undefined} testid="last-activity" />
        <Card label="Epoch" value={s?.epoch ? s.epoch.slice(0, 8) : undefined} testid="epoch" />
      </section>
      <RoomActions api={api} room={room} />
      <div className="columns">
        <section className="panel">
          <h2>Connections</h2>
          <Connections api={api} room={room} list={s?.connectionList} now={now} />
        </section>
        <section className="panel">
          <h2>Presence</h2>
          <Presence members={s?.presence} />
        </section>
      </div>
      <TracePanel api={api} room={room} onAuthError={onAuthError} />
    </main>
  );
}

function Card({ label, value, testid }: { label: string; value: string | number | undefined; testid: string }) {
  return (
    <div className="card">
      <div className="muted">{label}</div>
      <div className="value" data-testid={`summary-${testid}`}>{value ?? "…"}</div>
    </div>
  );
}

function Connections({ api, room, list, now }: { api: Api; room: string; list: ConnectionInfo[] | undefined; now: number }) {
  const [result, setResult] = useState<string | null>(null);
  const [ban, setBan] = useState("0");
  if (!list) return <p className="muted">…</p>;
  const kick = async (userId: string) => {
    try {
      const r = await api.kick(room, userId, Number(ban) || undefined);
      setResult(`Kicked ${userId}: ${r.closed} connection${r.closed === 1 ? "" : "s"} closed${r.bannedUntil ? `, banned until ${new Date(r.bannedUntil).toLocaleString()}` : ""}.`);
    } catch (err) {
      setResult(`Kick failed: ${errorText(err)}`);
    }
  };
  const sorted = [...list].sort((a, b) => a.userId.localeCompare(b.userId) || a.joinedAt - b.joinedAt);
  return (
    <>
      <label className="muted">
        Kick with a ban of{" "}
        <select aria-label="Ban on kick" value={ban} onChange={(e) => setBan(e.target.value)}>
          <option value="0">none</option>
          <option value="300">5 minutes</option>
          <option value="3600">1 hour</option>
          <option value="86400">1 day</option>
        </select>
      </label>
      <table data-testid="connections-table">
        <thead><tr><th>User</th><th>Age</th><th>Last ping</th><th>Lag</th><th>Protocol</th><th /></tr></thead>
        <tbody>
          {sorted.map((c) => (
            <tr key={c.connectionId} data-user={c.userId} data-connection={c.connectionId}>
              <td>{c.userId}</td>
              <td>{ago(c.joinedAt, now)}</td>
              <td>{c.lastPingAt === null ? "never" : `${ago(c.lastPingAt, now)} ago`}</td>
              <td data-col="lag" className={c.lagBehindHead > 0 ? "warn" : ""}>{c.lagBehindHead}</td>
              <td>{c.protocol}</td>
              <td><button className="danger small" onClick={() => kick(c.userId)}>Kick {c.userId}</button></td>
            </tr>
          ))}
          {sorted.length === 0 && <tr><td colSpan={6} className="muted">No open connections.</td></tr>}
        </tbody>
      </table>
      {result && <p role="status" data-testid="kick-result">{result}</p>}
    </>
  );
}

interface Member {
  userId: string;
  connections: { connectionId?: string; state?: unknown }[];
}

function toMember(x: unknown): Member | null {
  if (typeof x !== "object" || x === null) return null;
  const m = x as Record<string, unknown>;
  if (typeof m.userId !== "string") return null;
  return { userId: m.userId, connections: Array.isArray(m.connections) ? (m.connections as Member["connections"]) : [] };
}

function Presence({ members }: { members: unknown[] | undefined }) {
  if (!members) return <p className="muted">…</p>;
  const list = members.map(toMember).filter((m): m is Member => m !== null);
  if (list.length === 0) return <p className="muted">Nobody is listed.</p>;
  return (
    <ul className="presence" data-testid="presence">
      {list.map((m) => (
        <li key={m.userId} data-user={m.userId} data-devices={m.connections.length}>
          <strong>{m.userId}</strong> <span className="muted">{m.connections.length} device{m.connections.length === 1 ? "" : "s"}</span>
          {m.connections.some((c) => c.state !== undefined && c.state !== null) && (
            <code className="state">{JSON.stringify(m.connections.map((c) => c.state ?? null)).slice(0, 200)}</code>
          )}
        </li>
      ))}
    </ul>
  );
}

function RoomActions({ api, room }: { api: Api; room: string }) {
  const [confirming, setConfirming] = useState(false);
  const [windowSeconds, setWindowSeconds] = useState("10");
  const [result, setResult] = useState<string | null>(null);
  const seconds = Number(windowSeconds);
  const valid = /^\d{1,3}$/.test(windowSeconds) && seconds <= 600;
  const drain = async () => {
    setConfirming(false);
    try {
      const r = await api.drainRoom(room, seconds);
      setResult(`Drained: ${r.connections} connection${r.connections === 1 ? "" : "s"} told to reconnect within ${r.windowMs / 1000} s.`);
    } catch (err) {
      setResult(`Drain failed: ${errorText(err)}`);
    }
  };
  return (
    <section className="bar">
      {!confirming ? (
        <button onClick={() => { setResult(null); setConfirming(true); }}>Drain this room…</button>
      ) : (
        <>
          <label>over <input aria-label="Drain window (seconds)" className="narrow" value={windowSeconds} onChange={(e) => setWindowSeconds(e.target.value.trim())} /> s</label>
          <button className="danger" disabled={!valid} onClick={drain}>Confirm drain</button>
          <button onClick={() => setConfirming(false)}>Cancel</button>
        </>
      )}
      {result && <span role="status" data-testid="drain-result">{result}</span>}
    </section>
  );
}
