import { DEFAULT_ROOM, roomLabel } from "./session.js";

/** The URL named a room the demo cannot open: say so, instead of quietly showing another room. */
export function InvalidRoom({ given, onSwitch }: { given: string; onSwitch: (room: string) => void }) {
  return (
    <main className="notice-page" data-testid="invalid-room">
      <h1>No room “{given}”</h1>
      <p role="alert">
        “{given}” is not a room name this demo can open. Demo rooms are <code>demo:</code> followed by 1-64 letters, digits or{" "}
        <code>_ . : -</code>, for example <code>?room=demo:lobby</code>.
      </p>
      <button type="button" onClick={() => onSwitch(DEFAULT_ROOM)}>
        Go to {roomLabel(DEFAULT_ROOM)}
      </button>
    </main>
  );
}
