/**
 * The compat runner's own loopback server: the test page, the built client, valibot (the
 * client's one runtime dependency, mapped by the page's import map), the scenario, and one
 * control route, `POST /drain/<room>`, that drains a room on the Roomcast server with an admin
 * token held here, so no admin token ever reaches a page or a child process.
 * Serves a fixed list of files only; anything else is 404.
 */
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

const FILES = {
  "/": ["scripts/compat/page.html", "text/html; charset=utf-8"],
  "/scenario.mjs": ["scripts/compat/scenario.mjs", "text/javascript; charset=utf-8"],
  "/vendor/valibot.js": ["node_modules/valibot/dist/index.mjs", "text/javascript; charset=utf-8"],
};
const DIST = /^\/dist\/([A-Za-z0-9_.-]+\.js)$/;
const ROOM = /^\/drain\/([A-Za-z0-9][A-Za-z0-9_.:-]{0,127})$/;

/**
 * Started before the Roomcast server (whose ALLOWED_ORIGINS must name this server's origin);
 * `target()` tells it where to send drains once that server runs.
 * @returns {Promise<{ url: string, drains: number, target(serverUrl: string, adminToken: string): void, close(): Promise<void> }>}
 */
export async function startStaticServer() {
  const state = { drains: 0 };
  const o = { serverUrl: "", adminToken: "" };
  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      const drain = ROOM.exec(path);
      if (req.method === "POST" && drain) {
        if (!o.serverUrl) throw Object.assign(new Error("no target"), { code: "no target server yet" });
        const r = await fetch(`${o.serverUrl}/v1/rooms/${drain[1]}/drain`, {
          method: "POST",
          headers: { Authorization: `Bearer ${o.adminToken}`, "Content-Type": "application/json" },
          body: JSON.stringify({ windowSeconds: 0 }),
        });
        state.drains++;
        res.writeHead(r.status, { "Content-Type": "application/json" }).end(await r.text());
        return;
      }
      const dist = DIST.exec(path);
      const file = FILES[path] ?? (dist ? [`packages/client/dist/${dist[1]}`, "text/javascript; charset=utf-8"] : undefined);
      if (req.method !== "GET" || !file) {
        res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
        return;
      }
      const body = await readFile(root + file[0]);
      res.writeHead(200, { "Content-Type": file[1], "Cache-Control": "no-store" }).end(body);
    } catch (err) {
      res.writeHead(500, { "Content-Type": "text/plain" }).end(`compat static server: ${err && err.code ? err.code : "error"}`);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    target(serverUrl, adminToken) {
      o.serverUrl = serverUrl;
      o.adminToken = adminToken;
    },
    get drains() {
      return state.drains;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
