// Roomcast on workerd directly with the opt-in coalescing delay: in a busy room a live
// message may wait up to BROADCAST_MAX_DELAY_MS (here 5 ms, or $BENCH_MAX_DELAY_MS) to
// share a frame with the messages behind it. Trades a bounded wait for fewer sends.
import { BENCH_VARS } from "../lib/roomcast-client.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

const delay = process.env.BENCH_MAX_DELAY_MS ?? "5";

export default directAdapter({
  name: "roomcast-direct-delay",
  description: `as roomcast-direct, with BROADCAST_MAX_DELAY_MS=${delay} (busy rooms coalesce messages up to ${delay} ms apart)`,
  vars: { ...BENCH_VARS, BROADCAST_MAX_DELAY_MS: delay },
});
