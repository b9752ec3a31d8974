import { roomLabel } from "./session.js";
import { troubleOf, useTicker, type ConnectionView } from "./use-connection.js";

/** The small badge in the header: one word for where the connection stands. */
export function StatusBadge({ view }: { view: ConnectionView }) {
  const now = useTicker(view.state === "reconnecting");
  const trouble = troubleOf(view);
  let label: string;
  let tone: string;
  if (trouble === "offline") [label, tone] = ["offline", "bad"];
  else if (view.state === "connected") [label, tone] = ["live", "good"];
  else if (view.state === "reconnecting") [label, tone] = [`reconnecting in ${secondsUntil(view.retryAt, now)}s`, "warn"];
  else if (view.state === "failed") [label, tone] = ["failed", "bad"];
  else [label, tone] = [view.retrying ? "reconnecting…" : "connecting", "warn"];
  return (
    <span className={`badge ${tone}`} role="status" data-testid="connection-status">
      {label}
    </span>
  );
}

const KEPT = "Messages you write are kept and sent as soon as the connection is back.";

/** A sentence for anything that is wrong, with what the reader can expect. */
export function ConnectionNotice({ view, room }: { view: ConnectionView; room: string }) {
  const now = useTicker(view.state === "reconnecting");
  const trouble = troubleOf(view);
  if (!trouble) return null;
  const retry = view.state === "reconnecting" ? `Retrying in ${secondsUntil(view.retryAt, now)} s.` : "Retrying now…";
  let text: string;
  if (trouble === "offline") text = "You are offline: this device has no network. Messages you write are kept and sent when it is back.";
  else if (trouble === "unreachable") text = `Cannot reach the server at ${location.host}: it may be down or restarting. ${retry} ${KEPT}`;
  else if (trouble === "refused") text = `The server did not let us in yet (${describe(view.error)}). ${retry} ${KEPT}`;
  else text = `Cannot join ${roomLabel(room)}: ${describe(view.error)}. Retrying will not help; try another room or sign in again.`;
  return (
    <div className={`banner ${trouble === "failed" ? "bad" : "warn"}`} role="alert" data-testid="connection-notice" data-kind={trouble}>
      {text}
    </div>
  );
}

function secondsUntil(at: number | undefined, now: number): number {
  return at ? Math.max(0, Math.ceil((at - now) / 1000)) : 0;
}

function describe(error: ConnectionView["error"]): string {
  return error ? `${error.code}: ${error.message}` : "no reason given";
}
