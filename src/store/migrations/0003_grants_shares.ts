import { PostgresAdapter, sql, type Kysely, type Migration } from "kysely";

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

    await db.schema
      .createTable("room_grants")
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("room_id", "text", (c) => c.notNull().references("rooms.id").onDelete("cascade"))
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      .addColumn("permissions", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("room_grants_pk", ["room_id", "user_id"])
      .execute();
    await db.schema.createIndex("room_grants_project_user").on("room_grants").columns(["project_id", "user_id", "room_id"]).execute();
    await db.schema.createIndex("room_grants_user").on("room_grants").columns(["user_id"]).execute();

    await db.schema
      .createTable("shares")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("room_id", "text", (c) => c.references("rooms.id").onDelete("cascade"))
      .addColumn("settings", "text", (c) => c.notNull())
      .addColumn("max_uses", "bigint")
      .addColumn("uses", "bigint", (c) => c.notNull().defaultTo(0))
      .addColumn("expires_at", "bigint")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("shares_project").on("shares").columns(["project_id", "created_at", "id"]).execute();
    await db.schema.createIndex("shares_room").on("shares").columns(["room_id"]).execute();

    await db.schema
      .createTable("project_signing_keys")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project_id", "text", (c) => c.notNull().unique().references("projects.id").onDelete("cascade"))
      .addColumn("secret_sealed", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("room_counts")
      .addColumn("project_id", "text", (c) => c.primaryKey().references("projects.id").onDelete("cascade"))
      .addColumn("count", "bigint", (c) => c.notNull())
      .execute();
    await sql`INSERT INTO room_counts (project_id, count) SELECT project_id, count(*) FROM rooms GROUP BY project_id`.execute(db);
  },
  async down(db: Kysely<any>) {
    for (const t of ["room_counts", "project_signing_keys", "shares", "room_grants"]) await db.schema.dropTable(t).execute();
    await db.schema.dropIndex("rooms_project_name_id").execute();
  },
};
