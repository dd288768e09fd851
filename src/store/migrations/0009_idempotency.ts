import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Idempotency keys (`Idempotency-Key` on POST): one row per (scope, key). The primary key decides which request runs
 * when several arrive at once, in one process or many. `status` is null while the first request runs (its `owner`
 * renews `heartbeat_at`); then the stored response: status, Content-Type and the body, sealed with the master key.
 */
export const m0009_idempotency: Migration = tablesMigration({
  idempotency_keys: {
    scope: "text not null",
    key_hash: "text not null",
    fingerprint: "text not null",
    owner: "text not null",
    status: "integer",
    content_type: "text",
    body: "text",
    created_at: "bigint not null",
    heartbeat_at: "bigint not null",
    "constraint idempotency_keys_pk": "primary key (scope, key_hash)",
    "index idempotency_keys_created": "(created_at)",
  },
});
