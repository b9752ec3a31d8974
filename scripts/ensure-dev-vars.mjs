// `npm run dev` runs this first: local development needs no manual step.
import { copyFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const target = `${root}.dev.vars`;
if (!existsSync(target)) {
  copyFileSync(`${root}.dev.vars.example`, target);
  console.error("roomcast: created .dev.vars from .dev.vars.example (development-only secret)");
}
