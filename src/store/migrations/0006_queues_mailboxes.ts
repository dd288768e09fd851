import { SqliteAdapter, type Kysely, type Migration } from "kysely";

/**
 * Durable room queues (shared by mailboxes, scheduled tasks and the room server) and mailboxes.
 * Everything that belongs to a room goes away with it (ON DELETE CASCADE to rooms.id).
 */
export const m0006_queues_mailboxes: Migration = {
  async up(db: Kysely<any>) {
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    await db.schema
      .createTable("room_queues")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("room_id", "text", (c) => c.notNull().references("rooms.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addUniqueConstraint("room_queues_room_name", ["room_id", "name"])
      .execute();
    // `seq` gives FIFO order across processes (a database sequence), `id` is the stable public id of a message.
    // Receivers take the first row of (queue_id, visible_at <= now) ordered by (visible_at, seq): see queues/repo.ts.
    await db.schema
      .createTable("queue_messages")
      .addColumn("seq", sqlite ? "integer" : "bigserial", (c) => (sqlite ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn("id", "text", (c) => c.notNull().unique())
      .addColumn("queue_id", "text", (c) => c.notNull().references("room_queues.id").onDelete("cascade"))
      .addColumn("body", "text", (c) => c.notNull())
      .addColumn("enqueued_at", "bigint", (c) => c.notNull())
      .addColumn("visible_at", "bigint", (c) => c.notNull())
      .addColumn("claim_token", "text")
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex("queue_messages_ready").on("queue_messages").columns(["queue_id", "visible_at", "seq"]).execute();

    await db.schema
      .createTable("mailboxes")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("address", "text", (c) => c.notNull())
      .addColumn("address_lower", "text", (c) => c.notNull().unique())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("room_id", "text", (c) => c.notNull().references("rooms.id").onDelete("cascade"))
      .addColumn("queue", "text", (c) => c.notNull())
      .addColumn("public", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("annotations", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("mailboxes_project_address").on("mailboxes").columns(["project_id", "address_lower"]).execute();
    await db.schema.createIndex("mailboxes_room").on("mailboxes").columns(["room_id", "address_lower"]).execute();
  },
  async down(db: Kysely<any>) {
    for (const t of ["mailboxes", "queue_messages", "room_queues"]) await db.schema.dropTable(t).execute();
  },
};
