// Roomcast on workerd directly with adaptive batching on (the feature flag
// adaptive_batching set "on" in FEATURE_FLAGS): the window is MAX_WAIT_MS less the
// loop's measured lag. For A/B against the fixed rules (roomcast-direct-fixed) in the
// same run (docs/benchmarks.md, "Adaptive batching").
import { BENCH_VARS } from "../lib/roomcast-client.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "roomcast-direct-adaptive",
  description: "as roomcast-direct, with adaptive batching on (FEATURE_FLAGS adaptive_batching: on; the window sized from the loop's lag)",
  vars: { ...BENCH_VARS, FEATURE_FLAGS: JSON.stringify({ adaptive_batching: { rollout: "on" } }) },
});
