// Roomcast on workerd directly with live batching switched off (BROADCAST_BATCHING=off):
// one frame per message per recipient, as before the performance work. For comparison.
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "roomcast-direct-unbatched",
  description: "as roomcast-direct, with BROADCAST_BATCHING=off (one frame per message per recipient)",
  vars: { BROADCAST_BATCHING: "off" },
});
