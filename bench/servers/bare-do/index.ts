// The platform's floor: a Durable Object per room that does nothing but accept
// hibernatable WebSockets and loop send() over all of them for every message it
// receives (the sender included, as partyserver's broadcast does). No framework,
// no storage, no validation: what any Durable Object fan-out costs on this workerd.
// Same URL shape as the partyserver peer (/parties/chat/<room>), so the bench
// drives both with one client.
import { DurableObject } from "cloudflare:workers";

interface Env {
  Chat: DurableObjectNamespace<Chat>;
}

export class Chat extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade") !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  webSocketMessage(_ws: WebSocket, message: string | ArrayBuffer): void {
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.send(message);
      } catch {
        // a socket closing under us: the floor does not care
      }
    }
  }

  webSocketClose(ws: WebSocket, code: number): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
    } catch {
      // already closed
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return new Response("ok");
    const match = /^\/parties\/chat\/([^/]+)$/.exec(pathname);
    if (!match) return new Response("Not Found", { status: 404 });
    return env.Chat.getByName(decodeURIComponent(match[1]!)).fetch(request);
  },
};
