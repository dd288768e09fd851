import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Scheduled tasks and their runs. Both go away with their room (ON DELETE CASCADE to rooms.id) and runs with their
 * task. `next_run_at` is what the engine scans (NULL when the task is inactive); (task_id, scheduled_time) is unique,
 * so one due time of a task can never produce two runs, whatever the engines do.
 */
export const m0007_scheduler: Migration = tablesMigration({
  scheduled_tasks: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    room_id: "text not null references rooms.id on delete cascade",
    name: "text",
    spec: "text not null",
    target: "text not null",
    queue_name: "text",
    schedule: "text not null",
    timezone: "text not null",
    once: "integer not null default 0",
    active: "integer not null default 1",
    misfire_policy: "text not null",
    catch_up_max: "integer not null",
    anchor_at: "bigint not null",
    next_run_at: "bigint",
    last_run_id: "bigint",
    last_start_time: "bigint",
    last_end_time: "bigint",
    last_status: "text",
    last_return_message: "text",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    // Unique names per room (NULLs, i.e. unnamed tasks, never collide on either dialect).
    "unique index scheduled_tasks_room_name": "(room_id, name)",
    "index scheduled_tasks_due": "(next_run_at)",
    "index scheduled_tasks_project": "(project_id, created_at, id)",
  },
  scheduled_task_runs: {
    id: "bigserial primary key",
    task_id: "text not null references scheduled_tasks.id on delete cascade",
    // (the project's runs go with its tasks: no second cascade path needed)
    project_id: "text not null",
    room_id: "text not null references rooms.id on delete cascade",
    target: "text not null",
    status: "text not null",
    attempt_count: "integer not null default 0",
    error: "text",
    queued_message_id: "text",
    scheduled_time: "bigint not null",
    started_at: "bigint",
    completed_at: "bigint",
    "constraint scheduled_task_runs_task_time": "unique (task_id, scheduled_time)",
    "index scheduled_task_runs_task": "(task_id, id)",
    "index scheduled_task_runs_time": "(scheduled_time)",
    "index scheduled_task_runs_room": "(room_id)",
  },
});
