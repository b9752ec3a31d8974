// Runs before `wrangler deploy` (the `predeploy` hook) and in `npm run build:dry`: refuses a
// production deploy that would carry the development secret or development mode. (The Worker
// refuses the dev secret at runtime too; this catches the mistake before it ships.)
//
// It checks the configuration as wrangler itself resolves it, with wrangler's own reader
// (`unstable_readConfig`): the same file wrangler picks (wrangler.json, then wrangler.jsonc, then
// wrangler.toml, or a build tool's .wrangler/deploy/config.json redirect), parsed by the real
// TOML/JSONC parser, for the top level and every [env.*], offline.
//
// npm gives a pre-script none of the arguments of `npm run deploy -- …`, so this reads them from
// the npm process (Linux /proc, else `ps`): --config is checked instead of the default file,
// --var values are held to the same rules, and --secrets-file and --experimental-new-config,
// which it cannot check, are flagged. The same flags may be given to this script directly:
//   node scripts/check-deploy.mjs [--config FILE] [--env NAME] [--var KEY:VALUE ...]
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { experimental_readRawConfig, unstable_readConfig } from "wrangler";

const DEV_SECRET_PREFIX = "roomcast-dev-only-";
const CONFIG_NAMES = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"];
const problems = [];
const warnings = [];

/** The flags of `wrangler deploy` that change what is deployed, from an argument list. */
function parseWranglerArgs(tokens) {
  const out = { vars: [], config: undefined, env: undefined, secretsFile: undefined, newConfig: false };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (!token.startsWith("-")) continue;
    const eq = token.indexOf("=");
    // yargs accepts --fooBar for --foo-bar.
    const flag = (eq === -1 ? token : token.slice(0, eq)).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const inline = eq === -1 ? undefined : token.slice(eq + 1);
    const value = () => inline ?? (i + 1 < tokens.length ? tokens[++i] : "");
    if (flag === "--var") {
      // An array option: --var A:1 B:2 takes both.
      if (inline !== undefined) out.vars.push(inline);
      else while (i + 1 < tokens.length && !tokens[i + 1].startsWith("-")) out.vars.push(tokens[++i]);
    } else if (flag === "--config" || flag === "-c") out.config = value();
    else if (flag === "--env" || flag === "-e") out.env = value();
    else if (flag === "--secrets-file") out.secretsFile = value();
    else if (flag === "--experimental-new-config" || flag === "--x-new-config") out.newConfig = inline !== "false";
    else if (/^-[ce]./.test(token)) out[token[1] === "c" ? "config" : "env"] = token.slice(2);
  }
  return out;
}

/** argv and parent pid of a process, or undefined when the system does not say. */
function processInfo(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    let argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    // npm overwrites its argv with its title, `npm run deploy --var …` (positional arguments
    // only, without the `--`), as one string.
    if (argv.length === 1) argv = argv[0].trim().split(/\s+/);
    return { ppid, argv };
  } catch {}
  try {
    const line = execFileSync("ps", ["-o", "ppid=", "-o", "args=", "-p", String(pid)], { encoding: "utf8" }).trim();
    const [ppid, ...argv] = line.split(/\s+/);
    return { ppid: Number(ppid), argv };
  } catch {}
  return undefined;
}

/**
 * The arguments given after the script name to `npm run <script>` when this
 * runs as its pre-script or inside it; null when not run by a package manager.
 */
function packageManagerArgs() {
  const event = process.env.npm_lifecycle_event;
  if (!event) return null;
  let target = event;
  if (event.startsWith("pre")) {
    try {
      const scripts = JSON.parse(readFileSync(process.env.npm_package_json ?? "package.json", "utf8")).scripts ?? {};
      if (scripts[event.slice(3)] !== undefined) target = event.slice(3);
    } catch {}
  }
  let pid = process.ppid;
  for (let depth = 0; depth < 12 && pid > 1; depth++) {
    const info = processInfo(pid);
    if (!info) break;
    const at = info.argv.indexOf(target);
    if (at !== -1) return { script: target, tokens: info.argv.slice(at + 1) };
    pid = info.ppid;
  }
  return { script: target, tokens: undefined };
}

function checkVars(vars, where) {
  for (const [key, value] of Object.entries(vars ?? {})) {
    if (key === "JWT_SECRET") {
      problems.push(`${where} sets JWT_SECRET as a plain var; secrets belong in \`wrangler secret put JWT_SECRET\``);
    }
    if (key === "ENVIRONMENT" && value === "development") {
      problems.push(`${where} sets ENVIRONMENT = "development"; that belongs in .dev.vars only`);
    }
    if (key === "DEV_TOKEN_ENDPOINT" && value === "enabled") {
      problems.push(`${where} enables DEV_TOKEN_ENDPOINT; the dev token endpoint belongs in .dev.vars only`);
    }
  }
}

