#!/usr/bin/env node
// Mints a development token signed with JWT_SECRET from .dev.vars (or $JWT_SECRET).
//   npm run -s token -- --sub alice --room 'demo:*'
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { readDevVars } from "./dev-vars.mjs";

const PERMISSIONS = ["subscribe", "publish", "presence", "admin"];
const usage = `Usage: npm run -s token -- --sub USER [--room PATTERN]... [options]

Prints a signed JWT on stdout (nothing else), for local development and tests.

Options:
  --sub USER          user id (the token's "sub"); required
  --room PATTERN      room pattern the token grants, "*" wildcard allowed; repeatable
                      (default: "*", every room)
  --perm LIST         comma-separated permissions for those rooms
                      (default: subscribe,publish,presence; known: ${PERMISSIONS.join(", ")})
  --admin             also grant "admin" (server tokens for the admin API)
  --ttl SECONDS       lifetime (default: 3600)
  --aud AUDIENCE      "aud" claim (default: $JWT_AUDIENCE if set)
  --iss ISSUER        "iss" claim (default: $JWT_ISSUER if set)
  -h, --help          show this help

The secret comes from $JWT_SECRET, else from .dev.vars (created by npm run dev).`;

function fail(message) {
  console.error(`token: ${message}\n\n${usage}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      sub: { type: "string" },
      room: { type: "string", multiple: true },
      perm: { type: "string" },
      admin: { type: "boolean" },
      ttl: { type: "string" },
      aud: { type: "string" },
      iss: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
} catch (err) {
  fail(err.message);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}
if (!args.sub) fail("--sub is required");
if (args.sub.length > 200) fail("--sub must be at most 200 characters");
const perms = (args.perm ?? "subscribe,publish,presence").split(",").map((p) => p.trim()).filter(Boolean);
for (const p of perms) if (!PERMISSIONS.includes(p)) fail(`unknown permission "${p}"`);
if (args.admin && !perms.includes("admin")) perms.push("admin");
const ttl = Number(args.ttl ?? 3600);
if (!Number.isInteger(ttl) || ttl < 1) fail("--ttl must be a positive integer number of seconds");

const root = fileURLToPath(new URL("..", import.meta.url));
const devVars = readDevVars(`${root}.dev.vars`);
const secret = process.env.JWT_SECRET ?? devVars.JWT_SECRET;
if (!secret) fail("no JWT_SECRET: run `npm run dev` once (it creates .dev.vars) or set $JWT_SECRET");
const aud = args.aud ?? process.env.JWT_AUDIENCE ?? devVars.JWT_AUDIENCE;
const iss = args.iss ?? process.env.JWT_ISSUER ?? devVars.JWT_ISSUER;

const cap = Object.fromEntries((args.room ?? ["*"]).map((room) => [room, perms]));
const jwt = new SignJWT({ cap })
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(args.sub)
  .setIssuedAt()
  .setExpirationTime(Math.floor(Date.now() / 1000) + ttl);
if (aud) jwt.setAudience(aud);
if (iss) jwt.setIssuer(iss);
console.log(await jwt.sign(new TextEncoder().encode(secret)));
