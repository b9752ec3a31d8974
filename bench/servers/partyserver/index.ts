// partyserver peer: a hibernating Durable Object per room that broadcasts every
// message it receives to every connection of the room, the sender included.
// WebSocket URL: /parties/chat/<room> (routePartykitRequest kebab-cases the
// binding name "Chat"). GET /healthz answers from the Worker itself, so the
// adapter can tell the Worker is loaded and not just wrangler's proxy.
import { routePartykitRequest, Server, type Connection, type WSMessage } from "partyserver";

export class Chat extends Server {
  static options = { hibernate: true };

  onMessage(_connection: Connection, message: WSMessage): void {
    this.broadcast(message);
  }
}

export default {
  async fetch(request: Request, env: Cloudflare.Env): Promise<Response> {
    if (new URL(request.url).pathname === "/healthz") return new Response("ok");
    return (await routePartykitRequest(request, env)) ?? new Response("Not Found", { status: 404 });
  },
};
