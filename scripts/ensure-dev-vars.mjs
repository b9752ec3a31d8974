// `npm run dev` runs this first: local development needs no manual step.
// Creates .dev.vars from .dev.vars.example, or adds settings the example gained since.
import { appendFileSync, copyFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readDevVars } from "./dev-vars.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const target = `${root}.dev.vars`;
const example = `${root}.dev.vars.example`;
if (!existsSync(target)) {
  copyFileSync(example, target);
  console.error("roomcast: created .dev.vars from .dev.vars.example (development-only secret)");
} else {
  const have = readDevVars(target);
  const missing = Object.entries(readDevVars(example)).filter(([key]) => !(key in have));
  if (missing.length > 0) {
    appendFileSync(target, `\n# Added from .dev.vars.example by npm run dev\n${missing.map(([k, v]) => `${k}=${v}`).join("\n")}\n`);
    console.error(`roomcast: added ${missing.map(([k]) => k).join(", ")} to .dev.vars`);
  }
}
// wrangler dev (4.x) reads .dev.vars once at start: neither editing it nor a reload on a
// source change picks up new values (checked with wrangler 4.164). Say so every start.
console.error("roomcast: .dev.vars is read once at start; after editing it, restart npm run dev");
