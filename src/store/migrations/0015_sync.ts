import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Sync documents (src/sync): a document is a room file (its Yjs state, written by compaction); `sync_documents` keeps
 * its MeshSchema and how far the file is up to date, `sync_updates` the journal of acknowledged updates since (the
 * base64 text the client sent), so an update is durable before it is acknowledged and a restart replays the rest.
 */
export const m0015_sync: Migration = tablesMigration({
  sync_documents: {
    room_id: "text not null references rooms.id on delete cascade",
    path: "text not null",
    schema: "text not null",
    compacted_seq: "bigint not null default 0",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "constraint sync_documents_pk": "primary key (room_id, path)",
  },
  sync_updates: {
    room_id: "text not null references rooms.id on delete cascade",
    path: "text not null",
    seq: "bigint not null",
    data: "text not null",
    "constraint sync_updates_pk": "primary key (room_id, path, seq)",
  },
});
