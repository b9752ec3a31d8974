import { useEffect, useRef, useState } from "react";
import type { Api, TraceEvent, TraceState } from "./api.js";
import { FlowChart } from "./chart.js";
import { bucketEvents, isErrorEvent, mergeEvents } from "./flow.js";
import { bytes, clock, errorText } from "./format.js";

export const TRACE_POLL_MS = 1_000;
/** Rows of the timeline shown (newest first); the chart uses every event held. */
const TIMELINE_ROWS = 200;

/**
 * The message-flow view: starts and stops the room's trace mode and, while it is on,
 * follows its events (`GET …/trace?after=ID` every second) into a chart and a timeline.
 * Nothing is polled while tracing is off, so an idle room is not woken for it.
 */
export function TracePanel({ api, room, onAuthError }: { api: Api; room: string; onAuthError: (err: unknown) => boolean }) {
  const [state, setState] = useState<TraceState | null>(null);
  const [events, setEvents] = useState<TraceEvent[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [seconds, setSeconds] = useState("60");
  const [payloads, setPayloads] = useState(false);
  const [now, setNow] = useState(Date.now());
  const lastId = useRef(0);

  // Learn the state once; then poll only while enabled.
  const enabled = state?.enabled ?? false;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const r = await api.traceEvents(room, lastId.current);
        if (stopped) return;
        setError(null);
        const at = Date.now();
        if (r.events.length) {
          setEvents((held) => {
            const merged = mergeEvents(held, r.events, at);
            lastId.current = merged.length ? merged[merged.length - 1]!.id : lastId.current;
            return merged;
          });
        }
        setNow(at);
        setState((s) => (s && s.enabled === r.enabled && s.until === r.until ? s : { enabled: r.enabled, until: r.until }));
        if (r.enabled) timer = setTimeout(run, TRACE_POLL_MS);
      } catch (err) {
        if (stopped || onAuthError(err)) return;
        setError(errorText(err));
        setState((s) => s ?? { enabled: false, until: null });
        if (enabled) timer = setTimeout(run, TRACE_POLL_MS * 2);
      }
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [api, room, enabled, onAuthError]);

  const secondsValid = /^\d{1,3}$/.test(seconds) && Number(seconds) >= 1 && Number(seconds) <= 600;
  const start = async () => {
    try {
      setState(await api.startTrace(room, Number(seconds), payloads));
      setError(null);
    } catch (err) {
      if (!onAuthError(err)) setError(errorText(err));
    }
  };
  const stop = async () => {
    try {
      setState(await api.stopTrace(room));
      setError(null);
    } catch (err) {
      if (!onAuthError(err)) setError(errorText(err));
    }
  };

  const buckets = bucketEvents(events, now);
  const recent = events.filter((e) => e.at > now - 10_000);
  const inRate = recent.filter((e) => e.dir === "in").length / 10;
  const outRate = recent.filter((e) => e.dir === "out").length / 10;
  const errorsMinute = events.filter((e) => e.at > now - 60_000 && isErrorEvent(e)).length;
  const rows = events.slice(-TIMELINE_ROWS).reverse();

  return (
    <section className="panel trace" data-testid="trace-panel">
      <h2>Message flow</h2>
      <div className="bar">
        {state === null ? (
          <span className="muted">…</span>
        ) : state.enabled ? (
          <>
            <span className="badge live" data-testid="trace-status">Tracing{state.until ? ` until ${new Date(state.until).toLocaleTimeString()}` : ""}</span>
            <button onClick={stop}>Stop tracing</button>
          </>
        ) : (
          <>
            <span className="badge" data-testid="trace-status">Tracing off</span>
            <label>for <input aria-label="Trace seconds" className="narrow" value={seconds} onChange={(e) => setSeconds(e.target.value.trim())} /> s</label>
            <label><input type="checkbox" checked={payloads} onChange={(e) => setPayloads(e.target.checked)} /> include payloads</label>
            <button disabled={!secondsValid} onClick={start}>Start tracing</button>
          </>
        )}
        <span className="muted" data-testid="flow-rates">in {inRate.toFixed(1)}/s · out {outRate.toFixed(1)}/s · errors (1 min) {errorsMinute}</span>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <FlowChart buckets={buckets} />
      <div className="timeline">
        <table data-testid="trace-timeline">
          <thead><tr><th>Time</th><th>Dir</th><th>Type</th><th>Size</th><th>User</th><th>Seq</th><th>Outcome</th><th>Data</th></tr></thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id} data-event={e.id} data-dir={e.dir} data-type={e.type} className={isErrorEvent(e) ? "bad" : ""}>
                <td>{clock(e.at)}</td>
                <td>{e.dir === "in" ? "→ in" : "← out"}</td>
                <td>{e.type}</td>
                <td>{bytes(e.bytes)}</td>
                <td>{e.userId ?? ""}</td>
                <td>{e.seq ?? ""}</td>
                <td>{e.outcome ?? ""}</td>
                <td className="data">{e.data === undefined ? "" : JSON.stringify(e.data).slice(0, 120)}</td>
              </tr>
            ))}
            {rows.length === 0 && <tr><td colSpan={8} className="muted">{enabled ? "Waiting for frames…" : "Start tracing to follow the frames in and out of this room."}</td></tr>}
          </tbody>
        </table>
      </div>
    </section>
  );
}
