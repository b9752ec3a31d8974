/**
 * A private, fixed copy of a checkout to serve with `wrangler dev`, its node_modules linked
 * to this repository's (`@roomcast/*` to the copy's own packages). `wrangler dev` reloads,
 * resetting every Durable Object, whenever a file it serves changes or another `wrangler dev`
 * works in the same directory; in a shared working tree both happen at any time.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";

/**
 * Copies `from` into `dir` and links node_modules. For this repository (`repoRoot`): its files
 * as they are now (tracked, and untracked but not ignored, uncommitted edits included) and the
 * built demo assets wrangler dev serves; for any other directory (a release checked out by
 * previous-release.mjs): everything but node_modules and .wrangler.
 */
export function privateCopy(from, dir, repoRoot) {
  if (from === repoRoot) {
    const list = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: repoRoot, encoding: "utf8", maxBuffer: 1 << 26 });
    if (list.status !== 0) throw new Error(`git ls-files failed: ${list.stderr}`);
    for (const file of list.stdout.split("\0")) {
      if (!file || !existsSync(join(repoRoot, file))) continue; // deleted in the working tree
      cpSync(join(repoRoot, file), join(dir, file), { verbatimSymlinks: true });
    }
    cpSync(join(repoRoot, "demo/dist"), join(dir, "demo/dist"), { recursive: true });
  } else {
    const skip = new Set([join(from, "node_modules"), join(from, ".wrangler")]);
    cpSync(from, dir, { recursive: true, verbatimSymlinks: true, filter: (src) => !skip.has(src) });
  }
  mkdirSync(join(dir, "node_modules/@roomcast"), { recursive: true });
  for (const entry of readdirSync(join(repoRoot, "node_modules"))) {
    if (entry === "@roomcast" || entry === ".cache") continue;
    symlinkSync(join(repoRoot, "node_modules", entry), join(dir, "node_modules", entry));
  }
  for (const pkg of readdirSync(join(dir, "packages"))) symlinkSync(join(dir, "packages", pkg), join(dir, "node_modules/@roomcast", pkg));
  return dir;
}
