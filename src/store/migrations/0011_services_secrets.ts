import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Services (ServiceSpec records, project-wide or in one room) and secrets (sealed values, project-wide or in one
 * room). `scope` is "" for the project and the room's id for a room, so one unique index covers both; `room_id`
 * (null for the project) cascades, so deleting a room removes its services and secrets in the same transaction.
 * `service_secret_refs` (owned by the secrets area) lists the secrets each service names (container.secrets, pull_secret, environment[].secret),
 * so deleting a secret in use can be refused with one indexed lookup.
 */
export const m0011_services_secrets: Migration = tablesMigration({
  services: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    room_id: "text references rooms.id on delete cascade",
    scope: "text not null",
    name: "text not null",
    // The ServiceSpec JSON as sent (nulls dropped) with its id: what get_service answers, as it is.
    spec: "text not null",
    // Bumped on every change: the runtime compares it with what it runs.
    revision: "integer not null default 1",
    // The runtime's view of the service (JSON: state, container, last error), written by the runtime; null until then.
    runtime: "text",
    created_by: "text",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "unique index services_scope_name": "(project_id, scope, name)",
    "index services_room": "(room_id)",
  },
  secrets: {
    // The row's own id (the AAD of its sealed value); `secret_id` is the id clients see.
    id: "text primary key",
    secret_id: "text not null",
    project_id: "text not null references projects.id on delete cascade",
    room_id: "text references rooms.id on delete cascade",
    scope: "text not null",
    // Room secrets: the participant identity the secret belongs to, and the identity it was delegated to ("" = none).
    for_identity: "text not null",
    delegated_to: "text not null",
    name: "text not null",
    type: "text not null",
    value_sealed: "text not null",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "unique index secrets_key": "(project_id, scope, secret_id, for_identity, delegated_to)",
    "index secrets_room": "(room_id)",
  },
  service_secret_refs: {
    service_id: "text not null references services.id on delete cascade",
    // Copied from the service (rewritten with its refs on every change), so a refused delete can name it.
    service_name: "text not null",
    project_id: "text not null",
    // The service's scope ("" or its room id): which secrets can satisfy the reference.
    scope: "text not null",
    secret_id: "text not null",
    "constraint service_secret_refs_pk": "primary key (service_id, secret_id)",
    "index service_secret_refs_secret": "(project_id, secret_id)",
  },
});
