import { SqliteAdapter, type Kysely, type Migration } from "kysely";

/**
 * Room server and sessions: the server processes (nodes) and their room leases, sessions with their participants,
 * events, spans and metrics. A session outlives its room (room_id becomes null when the room is deleted).
 */
export const m0008_sessions: Migration = {
  async up(db: Kysely<any>) {
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    const serial = (t: ReturnType<Kysely<any>["schema"]["createTable"]>) =>
      t.addColumn("seq", sqlite ? "integer" : "bigserial", (c) => (sqlite ? c.primaryKey().autoIncrement() : c.primaryKey()));

    await db.schema
      .createTable("room_server_nodes")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("url", "text", (c) => c.notNull())
      .addColumn("hostname", "text", (c) => c.notNull())
      .addColumn("pid", "integer", (c) => c.notNull())
      .addColumn("started_at", "bigint", (c) => c.notNull())
      .addColumn("heartbeat_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("room_leases")
      .addColumn("room_id", "text", (c) => c.primaryKey().references("rooms.id").onDelete("cascade"))
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("acquired_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("room_leases_node").on("room_leases").column("node_id").execute();

    await db.schema
      .createTable("room_sessions")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("room_id", "text", (c) => c.references("rooms.id").onDelete("set null"))
      .addColumn("room_name", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("ended_at", "bigint")
      .addColumn("is_active", "integer", (c) => c.notNull())
      .addColumn("node_id", "text", (c) => c.notNull())
      .addColumn("heartbeat_at", "bigint", (c) => c.notNull())
      .addColumn("end_reason", "text")
      .execute();
    await db.schema.createIndex("room_sessions_project_created").on("room_sessions").columns(["project_id", "created_at"]).execute();
    await db.schema.createIndex("room_sessions_active").on("room_sessions").columns(["is_active", "heartbeat_at"]).execute();
    await db.schema.createIndex("room_sessions_room").on("room_sessions").columns(["room_id", "created_at"]).execute();

    await db.schema
      .createTable("session_participants")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("session_id", "text", (c) => c.notNull().references("room_sessions.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("role", "text", (c) => c.notNull())
      .addColumn("joined_at", "bigint", (c) => c.notNull())
      .addColumn("left_at", "bigint")
      .execute();
    await db.schema.createIndex("session_participants_session").on("session_participants").columns(["session_id", "left_at"]).execute();

    await serial(db.schema.createTable("session_events"))
      .addColumn("session_id", "text", (c) => c.notNull().references("room_sessions.id").onDelete("cascade"))
      .addColumn("type", "text", (c) => c.notNull())
      .addColumn("data", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("session_events_session").on("session_events").columns(["session_id", "seq"]).execute();

    await serial(db.schema.createTable("session_spans"))
      .addColumn("session_id", "text", (c) => c.notNull().references("room_sessions.id").onDelete("cascade"))
      .addColumn("trace_id", "text", (c) => c.notNull())
      .addColumn("span_id", "text", (c) => c.notNull())
      .addColumn("parent_span_id", "text")
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("kind", "integer", (c) => c.notNull())
      .addColumn("start_ms", "bigint", (c) => c.notNull())
      .addColumn("duration_ns", "bigint", (c) => c.notNull())
      .addColumn("status_code", "integer", (c) => c.notNull())
      .addColumn("status_message", "text")
      .addColumn("attributes", "text", (c) => c.notNull())
      .addColumn("resource_attributes", "text", (c) => c.notNull())
      .addColumn("participant_name", "text")
      .execute();
    await db.schema.createIndex("session_spans_session").on("session_spans").columns(["session_id", "seq"]).execute();

    await serial(db.schema.createTable("session_metrics"))
      .addColumn("session_id", "text", (c) => c.notNull().references("room_sessions.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("unit", "text", (c) => c.notNull())
      .addColumn("value", "double precision", (c) => c.notNull())
      .addColumn("data", "text")
      .addColumn("attributes", "text", (c) => c.notNull())
      .addColumn("time", "bigint", (c) => c.notNull())
      .addColumn("source", "text", (c) => c.notNull())
      .addColumn("participant_name", "text")
      .execute();
    await db.schema.createIndex("session_metrics_session").on("session_metrics").columns(["session_id", "seq"]).execute();
  },
  async down(db: Kysely<any>) {
    for (const t of ["session_metrics", "session_spans", "session_events", "session_participants", "room_sessions", "room_leases", "room_server_nodes"])
      await db.schema.dropTable(t).execute();
  },
};
