import { sql } from "kysely";
import type { Dialect, Queryable } from "../store/db.js";
import type { ScheduledTaskRunsTable, ScheduledTasksTable } from "../store/schema.js";
import { likePattern } from "../core/paging.js";

export type TaskRow = ScheduledTasksTable;
export type TaskWithRoom = TaskRow & { room_name: string };
export type RunRow = Omit<ScheduledTaskRunsTable, "id"> & { id: number };
export type RunWithRoom = RunRow & {
  room_name: string;
  /** A container run's container (task_container_runs), null for queue runs. */
  container_id?: string | null;
  exit_code?: number | null;
  logs?: string | null;
  timeout_at?: number | null;
};
export type NewRun = Omit<ScheduledTaskRunsTable, "id">;

/** What the engine writes back to a task after firing it. */
export interface TaskAdvance {
  id: string;
  next_run_at: number | null;
  active: number;
  last_run_id: number | null;
  last_start_time: number | null;
  last_end_time: number | null;
  last_status: string | null;
  last_return_message: string | null;
}

const withRoom = (q: Queryable) =>
  q.selectFrom("scheduled_tasks").innerJoin("rooms", "rooms.id", "scheduled_tasks.room_id").selectAll("scheduled_tasks").select("rooms.name as room_name");

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** Counters and epoch times can come back as strings from some drivers: make them numbers. */
export function normalizeTask<T extends TaskRow>(r: T): T {
  return {
    ...r,
    once: Number(r.once),
    active: Number(r.active),
    catch_up_max: Number(r.catch_up_max),
    anchor_at: Number(r.anchor_at),
    next_run_at: num(r.next_run_at),
    last_run_id: num(r.last_run_id),
    last_start_time: num(r.last_start_time),
    last_end_time: num(r.last_end_time),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
  };
}

