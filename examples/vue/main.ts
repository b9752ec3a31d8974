/**
 * The smallest Vue chat over @roomcast/client/vue. Run `npm run dev` in one
 * terminal and `npx vite examples/vue` in another, then open http://localhost:5173
 * (`?name=alice&room=demo:vue` to choose; the dev token opens rooms named demo:…).
 */
import { createApp, defineComponent, ref } from "vue";
import { createRoomcast, useConnectionState, useMessages, usePending, usePresence, usePublish, useRoom } from "@roomcast/client/vue";

const query = new URLSearchParams(location.search);
const me = query.get("name") ?? `vue-${Math.random().toString(36).slice(2, 6)}`;
const roomName = query.get("room") ?? "demo:vue";

/** Dev-only sign-in (POST /dev/token under `npm run dev`); a real app asks its own backend. */
async function token(): Promise<string> {
  const res = await fetch("/dev/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: me }) });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

const Chat = defineComponent({
  props: { room: { type: String, required: true } },
  setup(props) {
    const room = useRoom(() => props.room);
    const state = useConnectionState(room);
    const messages = useMessages(room);
    const members = usePresence(room);
    const pending = usePending(room);
    const publish = usePublish(room);
    const draft = ref("");
    const failure = ref("");
    async function send() {
      const text = draft.value.trim();
      if (!text) return;
      draft.value = "";
      try {
        await publish({ text }); // resolves once the server stored it; queued while offline
      } catch (err) {
        failure.value = `not sent: ${(err as Error).message}`;
      }
    }
    return { me, state, messages, members, pending, draft, failure, send };
  },
  template: `
    <h1>{{ room }}</h1>
    <p data-test="status">{{ state }} · as {{ me }} · online: {{ members.map((m) => m.userId).join(", ") || "nobody" }}</p>
    <ul data-test="messages">
      <li v-for="m in messages" :key="m.seq"><b>{{ m.from }}</b>: {{ m.data?.text ?? JSON.stringify(m.data) }}</li>
      <li v-for="p in pending" :key="p.id" class="pending">{{ p.data?.text }} (sending…)</li>
    </ul>
    <p v-if="failure" role="alert">{{ failure }}</p>
    <form @submit.prevent="send">
      <input v-model="draft" placeholder="Say something" aria-label="message" />
      <button>Send</button>
    </form>`,
});

createApp({ components: { Chat }, setup: () => ({ roomName }), template: `<Chat :room="roomName" />` })
  .use(createRoomcast({ options: { url: location.origin, token } }))
  .mount("#app");
