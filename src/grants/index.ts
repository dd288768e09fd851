import type { Domain } from "../domain.js";
import { grantRoutes, grantSchemas } from "./routes.js";

/** The grants area: room grants. */
export const grantsDomain: Domain = {
  name: "grants",
  routes: grantRoutes,
  schemas: grantSchemas,
  events: [
    { event: "grant.changed", description: "a room grant was created, changed or removed", data: { room_name: "string", user_id: "string", change: "\"created\" | \"updated\" | \"deleted\"" } },
  ],
};
