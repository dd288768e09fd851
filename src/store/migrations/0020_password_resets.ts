import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/** Password resets (src/accounts): a single-use link mailed to the account's address, valid one hour; its hash only. */
export const m0020_password_resets: Migration = tablesMigration({
  password_resets: {
    id: "text primary key",
    user_id: "text not null references users.id on delete cascade",
    token_hash: "text not null unique",
    created_at: "bigint not null",
    expires_at: "bigint not null",
    used_at: "bigint",
    "index password_resets_user": "(user_id, created_at)",
  },
});
