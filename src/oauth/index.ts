import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { oauthClientRoutes, oauthClientSchemas } from "./routes.js";
import { authorizationServerRoutes } from "./endpoints.js";
import { clientSecretAad } from "./service.js";

const events: EventSpec[] = [
  { event: "oauth_client.created", description: "an OAuth client was registered", data: { client_id: "string" } },
  { event: "oauth_client.deleted", description: "an OAuth client was deleted", data: { client_id: "string" } },
];

/** The OAuth area: the OAuth clients of projects, and the authorization server. */
export const oauthDomain: Domain = {
  name: "oauth",
  routes: async (app: AreaApp, ctx: AppContext) => {
    await oauthClientRoutes(app, ctx);
    await authorizationServerRoutes(app, ctx);
  },
  schemas: oauthClientSchemas,
  events,
  sealed: [
    { table: "oauth_clients", key: "client_id", column: "secret_sealed", aad: (row) => clientSecretAad(String(row.client_id)) },
    { table: "oauth_server_clients", key: "client_id", column: "secret_sealed", aad: (row) => clientSecretAad(String(row.client_id)) },
  ],
};
