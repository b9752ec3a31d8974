/**
 * Shared by the examples' Vite configs: the page talks to its own origin, and Vite
 * forwards the API (`/v1`, WebSocket upgrades included, and the dev-only
 * `/dev/token`) to `npm run dev`. The proxy presents the Worker's own origin, which
 * `wrangler dev` allows in development (protocol.md §5), so no ALLOWED_ORIGINS edit is
 * needed. Never put a proxy like this in front of a production Worker.
 */
import type { ProxyOptions } from "vite";

/** Where `npm run dev` listens; `ROOMCAST_URL=http://localhost:8788 npx vite …` if it moved. */
export const target = process.env.ROOMCAST_URL ?? "http://localhost:8787";

const forward: ProxyOptions = {
  target,
  changeOrigin: true,
  ws: true,
  configure: (proxy) => {
    const origin = new URL(target).origin;
    proxy.on("proxyReq", (req) => req.setHeader("origin", origin));
    proxy.on("proxyReqWs", (req) => req.setHeader("origin", origin));
  },
};

export const proxy: Record<string, ProxyOptions> = { "/v1": forward, "/dev": forward };

/** Resolve the client from this repository's sources, like the demo: no client build needed. */
export function sources(): { find: string | RegExp; replacement: string }[] {
  const src = (path: string) => new URL(`../packages/${path}`, import.meta.url).pathname;
  return [
    { find: "@roomcast/client/vue", replacement: src("client/src/vue.ts") },
    { find: "@roomcast/client/angular", replacement: src("client/src/angular.ts") },
    { find: /^@roomcast\/client$/, replacement: src("client/src/index.ts") },
    { find: "@roomcast/protocol", replacement: src("protocol/src/index.ts") },
  ];
}
