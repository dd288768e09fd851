import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { roomRoutes, roomSchemas } from "./routes.js";

const events: EventSpec[] = [
  { event: "room.created", description: "a room was created", data: { id: "string", room_name: "string" } },
  { event: "room.updated", description: "a room's metadata or annotations changed", data: { id: "string", room_name: "string" } },
  { event: "room.deleted", description: "a room was deleted", data: { id: "string", room_name: "string" } },
];

/** The rooms area: rooms and connect_room. */
export const roomsDomain: Domain = { name: "rooms", routes: roomRoutes, schemas: roomSchemas, events };
