import { useEffect, useMemo, useState } from "react";
import { createClient, indexedDbStorage } from "@roomcast/client";
import { RoomcastProvider } from "@roomcast/client/react";
import { Chat } from "./chat.js";
import { InvalidRoom } from "./invalid-room.js";
import { SignIn } from "./sign-in.js";
import { roomFromUrl, saveName, savedName, setRoomInUrl, tokenProvider } from "./session.js";

export function App() {
  const [name, setName] = useState<string | null>(() => savedName());
  const [room, setRoom] = useState(() => roomFromUrl());

  useEffect(() => {
    const onPop = () => setRoom(roomFromUrl());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  // One client per signed-in name; publishes queued offline survive reloads (IndexedDB).
  const client = useMemo(
    () =>
      name
        ? createClient({
            url: location.origin,
            token: tokenProvider(name),
            outbox: { storage: indexedDbStorage({ name: `roomcast-demo-${name}` }) },
            backoff: { minMs: 250, maxMs: 10_000 },
          })
        : null,
    [name],
  );
  useEffect(() => () => client?.close(), [client]);

  const switchRoom = (next: string) => {
    setRoomInUrl(next);
    setRoom({ room: next });
  };
  if ("invalid" in room) return <InvalidRoom given={room.invalid} onSwitch={switchRoom} />;
  if (!name || !client) {
    return (
      <SignIn
        onSignIn={(n) => {
          saveName(n);
          setName(n);
        }}
      />
    );
  }
  return (
    <RoomcastProvider client={client}>
      <Chat
        key={room.room}
        name={name}
        room={room.room}
        onSwitchRoom={switchRoom}
        onSignOut={() => {
          saveName(null);
          setName(null);
        }}
      />
    </RoomcastProvider>
  );
}
