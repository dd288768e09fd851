import type { Kysely, Migration } from "kysely";

export const m0002_rooms: Migration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable("rooms")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("metadata", "text", (c) => c.notNull())
      .addColumn("annotations", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addUniqueConstraint("rooms_project_name", ["project_id", "name"])
      .execute();
    await db.schema.createIndex("rooms_project_created").on("rooms").columns(["project_id", "created_at", "id"]).execute();
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable("rooms").execute();
  },
};