const own = parseWranglerArgs(process.argv.slice(2));
const npm = packageManagerArgs();
const seen = npm?.tokens ? parseWranglerArgs(npm.tokens) : parseWranglerArgs([]);
if (npm && !npm.tokens) {
  warnings.push(
    `could not read the arguments of \`npm run ${npm.script}\`: any --var, --config, --env or --secrets-file given after \`--\` was NOT checked`,
  );
}
const configArg = own.config ?? seen.config;
const envArg = own.env ?? seen.env;
const cliVars = [...own.vars, ...seen.vars];
const rel = (file) => path.relative(process.cwd(), file) || file;

if (own.newConfig || seen.newConfig) {
  problems.push("--experimental-new-config deploys cloudflare.config.ts, which this check cannot read");
}
if (own.secretsFile ?? seen.secretsFile) {
  warnings.push(
    `--secrets-file ${own.secretsFile ?? seen.secretsFile} is NOT checked: make sure it holds no ENVIRONMENT, DEV_TOKEN_ENDPOINT or development secret`,
  );
}
if (cliVars.length) {
  const vars = Object.fromEntries(cliVars.map((pair) => [pair.split(":")[0], pair.split(":").slice(1).join(":")]));
  checkVars(vars, "--var");
  if (cliVars.some((pair) => pair.includes(DEV_SECRET_PREFIX))) problems.push("--var carries the development secret");
  warnings.push(`--var sets ${Object.keys(vars).join(", ")} for this deploy only, over the committed config`);
}

try {
  const { rawConfig, configPath, userConfigPath, redirected } = experimental_readRawConfig(
    { config: configArg },
    { useRedirectIfAvailable: true },
  );
  if (!configPath) throw new Error(`no ${CONFIG_NAMES.join(", ")} found from ${process.cwd()}`);
  if (redirected) warnings.push(`wrangler is redirected to ${rel(configPath)} (by .wrangler/deploy/config.json); that is what was checked`);
  if (!configArg) {
    for (const name of CONFIG_NAMES) {
      const other = path.join(path.dirname(userConfigPath ?? configPath), name);
      if (other !== userConfigPath && existsSync(other)) {
        warnings.push(`${name} is ignored: wrangler reads ${path.basename(userConfigPath)}`);
      }
    }
  }
  let secretInFile = false;
  for (const file of new Set([configPath, userConfigPath].filter(Boolean))) {
    if (readFileSync(file, "utf8").includes(DEV_SECRET_PREFIX)) {
      problems.push(`${rel(file)} contains the development secret`);
      secretInFile = true;
    }
  }
  // The top level (env "", whatever CLOUDFLARE_ENV says) and every environment, so that
  // `--env`/CLOUDFLARE_ENV, which may be given where this cannot see, select nothing unchecked.
  // (Vars are not inherited: an environment without its own [vars] has none.)
  const envs = ["", ...(redirected ? [] : Object.keys(rawConfig.env ?? {}))];
  for (const env of envs) {
    const config = unstable_readConfig(
      { config: configArg, env },
      { hideWarnings: true, useRedirectIfAvailable: true },
    );
    const where = `${rel(configPath)}${env ? ` [env.${env}]` : ""}`;
    checkVars(config.vars, where);
    // Spelled with escapes, the secret is only visible once parsed.
    if (!secretInFile && JSON.stringify(config).includes(DEV_SECRET_PREFIX)) {
      problems.push(`${where} contains the development secret`);
    }
  }
  const selected = envArg ?? process.env.CLOUDFLARE_ENV;
  if (selected && !envs.includes(selected)) {
    warnings.push(`environment "${selected}" is not defined in ${rel(configPath)}; wrangler deploys the top level's settings under it`);
  }
} catch (error) {
  const at = error?.location?.file ? ` (${rel(error.location.file)}:${error.location.line})` : "";
  problems.push(`cannot read the wrangler configuration${at}: ${error?.message ?? error}`);
}

if (process.env.JWT_SECRET?.startsWith(DEV_SECRET_PREFIX)) {
  problems.push("$JWT_SECRET holds the development secret");
}
for (const warning of warnings) console.error(`deploy check: WARNING: ${warning}`);
if (problems.length) {
  console.error(`deploy refused:\n- ${problems.join("\n- ")}`);
  process.exit(1);
}
console.error("deploy check: no development secret or development mode in the production config");
