import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { AnyObject, errors, Nullable, OrNull, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { MAX_PREVIEW, type FlatBody, type SpecBody } from "./service.js";
import { MAX_CATCH_UP } from "./spec.js";

const Annotations = Type.Record(Type.String(), Type.String());
const Loose = { additionalProperties: true };

const SpecSchema = Type.Object(
  {
    version: Type.Literal("v1"),
    kind: Type.Literal("ScheduledTask"),
    metadata: Type.Object({ name: Type.Optional(Type.String()), annotations: Annotations }, Loose),
    schedule: Type.String({ description: 'a 5-field cron expression ("0 * * * *") or an interval ("30 minutes")' }),
    active: Type.Boolean(),
    once: Type.Boolean(),
    queue: Type.Optional(Type.Object({ name: Type.String(), payload: AnyObject, storage_write_path: Type.Optional(Type.String()) }, Loose)),
    container: Type.Optional(Type.Object({ image: Type.String() }, { ...Loose, description: "ContainerSpec (wire-contract §7.4)" })),
  },
  {
    $id: "ScheduledTaskSpec",
    additionalProperties: true,
    description:
      "Exactly one of queue or container. Our settings live in metadata.annotations: meshagent.schedule.timezone (IANA, default UTC), " +
      "meshagent.schedule.misfire-policy (skip | run_once | catch_up, default run_once), meshagent.schedule.catch-up-max (1–1000, default 10).",
  },
);

const Task = Type.Object(
  {
    id: Type.String(),
    project_id: Type.String(),
    room_id: Type.String(),
    room_name: Type.String(),
    spec: Type.Ref("ScheduledTaskSpec"),
    queue_name: OrNull(Type.String()),
    payload: AnyObject,
    container: OrNull(Type.Object({}, Loose)),
    schedule: Type.String(),
    active: Type.Boolean(),
    once: Type.Boolean(),
    annotations: Annotations,
    storage_write_path: OrNull(Type.String()),
    last_run_id: OrNull(Type.Integer()),
    last_start_time: OrNull(Type.String({ format: "date-time" })),
    last_end_time: OrNull(Type.String({ format: "date-time" })),
    last_status: OrNull(Type.String()),
    last_return_message: OrNull(Type.String()),
    timezone: Type.String({ description: "extension: IANA time zone the cron expression is evaluated in" }),
    misfire_policy: Type.String({ description: "extension: skip | run_once | catch_up" }),
    catch_up_max: Type.Integer({ description: "extension: most missed due times catch_up fires" }),
    next_run_at: OrNull(Type.String({ format: "date-time", description: "extension: when it fires next; null when inactive" })),
    created_at: Type.String({ format: "date-time" }),
    updated_at: Type.String({ format: "date-time" }),
  },
  { $id: "ScheduledTask", description: "The spec and its flat mirror fields (wire-contract §7.5)" },
);

const Run = Type.Object(
  {
    id: Type.String({ description: "the run number, as a string" }),
    task_id: Type.String(),
    project_id: Type.String(),
    room_id: Type.String(),
    room_name: Type.String(),
    queued_message_id: OrNull(Type.String()),
    target: Type.String({ description: "queue | container" }),
    status: Type.String({ description: "submitted (delivered) or failed" }),
    attempt_count: Type.Integer(),
    error: OrNull(Type.String()),
    container_id: OrNull(Type.String()),
    scheduled_time: Type.String({ format: "date-time" }),
    timeout_at: OrNull(Type.String()),
    started_at: OrNull(Type.String({ format: "date-time" })),
    lease_expires_at: OrNull(Type.String()),
    completed_at: OrNull(Type.String({ format: "date-time" })),
    exit_code: OrNull(Type.Integer({ description: "container runs: the container's exit code (null for queue runs, while it runs, or when it never ran)" })),
    logs: OrNull(Type.String({ description: "container runs: the last 64 KiB of the container's output (secret values redacted)" })),
  },
  { $id: "ScheduledTaskRun" },
);

const Settings = {
  timezone: Nullable(Type.String({ description: "extension: IANA time zone (written into spec.metadata.annotations)" })),
  misfire_policy: Nullable(Type.String({ description: "extension: skip | run_once | catch_up" })),
  catch_up_max: Nullable(Type.Integer({ minimum: 1, maximum: MAX_CATCH_UP, description: "extension: most missed due times catch_up fires" })),
};
const SpecField = Type.Any({ description: "a ScheduledTaskSpec (see the ScheduledTask schema); validated strictly: unknown keys are refused" });
const Flat = {
  room_name: Nullable(Type.String()),
  queue_name: Nullable(Type.String()),
  payload: Nullable(AnyObject),
  schedule: Nullable(Type.String()),
  active: Nullable(Type.Boolean()),
  once: Nullable(Type.Boolean()),
  annotations: Nullable(Annotations),
  storage_write_path: Nullable(Type.String({ description: 'PUT: "" clears it' })),
};

const TaskParams = Type.Object({ project_id: Uuid, task_id: Type.String({ minLength: 1, maxLength: 128 }) });
const Created = Type.Object({ task_id: Type.String(), task: Type.Ref("ScheduledTask") });

/** Wire-contract §6.7 (0.39.9 spec form and the legacy flat form). Every call needs the developer role. */
export async function schedulerRoutes(app: AreaApp, ctx: AppContext) {
  const { scheduler } = ctx;
  const P = "/accounts/projects/:project_id";

  app.post(
    `${P}/rooms/:room_name/scheduled-tasks`,
    {
      config: { access: "developer" },
      schema: {
        summary: "create_scheduled_task (0.39.9)",
        description:
          "Body `{spec, timezone?, misfire_policy?, catch_up_max?}`. 404 when the room does not exist; 409 when the room has a task with the same metadata.name.",
        params: Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }) }),
        body: Type.Object({ spec: SpecField, ...Settings }),
        response: { 201: Created, ...errors(400, 409) },
      },
    },
    async (req, reply) => {
      const task = await scheduler.createInRoom(req.params.project_id, req.params.room_name, req.body as SpecBody);
      reply.code(201);
      return { task_id: task.id, task };
    },
  );

  app.post(
    `${P}/scheduled-tasks`,
    {
      config: { access: "developer" },
      schema: {
        summary: "create_scheduled_task (legacy flat form, ≤ 0.39.3)",
        description: "`room_name`, `queue_name` and `schedule` are required; `id` picks the task id (409 when taken). `{room_name, spec}` works too.",
        params: ProjectParams,
        body: Type.Object({ id: Nullable(Type.String()), spec: Type.Optional(SpecField), ...Flat, ...Settings }),
        response: { 201: Created, ...errors(400, 409) },
      },
    },
    async (req, reply) => {
      const task = await scheduler.createFlat(req.params.project_id, req.body as FlatBody);
      reply.code(201);
      return { task_id: task.id, task };
    },
  );

  app.put(
    `${P}/scheduled-tasks/:task_id`,
    {
      config: { access: "developer" },
      schema: {
        summary: "update_scheduled_task",
        description:
          "With `spec`: a full replace (0.39.9). Without: the legacy patch (only the fields sent change). `room_name` moves the task. " +
          "Pause and resume with `active` (resuming starts the schedule from now).",
        params: TaskParams,
        body: Type.Object({ spec: Type.Optional(SpecField), ...Flat, ...Settings }),
        response: { 200: Type.Ref("ScheduledTask"), ...errors(400, 409) },
      },
    },
    async (req) => scheduler.update(req.params.project_id, req.params.task_id, req.body as FlatBody),
  );

  app.get(
    `${P}/scheduled-tasks/:task_id`,
    { config: { access: "developer" }, schema: { summary: "get a scheduled task", params: TaskParams, response: { 200: Type.Ref("ScheduledTask") } } },
    async (req) => scheduler.get(req.params.project_id, req.params.task_id),
  );

  app.delete(
    `${P}/scheduled-tasks/:task_id`,
    {
      config: { access: "developer" },
      schema: {
        summary: "delete_scheduled_task",
        description: "204; its runs go with it.",
        params: TaskParams,
        response: { 204: Type.Null({ description: "no body" }) },
      },
    },
    async (req, reply) => {
      await scheduler.delete(req.params.project_id, req.params.task_id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    `${P}/scheduled-tasks`,
    {
      config: { access: "developer" },
      schema: {
        summary: "list_scheduled_tasks",
        description:
          "Ordered by creation. Filters: room_id (0.39.9), room_name (legacy), task_id, active, filter (case-insensitive substring of the id, name, queue, schedule or room name). `limit` defaults to 100, at most 1000.",
        params: ProjectParams,
        querystring: Type.Object({
          limit: QueryInt(),
          offset: QueryInt(),
          room_id: Type.Optional(Type.String()),
          room_name: Type.Optional(Type.String()),
          task_id: Type.Optional(Type.String()),
          active: Type.Optional(Type.Boolean()),
          filter: Type.Optional(Type.String()),
        }),
        response: { 200: Type.Object({ tasks: Type.Array(Type.Ref("ScheduledTask")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => scheduler.list(req.params.project_id, req.query),
  );

  app.get(
    `${P}/scheduled-tasks/:task_id/runs`,
    {
      config: { access: "developer" },
      schema: {
        summary: "list_scheduled_task_runs",
        description: "Newest first. `limit` defaults to 100, at most 1000.",
        params: TaskParams,
        querystring: Type.Object({ limit: QueryInt(), offset: QueryInt() }),
        response: { 200: Type.Object({ runs: Type.Array(Type.Ref("ScheduledTaskRun")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => scheduler.runs(req.params.project_id, req.params.task_id, req.query),
  );

  app.get(
    `${P}/scheduled-tasks/:task_id/preview`,
    {
      config: { access: "developer" },
      schema: {
        summary: "preview the next runs of a scheduled task (extension)",
        description: `The next n (default 5, at most ${MAX_PREVIEW}) due times in UTC. A paused task shows when it would fire if resumed now.`,
        params: TaskParams,
        querystring: Type.Object({ n: QueryInt({ minimum: 1, maximum: MAX_PREVIEW }) }),
        response: {
          200: Type.Object({
            task_id: Type.String(),
            schedule: Type.String(),
            timezone: Type.String(),
            active: Type.Boolean(),
            once: Type.Boolean(),
            next_runs: Type.Array(Type.String({ format: "date-time" })),
          }),
          ...errors(400),
        },
      },
    },
    async (req) => scheduler.preview(req.params.project_id, req.params.task_id, req.query.n ?? 5),
  );
}

export const schedulerSchemas = [SpecSchema, Task, Run];
