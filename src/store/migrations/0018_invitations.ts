import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Invitations (src/accounts): a person invited by email (a room grant or add_user_to_project for an unknown address)
 * gets a mail with a single-use link. The row is written in the transaction that invited them; its token is kept
 * sealed until the mail left (an outbox: a crash or a relay failure is retried), then only its hash remains.
 */
export const m0018_invitations: Migration = tablesMigration({
  invitations: {
    id: "text primary key",
    user_id: "text not null references users.id on delete cascade",
    project_id: "text references projects.id on delete cascade",
    token_hash: "text not null unique",
    token_sealed: "text",
    created_at: "bigint not null",
    expires_at: "bigint not null",
    sent_at: "bigint",
    attempts: "integer not null default 0",
    next_attempt_at: "bigint",
    last_error: "text",
    used_at: "bigint",
    "index invitations_outbox": "(next_attempt_at)",
    "index invitations_user": "(user_id)",
  },
});
