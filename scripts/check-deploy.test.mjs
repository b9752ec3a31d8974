// Tests for scripts/check-deploy.mjs, the deploy guard. Each test writes a small project into a
// temp directory (its own wrangler config, a copy of the script, node_modules linked to the
// repo's) and runs the script there, as `predeploy` would. The repo's wrangler.toml is never
// touched. CHECK_DEPLOY_SCRIPT=/path/to/other.mjs runs the same tests against another version.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const SCRIPT = process.env.CHECK_DEPLOY_SCRIPT ?? fileURLToPath(new URL("./check-deploy.mjs", import.meta.url));
const NODE_MODULES = fileURLToPath(new URL("../node_modules", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "check-deploy-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const BASE_TOML = `name = "roomcast-test"
main = "src/index.ts"
compatibility_date = "2026-11-01"
send_metrics = false
`;
const PRODUCTION_TOML = `${BASE_TOML}
[vars]
ENVIRONMENT = "production"
ALLOWED_ORIGINS = ""
`;

let count = 0;
/** A project directory holding `files` (name → text) and a copy of the script under test. */
function project(files) {
  const dir = join(scratch, `p${++count}`);
  mkdirSync(join(dir, "scripts"), { recursive: true });
  copyFileSync(SCRIPT, join(dir, "scripts", "check-deploy.mjs"));
  symlinkSync(NODE_MODULES, join(dir, "node_modules"), "dir");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** This environment without what would change the outcome (npm's own variables included). */
function cleanEnv() {
  const env = { ...process.env, NODE_COMPILE_CACHE: join(scratch, "compile-cache") };
  for (const key of Object.keys(env)) {
    if (key.startsWith("npm_") || key === "CLOUDFLARE_ENV" || key === "JWT_SECRET") delete env[key];
  }
  return env;
}

function check(files, args = []) {
  const dir = project(files);
  return spawnSync(process.execPath, ["scripts/check-deploy.mjs", ...args], {
    cwd: dir,
    env: cleanEnv(),
    encoding: "utf8",
    timeout: 120_000,
  });
}

function assertRefused(result, reason) {
  assert.notEqual(result.status, 0, `expected a refusal, got status ${result.status}:\n${result.stderr}`);
  assert.match(result.stderr, /deploy refused/);
  assert.match(result.stderr, reason);
}

test("passes the production config", () => {
  const result = check({ "wrangler.toml": PRODUCTION_TOML });
  assert.equal(result.status, 0, result.stderr);
});

test('refuses ENVIRONMENT = "development", the development secret and $JWT_SECRET (as before)', () => {
  assertRefused(check({ "wrangler.toml": `${BASE_TOML}\n[vars]\nENVIRONMENT = "development"\n` }), /ENVIRONMENT/);
  assertRefused(
    check({ "wrangler.toml": `${PRODUCTION_TOML}SOMETHING = "roomcast-dev-only-secret"\n` }),
    /development secret/,
  );
  const dir = project({ "wrangler.toml": PRODUCTION_TOML });
  const result = spawnSync(process.execPath, ["scripts/check-deploy.mjs"], {
    cwd: dir,
    env: { ...cleanEnv(), JWT_SECRET: "roomcast-dev-only-secret" },
    encoding: "utf8",
    timeout: 120_000,
  });
  assertRefused(result, /\$JWT_SECRET/);
});

test("refuses ENVIRONMENT = 'development' (single-quoted TOML string)", () => {
  assertRefused(check({ "wrangler.toml": `${BASE_TOML}\n[vars]\nENVIRONMENT = 'development'\n` }), /ENVIRONMENT/);
});

test('refuses ENVIRONMENT = """development""" (multi-line TOML string)', () => {
  assertRefused(check({ "wrangler.toml": `${BASE_TOML}\n[vars]\nENVIRONMENT = """development"""\n` }), /ENVIRONMENT/);
});

test("refuses DEV_TOKEN_ENDPOINT = 'enabled'", () => {
  assertRefused(
    check({ "wrangler.toml": `${PRODUCTION_TOML}DEV_TOKEN_ENDPOINT = 'enabled'\n` }),
    /DEV_TOKEN_ENDPOINT/,
  );
});

test("refuses an inline vars = { ENVIRONMENT = \"development\" } table", () => {
  assertRefused(
    check({ "wrangler.toml": BASE_TOML.replace("send_metrics", 'vars = { ENVIRONMENT = "development" }\nsend_metrics') }),
    /ENVIRONMENT/,
  );
});

test('refuses a quoted "JWT_SECRET" key in [vars]', () => {
  assertRefused(check({ "wrangler.toml": `${PRODUCTION_TOML}"JWT_SECRET" = "not-the-dev-one"\n` }), /JWT_SECRET/);
});

test("checks wrangler.jsonc, which wrangler reads instead of wrangler.toml", () => {
  const jsonc = `{
  // wrangler prefers this file to wrangler.toml
  "name": "roomcast-test",
  "main": "src/index.ts",
  "compatibility_date": "2026-11-01",
  "vars": { "ENVIRONMENT": "development", },
}
`;
  assertRefused(check({ "wrangler.toml": PRODUCTION_TOML, "wrangler.jsonc": jsonc }), /wrangler\.jsonc.*ENVIRONMENT/);
});

test("checks every [env.*], whichever --env or CLOUDFLARE_ENV selects", () => {
  const toml = `${PRODUCTION_TOML}\n[env.staging]\nvars = { DEV_TOKEN_ENDPOINT = "enabled" }\n`;
  assertRefused(check({ "wrangler.toml": toml }), /env\.staging.*DEV_TOKEN_ENDPOINT/);
});

test("refuses `npm run deploy -- --var ENVIRONMENT:development`", () => {
  const dir = project({
    "wrangler.toml": PRODUCTION_TOML,
    "package.json": JSON.stringify({
      name: "roomcast-test",
      private: true,
      scripts: { predeploy: "node scripts/check-deploy.mjs", deploy: "echo DEPLOYED" },
    }),
  });
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const result = spawnSync(npm, ["run", "deploy", "--", "--var", "ENVIRONMENT:development"], {
    cwd: dir,
    env: { ...cleanEnv(), npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" },
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.doesNotMatch(result.stdout, /DEPLOYED/, "the deploy script ran");
  assertRefused(result, /--var.*ENVIRONMENT/);
});
