import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Master-key rotations (src/keyring): one row per rotation, keyed by the new key's id. While it runs (`rotating`)
 * and after it finished (`done`) the row holds the new key sealed under the old one and the old key sealed under
 * the new one, so a server started with either key finds both; `--retire` clears them (`retired`). `unfinished` is 1
 * while the rotation runs and null after: its unique index lets only one rotation run at a time. `progress` is the
 * rotation's JSON cursor (pass, column, last key done), written with each batch so a killed rotation resumes there.
 */
export const m0012_keyring: Migration = tablesMigration({
  master_keys: {
    id: "text primary key",
    old_key_id: "text not null",
    new_sealed: "text",
    old_sealed: "text",
    state: "text not null",
    unfinished: "integer",
    progress: "text not null",
    resealed: "bigint not null default 0",
    started_at: "bigint not null",
    finished_at: "bigint",
    updated_at: "bigint not null",
    "unique index master_keys_unfinished": "(unfinished)",
  },
});
