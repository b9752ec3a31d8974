import { useState, type FormEvent } from "react";

export function SignIn({ onSignIn }: { onSignIn: (name: string) => void }) {
  const [name, setName] = useState("");
  const valid = /^[A-Za-z0-9_-]{1,32}$/.test(name);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (valid) onSignIn(name);
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
        <button type="submit" disabled={!valid}>
          Join
        </button>
      </form>
    </main>
  );
}
