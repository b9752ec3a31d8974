import { useMemo, useState, type FormEvent } from "react";
import { ApiError, createApi, type Api } from "./api.js";
import { errorText } from "./format.js";
import { useHashRoute } from "./hooks.js";
import { RoomView } from "./room-view.js";
import { RoomsList } from "./rooms-list.js";
import { cleanToken, clearToken, loadToken, saveToken } from "./session.js";

export interface AppProps {
  /** Builds the API for a token (tests pass a fake). */
  makeApi?: (token: string) => Api;
}

export function App({ makeApi = createApi }: AppProps) {
  const [token, setToken] = useState<string | null>(loadToken);
  const [signInError, setSignInError] = useState<string | null>(null);
  const api = useMemo(() => (token ? makeApi(token) : null), [token, makeApi]);
  const room = useHashRoute();

  const signOut = (reason?: string) => {
    clearToken();
    setToken(null);
    setSignInError(reason ?? null);
  };

  if (!api) return <SignIn error={signInError} onToken={(t) => { saveToken(t); setSignInError(null); setToken(t); }} />;

  /** A refused token ends the session: the admin pastes another. */
  const onAuthError = (err: unknown) => {
    if (err instanceof ApiError && (err.code === "unauthorized" || err.code === "token_expired" || err.code === "forbidden")) {
      signOut(errorText(err));
      return true;
    }
    return false;
  };

  return (
    <div className="console">
      <header className="top">
        <h1><a href="#/">Roomcast console</a></h1>
        {room !== null && <span className="crumb">/ {room}</span>}
        <button className="sign-out" onClick={() => signOut()}>Sign out</button>
      </header>
      {room === null ? <RoomsList api={api} onAuthError={onAuthError} /> : <RoomView key={room} api={api} room={room} onAuthError={onAuthError} />}
    </div>
  );
}

function SignIn({ error, onToken }: { error: string | null; onToken: (token: string) => void }) {
  const [text, setText] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const token = cleanToken(text);
    if (!token) {
      setProblem("That is not a JWT (three base64url parts separated by dots).");
      return;
    }
    setText("");
    onToken(token);
  };
  return (
    <main className="sign-in">
      <h1>Roomcast console</h1>
      <form onSubmit={submit} autoComplete="off">
        <label htmlFor="token">Admin token</label>
        <input id="token" type="password" value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} autoFocus />
        <small>A JWT whose <code>cap</code> grants <code>admin</code> on <code>*</code>. It is kept in this tab's session storage only and sent as an Authorization header.</small>
        {(problem ?? error) && <p className="error" role="alert">{problem ?? error}</p>}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
