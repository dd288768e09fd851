import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { oauthClientRoutes, oauthClientSchemas } from "./routes.js";
import { clientSecretAad } from "./service.js";

const events: EventSpec[] = [
  { event: "oauth_client.created", description: "an OAuth client was registered", data: { client_id: "string" } },
  { event: "oauth_client.deleted", description: "an OAuth client was deleted", data: { client_id: "string" } },
];

/** The OAuth area: the OAuth clients of projects. */
export const oauthDomain: Domain = {
  name: "oauth",
  routes: oauthClientRoutes,
  schemas: oauthClientSchemas,
  events,
  sealed: [{ table: "oauth_clients", key: "client_id", column: "secret_sealed", aad: (row) => clientSecretAad(String(row.client_id)) }],
};
