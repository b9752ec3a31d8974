// Roomcast on workerd directly with adaptive batching off (the feature flag
// adaptive_batching set "off" in FEATURE_FLAGS): the fixed rules (a window after
// messages < 2 ms apart, or in rooms of 100+, 1 ms long). For A/B against the
// adaptive default in the same run (docs/benchmarks.md, "Adaptive batching").
import { BENCH_VARS } from "../lib/roomcast-client.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "roomcast-direct-fixed",
  description: "as roomcast-direct, with adaptive batching off (FEATURE_FLAGS adaptive_batching: off; the fixed window rules)",
  vars: { ...BENCH_VARS, FEATURE_FLAGS: JSON.stringify({ adaptive_batching: { rollout: "off" } }) },
});
