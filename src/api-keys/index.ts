import type { Domain } from "../domain.js";
import { apiKeyRoutes } from "./routes.js";

/** The api-keys area: project API keys. */
export const apiKeysDomain: Domain = {
  name: "api-keys",
  routes: apiKeyRoutes,
  events: [
    { event: "api_key.created", description: "a project API key was created (never the key itself)", data: { id: "string", name: "string" } },
    { event: "api_key.deleted", description: "a project API key was revoked", data: { id: "string" } },
  ],
};
