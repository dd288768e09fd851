import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

export const m0002_rooms: Migration = tablesMigration({
  rooms: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    name: "text not null",
    metadata: "text not null",
    annotations: "text not null",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "constraint rooms_project_name": "unique (project_id, name)",
    "index rooms_project_created": "(project_id, created_at, id)",
  },
});
