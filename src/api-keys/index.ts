import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { apiKeyRoutes } from "./routes.js";

const events: EventSpec[] = [
  { event: "api_key.created", description: "a project API key was created (never the key itself)", data: { id: "string", name: "string" } },
  { event: "api_key.deleted", description: "a project API key was revoked", data: { id: "string" } },
];

/** The api-keys area: project API keys. */
export const apiKeysDomain: Domain = {
  name: "api-keys",
  routes: apiKeyRoutes,
  events,
  sealed: [{ table: "api_keys", key: "id", column: "secret_sealed" }],
};
