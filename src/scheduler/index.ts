import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { schedulerRoutes, schedulerSchemas } from "./routes.js";

const events: EventSpec[] = [
  {
    event: "scheduled_task.run.succeeded",
    description: "a scheduled task run delivered its message",
    data: { task_id: "string", run_id: "string", room_name: "string", queue: "string" },
  },
  {
    event: "scheduled_task.run.failed",
    description: "a scheduled task run failed",
    data: { task_id: "string", run_id: "string", room_name: "string", queue: "string", error: "string" },
  },
];

/** The scheduler area: scheduled tasks. */
export const schedulerDomain: Domain = { name: "scheduler", tag: "scheduled tasks", routes: schedulerRoutes, schemas: schedulerSchemas, events };
