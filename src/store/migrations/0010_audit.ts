import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * The audit log: one row per mutating HTTP call (who, which project, which operation on what, the outcome). No
 * foreign keys: a row outlives the project, user, key or resource it names, and
 * the retention sweep (MESHAGENT_AUDIT_RETENTION_DAYS) is what removes rows.
 */
export const m0010_audit: Migration = tablesMigration({
  audit_log: {
    id: "bigserial primary key",
    project_id: "text",
    actor: "text",
    operation: "text not null",
    method: "text not null",
    route: "text not null",
    target_id: "text",
    request_id: "text not null",
    ip: "text",
    status: "integer not null",
    created_at: "bigint not null",
    "index audit_log_project_created": "(project_id, created_at)",
    "index audit_log_created": "(created_at)",
  },
});
