import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * The per-project secret that signs room.call handoffs which are not a webhook's (src/calls): generated on first use,
 * sealed with the master key (AAD `call-secret:<project id>`), replaced by `POST …/calls/secret`.
 */
export const m0013_calls: Migration = tablesMigration({
  call_secrets: {
    project_id: "text primary key references projects.id on delete cascade",
    secret_sealed: "text not null",
    created_at: "bigint not null",
    updated_at: "bigint not null",
  },
});
