import type { Kysely, Migration } from "kysely";
import { createTables, dropTables } from "./ddl.js";

const tables = {
  // What the authorization server keeps (src/oauth, oidc-provider's models): codes, tokens, grants, sessions,
  // interactions, device codes. `id_hash` is the SHA-256 of the artifact's id (a token's value is its id: never stored).
  oauth_artifacts: {
    model: "text not null",
    id_hash: "text not null",
    payload: "text not null",
    grant_id: "text",
    user_code: "text",
    uid: "text",
    account_id: "text",
    client_id: "text",
    expires_at: "bigint",
    consumed_at: "bigint",
    created_at: "bigint not null",
    "constraint oauth_artifacts_pk": "primary key (model, id_hash)",
    "index oauth_artifacts_grant": "(grant_id)",
    "index oauth_artifacts_account": "(model, account_id)",
    "index oauth_artifacts_client": "(client_id)",
    "index oauth_artifacts_uid": "(uid)",
    "index oauth_artifacts_user_code": "(user_code)",
    "index oauth_artifacts_expiry": "(expires_at)",
  },
  // Instance-wide OAuth clients (not a project's): the official CLI's, registered at first start, and those a server
  // administrator adds. `secret_sealed` is null for public clients (PKCE, no secret).
  oauth_server_clients: {
    client_id: "text primary key",
    secret_sealed: "text",
    grant_types: "text not null",
    redirect_uris: "text not null",
    scope: "text not null",
    metadata: "text not null",
    official: "integer not null default 0",
    created_at: "bigint not null",
  },
};

/** The OAuth 2.0 authorization server (src/oauth); users get an optional TOTP second factor (src/accounts). */
export const m0021_oauth_server: Migration = {
  async up(db: Kysely<any>) {
    await createTables(db, tables);
    await db.schema.alterTable("users").addColumn("totp_sealed", "text").execute();
    await db.schema.alterTable("users").addColumn("totp_last_step", "bigint").execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.alterTable("users").dropColumn("totp_last_step").execute();
    await db.schema.alterTable("users").dropColumn("totp_sealed").execute();
    await dropTables(db, tables);
  },
};
