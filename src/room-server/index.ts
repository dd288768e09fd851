import type { Domain } from "../domain.js";
import { roomServerRoutes } from "./routes.js";

/** The room-server area: the room server's HTTP side (signed room-storage downloads). */
export const roomServerDomain: Domain = { name: "room-server", tag: "rooms", routes: roomServerRoutes };
