/**
 * The smallest Angular chat over @roomcast/client/angular. Run `npm run dev` in
 * one terminal and `npx vite examples/angular` in another, then open
 * http://localhost:5174 (`?name=alice&room=demo:angular` to choose; the dev token
 * opens rooms named demo:…).
 *
 * To stay one file with no Angular CLI, the component is compiled in the browser
 * (JIT, hence the compiler import) and declared by calling `Component(…)` rather
 * than with decorator syntax. In an Angular CLI app write `@Component({…}) class …`
 * as usual: the bindings are plain `inject()` code and need nothing else.
 */
import "@angular/compiler";
import { Component, provideZonelessChangeDetection, signal } from "@angular/core";
import { bootstrapApplication } from "@angular/platform-browser";
import { injectRoom, provideRoomcast } from "@roomcast/client/angular";

const query = new URLSearchParams(location.search);
const me = query.get("name") ?? `ng-${Math.random().toString(36).slice(2, 6)}`;
const roomName = query.get("room") ?? "demo:angular";

/** Dev-only sign-in (POST /dev/token under `npm run dev`); a real app asks its own backend. */
async function token(): Promise<string> {
  const res = await fetch("/dev/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: me }) });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

const ChatComponent = Component({
  selector: "app-chat",
  template: `
    <h1>{{ chat.name }}</h1>
    <p data-test="status">{{ chat.state() }} · as {{ me }} · online: {{ online() }}</p>
    <ul data-test="messages">
      @for (m of chat.messages(); track m.seq) {
        <li><b>{{ m.from }}</b>: {{ text(m.data) }}</li>
      }
      @for (p of chat.pending(); track p.id) {
        <li class="pending">{{ text(p.data) }} (sending…)</li>
      }
    </ul>
    @if (failure()) {
      <p role="alert">{{ failure() }}</p>
    }
    <form (submit)="send($event)">
      <input [value]="draft()" (input)="draft.set($any($event.target).value)" placeholder="Say something" aria-label="message" />
      <button>Send</button>
    </form>`,
})(
  class ChatComponent {
    readonly me = me;
    readonly chat = injectRoom(roomName);
    readonly draft = signal("");
    readonly failure = signal("");

    online(): string {
      return this.chat.members().map((m) => m.userId).join(", ") || "nobody";
    }

    text(data: unknown): string {
      const text = (data as { text?: unknown } | null)?.text;
      return typeof text === "string" ? text : JSON.stringify(data);
    }

    async send(event: Event): Promise<void> {
      event.preventDefault();
      const text = this.draft().trim();
      if (!text) return;
      this.draft.set("");
      try {
        await this.chat.publish({ text }); // resolves once the server stored it; queued while offline
      } catch (err) {
        this.failure.set(`not sent: ${(err as Error).message}`);
      }
    }
  },
);

bootstrapApplication(ChatComponent, {
  providers: [provideZonelessChangeDetection(), provideRoomcast({ options: { url: location.origin, token } })],
}).catch((err: unknown) => console.error(err));
