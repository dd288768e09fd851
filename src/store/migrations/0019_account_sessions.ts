import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Sign-in for people (src/accounts): browser sessions (a cookie holding a random token; only its hash is stored) and
 * the failed sign-in counters that slow guessing down, per account and per IP address, shared by every process.
 */
export const m0019_account_sessions: Migration = tablesMigration({
  account_sessions: {
    id: "text primary key",
    user_id: "text not null references users.id on delete cascade",
    token_hash: "text not null unique",
    created_at: "bigint not null",
    expires_at: "bigint not null",
    "index account_sessions_user": "(user_id)",
  },
  login_failures: {
    key: "text primary key",
    failures: "integer not null",
    window_start: "bigint not null",
    locked_until: "bigint",
  },
});
