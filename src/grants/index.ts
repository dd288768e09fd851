import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { grantRoutes, grantSchemas } from "./routes.js";

const events: EventSpec[] = [
  {
    event: "grant.changed",
    description: "a room grant was created, changed or removed",
    data: { room_name: "string", user_id: "string", change: '"created" | "updated" | "deleted"' },
  },
];

/** The grants area: room grants. */
export const grantsDomain: Domain = { name: "grants", tag: "room-grants", routes: grantRoutes, schemas: grantSchemas, events };
