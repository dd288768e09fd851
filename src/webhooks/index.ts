import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { webhookRoutes, webhookSchemas } from "./routes.js";

const events: EventSpec[] = [
  {
    event: "room.call",
    description: 'a call handoff to the receiver (webhooks with action "call")',
    data: { room_name: "string", room_url: "string", token: "string (participant JWT)", arguments: "object | null" },
  },
];

/** The webhooks area: webhooks and their deliveries. */
export const webhooksDomain: Domain = {
  name: "webhooks",
  routes: webhookRoutes,
  schemas: webhookSchemas,
  events,
  sealed: [{ table: "webhooks", key: "id", column: "secret_sealed" }],
};
