import type { Message } from "@roomcast/client";
import { roomLabel } from "./session.js";
import type { Outgoing } from "./use-outgoing.js";
import { useStickToBottom } from "./use-stick-to-bottom.js";

interface MessageListProps {
  room: string;
  me: string;
  messages: Message[];
  outgoing: Map<string, Outgoing>;
  /** Own messages not delivered back yet, oldest first. */
  waiting: Outgoing[];
  failed: Outgoing[];
  /** "loading" until the room has been live once (its history comes with the first connection); "failed" once refused for good. */
  phase: "loading" | "live" | "down" | "failed";
  /** The browser has a network (a queued row says "offline" only when it has not). */
  online: boolean;
}

/**
 * A message's key. Not the seq alone: after a room's log starts over (a new epoch)
 * seqs begin again at 1. Not the id alone: an outbox entry replayed into a new log
 * reappears with the same id.
 */
const keyOf = (m: Message) => `${m.seq}:${m.id}`;

export function MessageList({ room, me, messages, outgoing, waiting, failed, phase, online }: MessageListProps) {
  const last = messages.at(-1);
  const rows = messages.length + waiting.length + failed.length;
  const { ref, onScroll, atBottom, seen, toBottom } = useStickToBottom<HTMLOListElement>(last && keyOf(last), rows, waiting.at(-1)?.id);

  const seenAt = seen === undefined ? -1 : messages.findIndex((m) => keyOf(m) === seen);
  const unseen = atBottom ? 0 : messages.slice(seenAt + 1).filter((m) => m.from !== me).length;
  const empty = messages.length === 0 && waiting.length === 0 && failed.length === 0;

  return (
    <div className="list">
      <ol ref={ref} onScroll={onScroll} aria-live="polite" data-testid="message-list">
        {empty && phase === "loading" && <li className="hint now">Connecting to {roomLabel(room)}…</li>}
        {empty && phase === "failed" && <li className="hint now">Not connected to {roomLabel(room)}.</li>}
        {empty && (phase === "live" || phase === "down") && (
          <li className="hint" data-testid="empty-hint">
            No messages in {roomLabel(room)} yet. Say hello! To chat with someone, open this page in another browser (or a private
            window) and sign in with another name.
          </li>
        )}
        {messages.map((m) => (
          <MessageItem key={keyOf(m)} message={m} mine={m.from === me} outgoing={outgoing.get(m.id)} />
        ))}
        {waiting.map((o) => (
          <li key={o.id} className="mine pending" data-testid="pending">
            <span className="from">{me}</span> <span className="text">{o.text}</span>{" "}
            <span className="status">{o.ack ? "acked" : phase === "live" ? "sending…" : online ? "queued (not connected)" : "queued (offline)"}</span>
          </li>
        ))}
        {failed.map((o) => (
          <li key={o.id} className="mine failed">
            <span className="from">{me}</span> <span className="text">{o.text}</span> <span className="status">not sent: {o.error}</span>
          </li>
        ))}
      </ol>
      {unseen > 0 && (
        <button type="button" className="new-messages" data-testid="new-messages" onClick={toBottom}>
          ↓ {unseen} new {unseen === 1 ? "message" : "messages"}
        </button>
      )}
    </div>
  );
}

function MessageItem({ message, mine, outgoing }: { message: Message; mine: boolean; outgoing: Outgoing | undefined }) {
  const text = (message.data as { text?: unknown } | null)?.text;
  return (
    <li className={mine ? "mine" : undefined} data-seq={message.seq}>
      <Time ts={message.ts} /> <span className="from">{message.from}</span>{" "}
      <span className="text">{typeof text === "string" ? text : JSON.stringify(message.data)}</span>
      {mine && (
        <span className="status" title="stored by the server and acknowledged">
          {outgoing?.latencyMs !== undefined ? `✓ acked in ${outgoing.latencyMs} ms` : "✓ acked"}
        </span>
      )}
    </li>
  );
}

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayAndTime = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", hour: "numeric", minute: "2-digit" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** When the server stored it: the time of day today, with the date before that. */
function Time({ ts }: { ts: number }) {
  const date = new Date(ts);
  const today = date.toDateString() === new Date().toDateString();
  return (
    <time className="time" dateTime={date.toISOString()} title={full.format(date)}>
      {(today ? timeOfDay : dayAndTime).format(date)}
    </time>
  );
}
