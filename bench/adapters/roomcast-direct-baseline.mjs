// Roomcast on workerd directly, built from another checkout: set
// ROOMCAST_BASELINE_DIR to a worktree of the commit to compare against (with the
// same node_modules), e.g.
//   git worktree add /tmp/base HEAD~1 && ln -s "$PWD/node_modules" /tmp/base/node_modules
//   ROOMCAST_BASELINE_DIR=/tmp/base npm run bench -- --profile ab --systems roomcast-direct-baseline,roomcast-direct
import { directAdapter } from "./roomcast-direct.mjs";

const dir = process.env.ROOMCAST_BASELINE_DIR;

export default directAdapter({
  name: "roomcast-direct-baseline",
  description: `as roomcast-direct, built from ${dir ?? "(ROOMCAST_BASELINE_DIR unset)"}`,
  ...(dir ? { workerDir: dir } : {}),
});
