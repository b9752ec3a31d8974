// Roomcast on workerd directly with live batching switched off (BROADCAST_BATCHING=off):
// one frame per message per recipient, as before the performance work. For comparison.
import { BENCH_VARS } from "../lib/roomcast-client.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "roomcast-direct-unbatched",
  description: "as roomcast-direct, with BROADCAST_BATCHING=off (one frame per message per recipient)",
  vars: { ...BENCH_VARS, BROADCAST_BATCHING: "off" },
});
