import { SqliteAdapter, type Kysely, type Migration } from "kysely";

/**
 * Scheduled tasks and their runs. Both go away with their room (ON DELETE CASCADE to rooms.id) and runs with their
 * task. `next_run_at` is what the engine scans (NULL when the task is inactive); (task_id, scheduled_time) is unique,
 * so one due time of a task can never produce two runs, whatever the engines do.
 */
export const m0007_scheduler: Migration = {
  async up(db: Kysely<any>) {
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
    await db.schema
      .createTable("scheduled_tasks")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
      .addColumn("room_id", "text", (c) => c.notNull().references("rooms.id").onDelete("cascade"))
      .addColumn("name", "text")
      .addColumn("spec", "text", (c) => c.notNull())
      .addColumn("target", "text", (c) => c.notNull())
      .addColumn("queue_name", "text")
      .addColumn("schedule", "text", (c) => c.notNull())
      .addColumn("timezone", "text", (c) => c.notNull())
      .addColumn("once", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("active", "integer", (c) => c.notNull().defaultTo(1))
      .addColumn("misfire_policy", "text", (c) => c.notNull())
      .addColumn("catch_up_max", "integer", (c) => c.notNull())
      .addColumn("anchor_at", "bigint", (c) => c.notNull())
      .addColumn("next_run_at", "bigint")
      .addColumn("last_run_id", "bigint")
      .addColumn("last_start_time", "bigint")
      .addColumn("last_end_time", "bigint")
      .addColumn("last_status", "text")
      .addColumn("last_return_message", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
    // Unique names per room (NULLs, i.e. unnamed tasks, never collide on either dialect).
    await db.schema.createIndex("scheduled_tasks_room_name").unique().on("scheduled_tasks").columns(["room_id", "name"]).execute();
    await db.schema.createIndex("scheduled_tasks_due").on("scheduled_tasks").column("next_run_at").execute();
    await db.schema.createIndex("scheduled_tasks_project").on("scheduled_tasks").columns(["project_id", "created_at", "id"]).execute();

    await db.schema
      .createTable("scheduled_task_runs")
      .addColumn("id", sqlite ? "integer" : "bigserial", (c) => (sqlite ? c.primaryKey().autoIncrement() : c.primaryKey()))
      .addColumn("task_id", "text", (c) => c.notNull().references("scheduled_tasks.id").onDelete("cascade"))
      // (the project's runs go with its tasks: no second cascade path needed)
      .addColumn("project_id", "text", (c) => c.notNull())
      .addColumn("room_id", "text", (c) => c.notNull().references("rooms.id").onDelete("cascade"))
      .addColumn("target", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("attempt_count", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("error", "text")
      .addColumn("queued_message_id", "text")
      .addColumn("scheduled_time", "bigint", (c) => c.notNull())
      .addColumn("started_at", "bigint")
      .addColumn("completed_at", "bigint")
      .addUniqueConstraint("scheduled_task_runs_task_time", ["task_id", "scheduled_time"])
      .execute();
    await db.schema.createIndex("scheduled_task_runs_task").on("scheduled_task_runs").columns(["task_id", "id"]).execute();
    await db.schema.createIndex("scheduled_task_runs_time").on("scheduled_task_runs").column("scheduled_time").execute();
    await db.schema.createIndex("scheduled_task_runs_room").on("scheduled_task_runs").column("room_id").execute();
  },
  async down(db: Kysely<any>) {
    for (const t of ["scheduled_task_runs", "scheduled_tasks"]) await db.schema.dropTable(t).execute();
  },
};
