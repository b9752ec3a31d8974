import { useEffect, useRef, useState, type FormEvent } from "react";
import type { Member, Message } from "@roomcast/client";
import { useMessages, usePresence, useRoom } from "@roomcast/client/react";
import { useConnection, useTicker, type ConnectionView } from "./use-connection.js";
import { useOutgoing, type Outgoing } from "./use-outgoing.js";

interface ChatProps {
  name: string;
  room: string;
  onSwitchRoom: (room: string) => void;
  onSignOut: () => void;
}

const TYPING_IDLE_MS = 2_500;

export function Chat({ name, room: roomName, onSwitchRoom, onSignOut }: ChatProps) {
  const room = useRoom(roomName);
  const messages = useMessages(room);
  const members = usePresence(room);
  const connection = useConnection(room);
  const { outgoing, send } = useOutgoing(room);
  const [draft, setDraft] = useState("");
  const typingTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const setTyping = (typing: boolean) => room?.setPresence(typing ? { typing: true } : null);
  const onDraft = (text: string) => {
    setDraft(text);
    if (!typingTimer.current) setTyping(true);
    clearTimeout(typingTimer.current);
    typingTimer.current = setTimeout(() => {
      typingTimer.current = undefined;
      setTyping(false);
    }, TYPING_IDLE_MS);
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text) return;
    send(text);
    setDraft("");
    clearTimeout(typingTimer.current);
    typingTimer.current = undefined;
    setTyping(false);
  };

  const delivered = new Set(messages.map((m) => m.id));
  const waiting = [...outgoing.values()].filter((o) => !delivered.has(o.id) && !o.error);
  const failed = [...outgoing.values()].filter((o) => o.error);
  const typing = members.filter((m) => m.userId !== name && m.connections.some((c) => (c.state as { typing?: boolean } | null)?.typing));

  return (
    <div className="chat">
      <header className="top">
        <h1>Roomcast</h1>
        <StatusBadge view={connection} />
        <span className="me">
          Signed in as <strong>{name}</strong>{" "}
          <button type="button" className="link" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      {connection.wasLive && connection.state !== "connected" && (
        <div className="banner" role="alert">
          Connection lost. Messages you send now are kept and delivered when it is back.
        </div>
      )}
      <RoomSwitcher current={roomName} onSwitch={onSwitchRoom} />
      <div className="body">
        <section className="messages" aria-label={`Messages in ${roomName}`}>
          <ol aria-live="polite">
            {messages.map((m) => (
              <MessageItem key={m.seq} message={m} mine={m.from === name} outgoing={outgoing.get(m.id)} />
            ))}
            {waiting.map((o) => (
              <li key={o.id} className="mine pending" data-testid="pending">
                <span className="from">{name}</span> <span className="text">{o.text}</span>{" "}
                <span className="status">{o.ack ? "acked" : connection.state === "connected" ? "sending…" : "queued (offline)"}</span>
              </li>
            ))}
            {failed.map((o) => (
              <li key={o.id} className="mine failed">
                <span className="from">{name}</span> <span className="text">{o.text}</span> <span className="status">not sent: {o.error}</span>
              </li>
            ))}
          </ol>
          <p className="typing" aria-live="polite">
            {typing.length > 0 ? `${typing.map((m) => m.userId).join(", ")} ${typing.length === 1 ? "is" : "are"} typing…` : " "}
          </p>
          <form className="composer" onSubmit={submit}>
            <label htmlFor="draft" className="visually-hidden">
              Message
            </label>
            <input id="draft" value={draft} onChange={(e) => onDraft(e.target.value)} placeholder="Write a message" autoComplete="off" maxLength={2000} />
            <button type="submit" disabled={!draft.trim()}>
              Send
            </button>
          </form>
        </section>
        <Members members={members} me={name} stale={connection.state !== "connected"} />
      </div>
    </div>
  );
}

function StatusBadge({ view }: { view: ConnectionView }) {
  const now = useTicker(view.state === "reconnecting");
  let label: string;
  let tone: string;
  if (!view.online) [label, tone] = ["offline", "bad"];
  else if (view.state === "connected") [label, tone] = ["live", "good"];
  else if (view.state === "reconnecting") {
    const seconds = view.retryAt ? Math.max(0, Math.ceil((view.retryAt - now) / 1000)) : 0;
    [label, tone] = [`reconnecting in ${seconds}s`, "warn"];
  } else if (view.state === "failed") [label, tone] = ["failed", "bad"];
  else [label, tone] = ["connecting", "warn"];
  return (
    <span className={`badge ${tone}`} role="status" data-testid="connection-status">
      {label}
    </span>
  );
}

function MessageItem({ message, mine, outgoing }: { message: Message; mine: boolean; outgoing: Outgoing | undefined }) {
  const text = (message.data as { text?: unknown } | null)?.text;
  return (
    <li className={mine ? "mine" : undefined} data-seq={message.seq}>
      <span className="from">{message.from}</span> <span className="text">{typeof text === "string" ? text : JSON.stringify(message.data)}</span>
      {mine && (
        <span className="status" title="stored by the server and acknowledged">
          {outgoing?.latencyMs !== undefined ? `✓ acked in ${outgoing.latencyMs} ms` : "✓ acked"}
        </span>
      )}
    </li>
  );
}

function Members({ members, me, stale }: { members: Member[]; me: string; stale: boolean }) {
  return (
    <aside className={stale ? "members stale" : "members"} aria-label="Who is online">
      <h2>
        Online ({members.length}){stale ? <small> · as last seen</small> : null}
      </h2>
      <ul data-testid="members">
        {members.map((m) => (
          <li key={m.userId} data-user={m.userId} data-devices={m.connections.length}>
            <span className="dot" aria-hidden="true" /> {m.userId}
            {m.userId === me ? " (you)" : ""}
            {m.connections.length > 1 ? ` · ${m.connections.length} devices` : ""}
          </li>
        ))}
      </ul>
    </aside>
  );
}

function RoomSwitcher({ current, onSwitch }: { current: string; onSwitch: (room: string) => void }) {
  const [custom, setCustom] = useState("");
  const rooms = ["demo:lobby", "demo:random", "demo:support"];
  useEffect(() => setCustom(""), [current]);
  const valid = /^[A-Za-z0-9_.:-]{1,64}$/.test(custom);
  return (
    <nav className="rooms" aria-label="Rooms">
      {rooms.map((r) => (
        <button key={r} type="button" aria-current={r === current ? "page" : undefined} onClick={() => onSwitch(r)}>
          #{r.slice("demo:".length)}
        </button>
      ))}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (valid) onSwitch(`demo:${custom}`);
        }}
      >
        <label htmlFor="custom-room" className="visually-hidden">
          Other room
        </label>
        <input id="custom-room" placeholder="other room" value={custom} onChange={(e) => setCustom(e.target.value.trim())} maxLength={64} />
        <button type="submit" disabled={!valid}>
          Go
        </button>
      </form>
    </nav>
  );
}