/** Scheduled-task SQL. Other areas reach scheduled tasks through SchedulerService. */
export const schedulerRepo = {
  insert: (q: Queryable, row: TaskRow) => q.insertInto("scheduled_tasks").values(row).execute(),

  get: async (q: Queryable, projectId: string, id: string) => {
    const r = await withRoom(q).where("scheduled_tasks.project_id", "=", projectId).where("scheduled_tasks.id", "=", id).executeTakeFirst();
    return r ? normalizeTask(r as TaskWithRoom) : undefined;
  },

  /** The task row locked for an update (PostgreSQL: FOR UPDATE, so the engine and a writer never interleave). */
  getForUpdate: async (q: Queryable, dialect: Dialect, projectId: string, id: string) => {
    let s = q.selectFrom("scheduled_tasks").selectAll().where("project_id", "=", projectId).where("id", "=", id);
    if (dialect === "postgres") s = s.forUpdate();
    const r = await s.executeTakeFirst();
    return r ? normalizeTask(r) : undefined;
  },

  exists: async (q: Queryable, id: string) => !!(await q.selectFrom("scheduled_tasks").select("id").where("id", "=", id).executeTakeFirst()),

  update: (q: Queryable, id: string, patch: Partial<TaskRow>) => q.updateTable("scheduled_tasks").set(patch).where("id", "=", id).execute(),

  delete: async (q: Queryable, projectId: string, id: string) => {
    const r = await q.deleteFrom("scheduled_tasks").where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  page: async (
    q: Queryable,
    projectId: string,
    opts: { roomId?: string; roomName?: string; taskId?: string; active?: boolean; filter?: string; limit: number; offset: number },
  ) => {
    let base = q.selectFrom("scheduled_tasks").innerJoin("rooms", "rooms.id", "scheduled_tasks.room_id").where("scheduled_tasks.project_id", "=", projectId);
    if (opts.roomId !== undefined) base = base.where("scheduled_tasks.room_id", "=", opts.roomId);
    if (opts.roomName !== undefined) base = base.where("rooms.name", "=", opts.roomName);
    if (opts.taskId !== undefined) base = base.where("scheduled_tasks.id", "=", opts.taskId);
    if (opts.active !== undefined) base = base.where("scheduled_tasks.active", "=", opts.active ? 1 : 0);
    if (opts.filter) {
      const pat = sql<string>`${likePattern(opts.filter)} ESCAPE '\\'`;
      base = base.where((eb) =>
        eb.or([
          eb(sql`lower(scheduled_tasks.id)`, "like", pat),
          eb(sql`lower(scheduled_tasks.name)`, "like", pat),
          eb(sql`lower(scheduled_tasks.queue_name)`, "like", pat),
          eb(sql`lower(scheduled_tasks.schedule)`, "like", pat),
          eb(sql`lower(rooms.name)`, "like", pat),
        ]),
      );
    }
    const total = await base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    const rows = await base
      .selectAll("scheduled_tasks")
      .select("rooms.name as room_name")
      .orderBy("scheduled_tasks.created_at")
      .orderBy("scheduled_tasks.id")
      .limit(opts.limit)
      .offset(opts.offset)
      .execute();
    return { rows: rows.map((r) => normalizeTask(r as TaskWithRoom)), total: Number(total?.n ?? 0) };
  },

  runs: async (q: Queryable, taskId: string, limit: number, offset: number) => {
    const total = await q
      .selectFrom("scheduled_task_runs")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("task_id", "=", taskId)
      .executeTakeFirst();
    const rows = await q
      .selectFrom("scheduled_task_runs")
      .innerJoin("rooms", "rooms.id", "scheduled_task_runs.room_id")
      .leftJoin("task_container_runs", "task_container_runs.run_id", "scheduled_task_runs.id")
      .selectAll("scheduled_task_runs")
      .select([
        "rooms.name as room_name",
        "task_container_runs.container_id",
        "task_container_runs.exit_code",
        "task_container_runs.logs",
        "task_container_runs.timeout_at",
      ])
      .where("scheduled_task_runs.task_id", "=", taskId)
      .orderBy("scheduled_task_runs.id", "desc")
      .limit(limit)
      .offset(offset)
      .execute();
    return { rows: rows as RunWithRoom[], total: Number(total?.n ?? 0) };
  },

  // --- engine -----------------------------------------------------------------------------------------------

  /**
   * Claim up to `limit` due tasks, earliest first. On PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED until the
   * transaction ends: engines in other processes skip them instead of waiting or firing them too.
   */
  claimDue: async (q: Queryable, dialect: Dialect, now: number, limit: number, onlyId?: string) => {
    let s = q
      .selectFrom("scheduled_tasks")
      .innerJoin("rooms", "rooms.id", "scheduled_tasks.room_id")
      .selectAll("scheduled_tasks")
      .select("rooms.name as room_name")
      .where("scheduled_tasks.next_run_at", "<=", now)
      .where("scheduled_tasks.active", "=", 1);
    if (onlyId !== undefined) s = s.where("scheduled_tasks.id", "=", onlyId);
    s = s.orderBy("scheduled_tasks.next_run_at").limit(limit);
    if (dialect === "postgres") s = s.forUpdate("scheduled_tasks").skipLocked();
    const rows = await s.execute();
    return rows.map((r) => normalizeTask(r as TaskWithRoom));
  },

  /** The earliest next_run_at of any task (the engine sleeps until then). */
  nextDue: async (q: Queryable) => {
    const r = await q
      .selectFrom("scheduled_tasks")
      .select((eb) => eb.fn.min<number>("next_run_at").as("t"))
      .executeTakeFirst();
    return r?.t == null ? null : Number(r.t);
  },

  /** Insert runs; returns (id, task_id, scheduled_time) of each, in no particular order. */
  insertRuns: async (q: Queryable, runs: NewRun[]) => {
    const out: { id: number; task_id: string; scheduled_time: number }[] = [];
    // Chunks keep every statement under SQLite's bound-parameter limit.
    for (let i = 0; i < runs.length; i += 1000) {
      const rows = await q
        .insertInto("scheduled_task_runs")
        .values(runs.slice(i, i + 1000))
        .returning(["id", "task_id", "scheduled_time"])
        .execute();
      for (const r of rows) out.push({ id: Number(r.id), task_id: r.task_id, scheduled_time: Number(r.scheduled_time) });
    }
    return out;
  },

  runExists: async (q: Queryable, taskId: string, scheduledTime: number) =>
    !!(await q.selectFrom("scheduled_task_runs").select("id").where("task_id", "=", taskId).where("scheduled_time", "=", scheduledTime).executeTakeFirst()),

  /** Write the engine's results back: one statement on PostgreSQL (a JSON recordset), one per task on SQLite. */
  /** Write the engine's results back, one statement per call (a JSON recordset joined into an UPDATE … FROM). */
  advance: async (q: Queryable, dialect: Dialect, rows: TaskAdvance[]) => {
    if (rows.length === 0) return;
    const json = JSON.stringify(rows);
    const source =
      dialect === "postgres"
        ? sql`jsonb_to_recordset(${json}::jsonb) AS v(id text, next_run_at bigint, active integer, last_run_id bigint,
            last_start_time bigint, last_end_time bigint, last_status text, last_return_message text)`
        : sql`(SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.next_run_at') AS next_run_at,
            json_extract(value, '$.active') AS active, json_extract(value, '$.last_run_id') AS last_run_id,
            json_extract(value, '$.last_start_time') AS last_start_time, json_extract(value, '$.last_end_time') AS last_end_time,
            json_extract(value, '$.last_status') AS last_status, json_extract(value, '$.last_return_message') AS last_return_message
            FROM json_each(${json})) AS v`;
    await sql`
      UPDATE scheduled_tasks SET
        next_run_at = v.next_run_at, active = v.active,
        last_run_id = COALESCE(v.last_run_id, scheduled_tasks.last_run_id),
        last_start_time = COALESCE(v.last_start_time, scheduled_tasks.last_start_time),
        last_end_time = COALESCE(v.last_end_time, scheduled_tasks.last_end_time),
        last_status = COALESCE(v.last_status, scheduled_tasks.last_status),
        last_return_message = COALESCE(v.last_return_message, scheduled_tasks.last_return_message)
      FROM ${source}
      WHERE scheduled_tasks.id = v.id`.execute(q);
  },

  /** A container run's container, as it starts and once it ended. */
  putContainerRun: (
    q: Queryable,
    row: { run_id: number; container_id: string | null; exit_code: number | null; logs: string | null; timeout_at: number | null },
  ) =>
    q
      .insertInto("task_container_runs")
      .values(row)
      .onConflict((oc) =>
        oc.column("run_id").doUpdateSet({ container_id: row.container_id, exit_code: row.exit_code, logs: row.logs, timeout_at: row.timeout_at }),
      )
      .execute(),

  /** The end of a container run: its status and error, and the task's last_* when this run is still its latest. */
  finishRun: async (q: Queryable, runId: number, taskId: string, status: string, error: string | null, message: string, at: number) => {
    await q.updateTable("scheduled_task_runs").set({ status, error, completed_at: at }).where("id", "=", runId).execute();
    await q
      .updateTable("scheduled_tasks")
      .set({ last_status: status, last_end_time: at, last_return_message: message })
      .where("id", "=", taskId)
      .where("last_run_id", "=", runId)
      .execute();
  },

  /** Container runs still `submitting` (a server that died while they ran leaves them so). */
  openContainerRuns: (q: Queryable) =>
    q
      .selectFrom("scheduled_task_runs")
      .innerJoin("rooms", "rooms.id", "scheduled_task_runs.room_id")
      .select([
        "scheduled_task_runs.id",
        "scheduled_task_runs.task_id",
        "scheduled_task_runs.project_id",
        "scheduled_task_runs.room_id",
        "scheduled_task_runs.started_at",
        "rooms.name as room_name",
      ])
      .where("scheduled_task_runs.target", "=", "container")
      .where("scheduled_task_runs.status", "=", "submitting")
      .execute(),

  pruneRuns: async (q: Queryable, before: number) => {
    const r = await q.deleteFrom("scheduled_task_runs").where("scheduled_time", "<", before).executeTakeFirst();
    return Number(r.numDeletedRows);
  },
};
