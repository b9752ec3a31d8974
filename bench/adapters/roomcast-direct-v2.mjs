// roomcast-direct with clients that offer only roomcast.v2, where the echo is the ack: a
// publisher gets no `ack` frame for a new message, its own `message` frame settles it
// (docs/protocol.md, "Versions"). Against roomcast-direct (v1 clients) it measures what
// one frame fewer per publish saves, e.g. `node bench/ab-interleaved.mjs --a roomcast-direct --b roomcast-direct-v2`.
import { connectRoomcast } from "../lib/roomcast-client.mjs";
import { directAdapter } from "./roomcast-direct.mjs";

export default directAdapter({
  name: "roomcast-direct-v2",
  description: "as roomcast-direct, the clients offering only roomcast.v2 (no ack frame: the echo is the ack)",
  connect: (o) => connectRoomcast({ ...o, protocols: ["roomcast.v2"] }),
});
