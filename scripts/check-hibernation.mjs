#!/usr/bin/env node
// Proves that an idle room hibernates under real workerd (`wrangler dev`), and
// that pings answered by the auto-response do not wake it.
//
// It starts `wrangler dev` on a free loopback port with throwaway state, opens one
// socket, publishes, then only pings (every 4 s) for 25 s, then publishes again.
// The room logs `room.start` each time its constructor runs. Two starts for the
// room mean it was evicted from memory while idle and woken by the second publish;
// one start would mean the pings (or anything else) kept it awake.
//
//   npm run check:hibernation
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { freePort } from "./lib/ports.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const SECRET = "roomcast-dev-only-hibernation-check";
const IDLE_MS = 25_000;
const PING_MS = 4_000;
const DEADLINE_MS = 120_000;

const say = (msg) => console.error(`[hibernation] ${msg}`);
const port = await freePort();
const persist = mkdtempSync(join(tmpdir(), "roomcast-hib-"));
const room = `hib-${Date.now().toString(36)}`;
let output = "";
const dev = spawn(
  join(root, "node_modules/.bin/wrangler"),
  ["dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persist, "--var", `JWT_SECRET:${SECRET}`, "--var", "ENVIRONMENT:development", "--show-interactive-dev-session=false"],
  { cwd: root, env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" }, stdio: ["ignore", "pipe", "pipe"] },
);
dev.stdout.on("data", (d) => (output += d));
dev.stderr.on("data", (d) => (output += d));
// Only this one room exists in the throwaway state, so every start is its start.
const starts = () => output.split("\n").filter((l) => l.includes('"room.start"')).length;
const cleanup = (code) => {
  dev.kill("SIGTERM");
  rmSync(persist, { recursive: true, force: true });
  process.exit(code);
};
setTimeout(() => {
  say(`gave up after ${DEADLINE_MS / 1000} s`);
  cleanup(1);
}, DEADLINE_MS).unref();

say(`starting wrangler dev on 127.0.0.1:${port}`);
for (let i = 0; ; i++) {
  if (output.includes("Ready on")) break;
  if (i > 600 || dev.exitCode !== null) {
    say(`wrangler dev did not start:\n${output}`);
    cleanup(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

const token = await new SignJWT({ cap: { [room]: ["subscribe", "publish"] } })
  .setProtectedHeader({ alg: "HS256" })
  .setSubject("hibernation-check")
  .setExpirationTime("10m")
  .sign(new TextEncoder().encode(SECRET));
const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/rooms/${room}/ws`, {
  protocols: ["roomcast.v1"],
  headers: { Authorization: `Bearer ${token}` },
});
const acks = [];
let pongs = 0;
ws.onmessage = (e) => {
  const frame = JSON.parse(String(e.data));
  if (frame.type === "ack") acks.push(frame.seq);
  if (frame.type === "pong") pongs++;
};
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = () => reject(new Error("socket failed to open"));
});
ws.send(JSON.stringify({ type: "publish", id: "before-idle", data: 1 }));
say(`connected; idling for ${IDLE_MS / 1000} s with a ping every ${PING_MS / 1000} s`);
const pinger = setInterval(() => ws.send('{"type":"ping"}'), PING_MS);
await new Promise((r) => setTimeout(r, IDLE_MS));
clearInterval(pinger);
const startsWhileIdle = starts();
ws.send(JSON.stringify({ type: "publish", id: "after-idle", data: 2 }));
await new Promise((r) => setTimeout(r, 1_500));
ws.close();

const total = starts();
say(`room starts: ${startsWhileIdle} before the second publish, ${total} after; pongs: ${pongs}; acks: ${JSON.stringify(acks)}`);
const ok = startsWhileIdle === 1 && total === 2 && pongs >= Math.floor(IDLE_MS / PING_MS) - 1 && acks.join() === "1,2";
say(ok ? "PASS: the idle room hibernated; pings did not wake it; the log continued at seq 2" : "FAIL: see counts above");
cleanup(ok ? 0 : 1);
