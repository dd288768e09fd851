import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * The service runtime (src/hosting):
 *
 * - `service_runs`: the current state of each service in each room where it was started (one row per room and
 *   service, overwritten by the room's next session): what `services.list` and `GET …/services/{id}/status` answer
 *   from any process, and what a restarted server reconciles its containers against.
 * - `task_container_runs` (written by the scheduler engine): the container of a scheduled task's run with `container` target: its id, exit code and
 *   the tail of its output.
 */
export const m0014_hosting: Migration = tablesMigration({
  service_runs: {
    room_id: "text not null references rooms.id on delete cascade",
    service_id: "text not null references services.id on delete cascade",
    project_id: "text not null",
    session_id: "text not null",
    node_id: "text not null",
    // pending | pulling | starting | running | restarting | failed | stopped | no_runtime
    state: "text not null",
    revision: "integer not null",
    container_id: "text",
    restart_count: "integer not null default 0",
    last_error: "text",
    last_exit_code: "integer",
    last_exit_at: "bigint",
    started_at: "bigint",
    restart_scheduled_at: "bigint",
    updated_at: "bigint not null",
    "constraint service_runs_pk": "primary key (room_id, service_id)",
    "index service_runs_service": "(service_id)",
    "index service_runs_project": "(project_id)",
  },
  task_container_runs: {
    run_id: "bigint primary key references scheduled_task_runs.id on delete cascade",
    container_id: "text",
    exit_code: "integer",
    logs: "text",
    timeout_at: "bigint",
  },
});
