// Roomcast on workerd directly with presence coalescing off (PRESENCE_MAX_DELAY_MS=0):
// every presence change goes out on its own, as before the coalescing. For comparison.
import { BENCH_VARS } from "../lib/roomcast-client.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "roomcast-direct-presence0",
  description: "as roomcast-direct, with PRESENCE_MAX_DELAY_MS=0 (one presence_diff per change)",
  vars: { ...BENCH_VARS, PRESENCE_MAX_DELAY_MS: "0" },
});
