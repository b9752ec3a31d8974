// partyserver on workerd directly (no wrangler dev proxy), exactly like
// roomcast-direct: the like-for-like Durable Object comparison.
import { fileURLToPath } from "node:url";
import partyserver from "./partyserver.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "partyserver-direct",
  description: "partyserver 0.5.10 (hibernate: true, this.broadcast incl. sender) bundled with wrangler deploy --dry-run, on workerd directly, no dev proxy",
  vars: {},
  workerDir: fileURLToPath(new URL("../servers/partyserver/", import.meta.url)),
  durableObject: { binding: "Chat", className: "Chat" },
  connect: partyserver.connect,
});
