import { useEffect, useRef, useState, type FormEvent } from "react";
import type { Member } from "@roomcast/client";
import { useMessages, usePresence, useRoom } from "@roomcast/client/react";
import { MessageList } from "./message-list.js";
import { DEMO_ROOM, roomLabel } from "./session.js";
import { ConnectionNotice, StatusBadge } from "./status.js";
import { useConnection, type ConnectionView } from "./use-connection.js";
import { useOutgoing } from "./use-outgoing.js";

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
  const waiting = [...outgoing.values()].filter((o) => !o.delivered && !delivered.has(o.id) && !o.error);
  const failed = [...outgoing.values()].filter((o) => o.error);
  const typing = members.filter((m) => m.userId !== name && m.connections.some((c) => (c.state as { typing?: boolean } | null)?.typing));
  const live = connection.state === "connected" && connection.online;

  useEffect(() => {
    document.title = `${roomLabel(roomName)} · Roomcast demo`;
  }, [roomName]);

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
      <ConnectionNotice view={connection} room={roomName} />
      <RoomSwitcher current={roomName} onSwitch={onSwitchRoom} />
      <div className="body">
        <section className="messages" aria-labelledby="room-title">
          <h2 id="room-title" className="room-title" data-testid="room-title">
            {roomLabel(roomName)} <small>{roomName}</small>
          </h2>
          <MessageList
            room={roomName}
            me={name}
            messages={messages}
            outgoing={outgoing}
            waiting={waiting}
            failed={failed}
            phase={connection.state === "failed" ? "failed" : !connection.wasLive ? "loading" : live ? "live" : "down"}
            online={connection.online}
          />
          <p className="typing" aria-live="polite">
            {typing.length > 0 ? `${typing.map((m) => m.userId).join(", ")} ${typing.length === 1 ? "is" : "are"} typing…` : " "}
          </p>
          <form className="composer" onSubmit={submit}>
            <label htmlFor="draft" className="visually-hidden">
              Message
            </label>
            <input id="draft" value={draft} onChange={(e) => onDraft(e.target.value)} placeholder={`Message ${roomLabel(roomName)}`} autoComplete="off" maxLength={2000} />
            <button type="submit" disabled={!draft.trim()}>
              Send
            </button>
          </form>
        </section>
        <Members members={members} me={name} view={connection} />
      </div>
    </div>
  );
}

function Members({ members, me, view }: { members: Member[]; me: string; view: ConnectionView }) {
  // Before the first connection there is nothing to show, not "nobody".
  if (!view.wasLive) {
    return (
      <aside className="members" aria-label="Who is online" data-testid="members-panel">
        <h2>Online</h2>
        <p className="muted">{view.state === "failed" ? "Not connected." : "Connecting…"}</p>
      </aside>
    );
  }
  const stale = view.state !== "connected" || !view.online;
  return (
    <aside className={stale ? "members stale" : "members"} aria-label="Who is online" data-testid="members-panel">
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

export function RoomSwitcher({ current, onSwitch }: { current: string | undefined; onSwitch: (room: string) => void }) {
  const [custom, setCustom] = useState("");
  const rooms = ["demo:lobby", "demo:random", "demo:support"];
  useEffect(() => setCustom(""), [current]);
  const valid = DEMO_ROOM.test(`demo:${custom}`);
  return (
    <nav className="rooms" aria-label="Rooms">
      {rooms.map((r) => (
        <button key={r} type="button" aria-current={r === current ? "page" : undefined} onClick={() => onSwitch(r)}>
          {roomLabel(r)}
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
        <input
          id="custom-room"
          placeholder="other room"
          value={custom}
          onChange={(e) => setCustom(e.target.value.trim())}
          maxLength={64}
          aria-invalid={custom !== "" && !valid}
          aria-describedby={custom !== "" && !valid ? "custom-room-hint" : undefined}
        />
        <button type="submit" disabled={!valid}>
          Go
        </button>
        {custom !== "" && !valid && (
          <small id="custom-room-hint" className="field-error" role="alert">
            Letters, digits and _ . : - only
          </small>
        )}
      </form>
    </nav>
  );
}
