// The platform's floor for Durable Object fan-out: a bare Durable Object that only loops
// send() to its hibernatable sockets (bench/servers/bare-do), on the same workerd as
// roomcast-direct and partyserver-direct. Roomcast's own overhead is its distance from this.
import { fileURLToPath } from "node:url";
import partyserver from "./partyserver.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "bare-do-direct",
  description: "a bare Durable Object (acceptWebSocket, a send() loop over getWebSockets(), nothing else) bundled with wrangler deploy --dry-run, on workerd directly, no dev proxy",
  vars: {},
  workerDir: fileURLToPath(new URL("../servers/bare-do/", import.meta.url)),
  durableObject: { binding: "Chat", className: "Chat" },
  connect: partyserver.connect,
});
