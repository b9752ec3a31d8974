/**
 * The Roomcast Worker: authenticates at the edge and routes each room to its
 * Durable Object. See docs/architecture.md for the request path.
 */
import { Hono } from "hono";
import { PROTOCOL_VERSION } from "@roomcast/protocol";
import type { AppEnv } from "./env.js";
import { notFound, onError } from "./http/errors.js";
import { rooms } from "./http/routes.js";
import { devToken } from "./http/dev-token.js";
import { admin } from "./http/admin.js";

export { Room } from "./room/room.js";
export { RoomsDirectory } from "./directory/directory.js";

export const app = new Hono<AppEnv>();

app.get("/healthz", (c) => c.json({ ok: true, protocol: PROTOCOL_VERSION }));
app.route("/v1/rooms", rooms);
app.route("/v1/admin", admin);
app.route("/dev", devToken);
app.notFound(notFound);
app.onError(onError);

export default app satisfies ExportedHandler<AppEnv["Bindings"]>;
