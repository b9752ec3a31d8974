/**
 * The previous release, checked out of git and made runnable next to this one: its
 * server (served with `wrangler dev` from its own wrangler.toml and sources) and its
 * built `@roomcast/client`. The compatibility matrix, the migration tests and the
 * deploy-under-load script run old code against new code with it; nothing about the
 * old release is hand-written.
 *
 *   import { previousRelease } from "./lib/previous-release.mjs";
 *   const release = await previousRelease({ client: true });
 *   release.root       // a directory to run `wrangler dev` in (packages/client/test/integration/server.ts `root`)
 *   release.clientDist // its built client (dist/index.js), when `client: true`
 *
 * Which release: `scripts/previous-release.json` names a tag and its commit. The tag is
 * used when the clone has it, else the commit (a clone without tags still has the
 * history). A shallow clone has neither: this says so and what to run.
 *
 * The checkout lives in .cache/roomcast-release/<commit> (ignored by git,
 * reused across runs). Its node_modules is this repository's, entry by entry, except
 * `@roomcast/*`, which point at the release's own packages: old code, today's libraries
 * (the lockfile's versions did not change for the runtime dependencies; where they do,
 * install the release's own lockfile instead).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
// Not under node_modules: Node strips TypeScript types only outside it (tsdown loads the config so).
const CACHE = join(repoRoot, ".cache/roomcast-release");

/** `{ tag, commit, version }` of the previous release, from scripts/previous-release.json. */
export function releaseInfo() {
  return JSON.parse(readFileSync(join(repoRoot, "scripts/previous-release.json"), "utf8"));
}

function git(args, options = {}) {
  return spawnSync("git", args, { cwd: repoRoot, encoding: "utf8", maxBuffer: 1 << 28, ...options });
}

/** The full commit id of the previous release, or an Error saying why it cannot be found. */
export function resolveReleaseCommit(info = releaseInfo()) {
  for (const ref of [`refs/tags/${info.tag}^{commit}`, `${info.commit}^{commit}`]) {
    const r = git(["rev-parse", "--verify", "--quiet", ref]);
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  const shallow = git(["rev-parse", "--is-shallow-repository"]).stdout.trim() === "true";
  throw new Error(
    `previous release ${info.tag} (${info.commit}) is not in this clone${shallow ? " (a shallow clone: run `git fetch --unshallow --tags`)" : " (run `git fetch --tags`)"}`,
  );
}

function linkNodeModules(dir) {
  const target = join(dir, "node_modules");
  mkdirSync(join(target, "@roomcast"), { recursive: true });
  for (const entry of readdirSync(join(repoRoot, "node_modules"))) {
    if (entry === "@roomcast" || entry === ".cache" || entry === ".bin") continue;
    symlinkSync(join(repoRoot, "node_modules", entry), join(target, entry));
  }
  symlinkSync(join(repoRoot, "node_modules/.bin"), join(target, ".bin"));
  for (const pkg of readdirSync(join(dir, "packages"))) {
    symlinkSync(join(dir, "packages", pkg), join(target, "@roomcast", pkg));
  }
}

function log(message) {
  process.stderr.write(`previous-release: ${message}\n`);
}

/**
 * Checks the previous release out (once) and builds what is asked for.
 * @param {{ client?: boolean }} [options] client: also build its `@roomcast/client` (tsdown, ~10 s)
 * @returns {Promise<{ tag: string, version: string, commit: string, root: string, clientDist?: string }>}
 */
export async function previousRelease({ client = false } = {}) {
  const info = releaseInfo();
  const commit = resolveReleaseCommit(info);
  const dir = join(CACHE, commit);
  if (!existsSync(join(dir, ".complete"))) {
    const t0 = Date.now();
    // Another process filling the same cold cache: the rename below fails for the second
    // one (the directory exists); whichever finished first wins and both use it.
    if (existsSync(dir) && !existsSync(join(dir, ".complete"))) rmSync(dir, { recursive: true, force: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const archive = git(["archive", "--format=tar", commit], { encoding: "buffer" });
    if (archive.status !== 0) throw new Error(`git archive ${commit} failed: ${archive.stderr}`);
    const untar = spawnSync("tar", ["-x", "-C", tmp], { input: archive.stdout });
    if (untar.status !== 0) throw new Error(`tar -x failed: ${untar.stderr}`);
    linkNodeModules(tmp);
    // wrangler.toml serves demo/dist as assets and refuses to start without it; the old
    // demo is not what any test looks at.
    mkdirSync(join(tmp, "demo/dist"), { recursive: true });
    writeFileSync(join(tmp, "demo/dist/index.html"), `<!doctype html><title>Roomcast ${info.tag}</title>\n`);
    writeFileSync(join(tmp, ".complete"), `${commit}\n`);
    mkdirSync(CACHE, { recursive: true });
    try {
      renameSync(tmp, dir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(join(dir, ".complete"))) throw err;
    }
    log(`checked out ${info.tag} (${commit.slice(0, 10)}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const result = { tag: info.tag, version: info.version, commit, root: dir };
  if (client) {
    const clientDir = join(dir, "packages/client");
    const dist = join(clientDir, "dist/index.js");
    if (!existsSync(dist)) {
      // Two processes building at once write the same files; the second build's output is the same.
      const t0 = Date.now();
      // The project's Node 22 first on PATH (tsdown's shebang is `env node`; on Node 20 it cannot load its config).
      const env = { ...process.env, PATH: `${join(repoRoot, "node_modules/.bin")}:${process.env.PATH}` };
      const r = spawnSync(join(repoRoot, "node_modules/.bin/tsdown"), [], { cwd: clientDir, encoding: "utf8", env });
      if (r.status !== 0 || !existsSync(dist)) throw new Error(`building ${info.tag}'s client failed:\n${(r.stdout ?? "") + (r.stderr ?? "")}`.slice(-3000));
      log(`built ${info.tag}'s @roomcast/client in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    result.clientDist = dist;
  }
  return result;
}
