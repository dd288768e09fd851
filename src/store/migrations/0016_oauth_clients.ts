import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * OAuth clients of projects (src/oauth): the applications that may ask the server's authorization server for tokens.
 * The client secret is sealed with the master key (and its SHA-256 kept for the token endpoint's check); the lists are
 * JSON text.
 */
export const m0016_oauth_clients: Migration = tablesMigration({
  oauth_clients: {
    client_id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    secret_sealed: "text not null",
    secret_hash: "text not null",
    grant_types: "text not null",
    response_types: "text not null",
    redirect_uris: "text not null",
    scope: "text not null",
    metadata: "text not null",
    official: "integer not null default 0",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "index oauth_clients_project": "(project_id, created_at)",
  },
});
