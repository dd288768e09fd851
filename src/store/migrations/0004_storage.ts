import type { Kysely, Migration } from "kysely";

export const m0004_storage: Migration = {
  async up(db: Kysely<any>) {
    // One row per stored file: the metering index (what a file weighed when it was last counted). The blob store
    // holds the content and is the truth for what exists; rows are reconciled from it under the usage row's lock.
    // path_hash (sha256 of the path) is the key because paths may be 4 KiB, more than a PostgreSQL index entry holds.
    await db.schema
      .createTable("storage_files")
      .addColumn("scope", "text", (c) => c.notNull())
      .addColumn("path_hash", "text", (c) => c.notNull())
      .addColumn("path", "text", (c) => c.notNull())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("size", "bigint", (c) => c.notNull())
      .addColumn("etag", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("storage_files_pk", ["scope", "path_hash"])
      .execute();
    await db.schema.createIndex("storage_files_project").on("storage_files").columns(["project_id"]).execute();
    // Stored bytes per project (project storage plus its rooms' storage), for metering and quotas.
    await db.schema
      .createTable("storage_usage")
      .addColumn("project_id", "text", (c) => c.primaryKey().references("projects.id").onDelete("cascade"))
      .addColumn("bytes", "bigint", (c) => c.notNull())
      .addColumn("files", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    // A write in flight (upload or delete), recorded before it touches the blob store. If the process dies between
    // the blob write and the database commit, the row outlives its lease and recovery reconciles the path.
    await db.schema
      .createTable("storage_pending")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("scope", "text", (c) => c.notNull())
      .addColumn("path", "text", (c) => c.notNull())
      .addColumn("op", "text", (c) => c.notNull())
      .addColumn("participant_id", "text", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("lease_until", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("storage_pending_lease").on("storage_pending").columns(["lease_until"]).execute();
  },
  async down(db: Kysely<any>) {
    for (const t of ["storage_pending", "storage_usage", "storage_files"]) await db.schema.dropTable(t).execute();
  },
};
