import { useState, type FormEvent } from "react";
import { tokenProvider } from "./session.js";

export function SignIn({ onSignIn }: { onSignIn: (name: string) => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const valid = /^[A-Za-z0-9_-]{1,32}$/.test(name);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!valid) return;
    setBusy(true);
    setError(null);
    try {
      // Check the dev-only endpoint answers before entering the chat.
      await tokenProvider(name)();
      onSignIn(name);
    } catch (err) {
      setError(
        `Could not sign in: ${(err as Error).message}. This sign-in exists only under \`npm run dev\` (DEV_TOKEN_ENDPOINT); a real app gets tokens from its own backend.`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="sign-in">
      <h1>Roomcast</h1>
      <p>Real-time rooms on Cloudflare Durable Objects. Pick a name to join the demo chat.</p>
      <form onSubmit={submit}>
        <label htmlFor="name">Your name</label>
        <input
          id="name"
          name="name"
          autoComplete="nickname"
          autoFocus
          value={name}
          maxLength={32}
          onChange={(e) => setName(e.target.value.trim())}
          aria-describedby="name-hint"
        />
        <small id="name-hint">1-32 letters, digits, _ or -. Development sign-in only: no password.</small>
        <button type="submit" disabled={!valid || busy}>
          Join
        </button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
