import { PostgresAdapter, sql, type Kysely, type Migration } from "kysely";
import { createTables, dropTables, type Tables } from "./ddl.js";

const tables: Tables = {
  room_grants: {
    project_id: "text not null references projects.id on delete cascade",
    room_id: "text not null references rooms.id on delete cascade",
    user_id: "text not null references users.id on delete cascade",
    permissions: "text not null",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "constraint room_grants_pk": "primary key (room_id, user_id)",
    "index room_grants_project_user": "(project_id, user_id, room_id)",
    "index room_grants_user": "(user_id)",
  },
  shares: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    room_id: "text references rooms.id on delete cascade",
    settings: "text not null",
    max_uses: "bigint",
    uses: "bigint not null default 0",
    expires_at: "bigint",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "index shares_project": "(project_id, created_at, id)",
    "index shares_room": "(room_id)",
  },
  project_signing_keys: {
    id: "text primary key",
    project_id: "text not null unique references projects.id on delete cascade",
    secret_sealed: "text not null",
    created_at: "bigint not null",
  },
  room_counts: {
    project_id: "text primary key references projects.id on delete cascade",
    count: "bigint not null",
  },
};

/**
 * Rooms area, part 2: room grants, shares, per-project signing keys for server-minted participant tokens, and a
 * per-project room counter (so list_rooms' `total` never needs count(*) over a million rows).
 */
export const m0003_grants_shares: Migration = {
  async up(db: Kysely<any>) {
    // Byte-order names on PostgreSQL whatever the database's locale, so list_rooms orders exactly as on SQLite
    // and (project_id, name) stays the index that serves `order_by=room_name`.
    if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`ALTER TABLE rooms ALTER COLUMN name TYPE text COLLATE "C"`.execute(db);

    // Covering index for list_rooms by name: a deep offset walks index entries only (see roomsRepo.page).
    await db.schema.createIndex("rooms_project_name_id").on("rooms").columns(["project_id", "name", "id"]).execute();

    await createTables(db, tables);
    await sql`INSERT INTO room_counts (project_id, count) SELECT project_id, count(*) FROM rooms GROUP BY project_id`.execute(db);
  },
  async down(db: Kysely<any>) {
    await dropTables(db, tables);
    await db.schema.dropIndex("rooms_project_name_id").execute();
  },
};
