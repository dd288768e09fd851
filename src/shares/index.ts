import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { shareRoutes, shareSchemas } from "./routes.js";

const events: EventSpec[] = [
  { event: "share.created", description: "a share link was created", data: { id: "string", room_name: "string" } },
  { event: "share.deleted", description: "a share link was deleted", data: { id: "string" } },
];

/** The shares area: share links and connect_share. */
export const sharesDomain: Domain = { name: "shares", routes: shareRoutes, schemas: shareSchemas, events };
