import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

export const m0004_storage: Migration = tablesMigration({
  // One row per stored file: the metering index (what a file weighed when it was last counted). The blob store
  // holds the content and is the truth for what exists; rows are reconciled from it under the usage row's lock.
  // path_hash (sha256 of the path) is the key because paths may be 4 KiB, more than a PostgreSQL index entry holds.
  storage_files: {
    scope: "text not null",
    path_hash: "text not null",
    path: "text not null",
    project_id: "text not null references projects.id on delete cascade",
    size: "bigint not null",
    etag: "text not null",
    updated_at: "bigint not null",
    "constraint storage_files_pk": "primary key (scope, path_hash)",
    "index storage_files_project": "(project_id)",
  },
  // Stored bytes per project (project storage plus its rooms' storage), for metering and quotas.
  storage_usage: {
    project_id: "text primary key references projects.id on delete cascade",
    bytes: "bigint not null",
    files: "bigint not null",
    updated_at: "bigint not null",
  },
  // A write in flight (upload or delete), recorded before it touches the blob store. If the process dies between
  // the blob write and the database commit, the row outlives its lease and recovery reconciles the path.
  storage_pending: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    scope: "text not null",
    path: "text not null",
    op: "text not null",
    participant_id: "text not null",
    started_at: "bigint not null",
    lease_until: "bigint not null",
    "index storage_pending_lease": "(lease_until)",
  },
});
