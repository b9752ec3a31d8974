// Runs before `wrangler deploy`: refuses a production deploy that would carry the
// development secret or development mode. (The Worker refuses the dev secret at
// runtime too; this catches the mistake before it ships.)
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const config = readFileSync(`${root}wrangler.toml`, "utf8");
const problems = [];
if (/^\s*JWT_SECRET\s*=/m.test(config)) {
  problems.push("wrangler.toml sets JWT_SECRET in [vars]; secrets belong in `wrangler secret put JWT_SECRET`");
}
if (config.includes("roomcast-dev-only-")) problems.push("wrangler.toml contains the development secret");
if (/^\s*ENVIRONMENT\s*=\s*"development"/m.test(config)) {
  problems.push('wrangler.toml sets ENVIRONMENT = "development"; that belongs in .dev.vars only');
}
if (/^\s*DEV_TOKEN_ENDPOINT\s*=\s*"enabled"/m.test(config)) {
  problems.push('wrangler.toml enables DEV_TOKEN_ENDPOINT; the dev token endpoint belongs in .dev.vars only');
}
if (process.env.JWT_SECRET?.startsWith("roomcast-dev-only-")) {
  problems.push("$JWT_SECRET holds the development secret");
}
if (problems.length) {
  console.error(`deploy refused:\n- ${problems.join("\n- ")}`);
  process.exit(1);
}
console.error("deploy check: no development secret or development mode in the production config");
