import type { Clock } from "../core/clock.js";
import { iso, isoOrNull } from "../core/clock.js";
import { ApiError, badRequest, conflict, notFound, quote } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { Invalidator } from "../core/invalidation.js";
import { pageOffset, pageSize } from "../core/paging.js";
import type { SchedulerConfig } from "../config.js";
import type { RoomRow, RoomsService } from "../rooms/service.js";
import { inTx, type Store } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import { schedulerRepo, type RunWithRoom, type TaskRow, type TaskWithRoom } from "./repo.js";
import { parseSchedule, ScheduleError, type Schedule } from "./schedule.js";
import { flatLabel, parseSpec, resolveSettings, SETTINGS_ANNOTATIONS, type ScheduledTaskSpec, type SettingsInput } from "./spec.js";

/** The ScheduledTask of wire-contract §7.5: the spec AND the flat mirror fields, plus our extensions at the top level. */
export function taskJson(r: TaskWithRoom) {
  const spec = JSON.parse(r.spec) as ScheduledTaskSpec;
  spec.active = !!r.active;
  return {
    id: r.id,
    project_id: r.project_id,
    room_id: r.room_id,
    room_name: r.room_name,
    spec,
    queue_name: spec.queue?.name ?? null,
    payload: spec.queue?.payload ?? {},
    container: spec.container ?? null,
    schedule: spec.schedule,
    active: !!r.active,
    once: !!r.once,
    annotations: spec.metadata.annotations,
    storage_write_path: spec.queue?.storage_write_path ?? null,
    last_run_id: r.last_run_id,
    last_start_time: isoOrNull(r.last_start_time),
    last_end_time: isoOrNull(r.last_end_time),
    last_status: r.last_status,
    last_return_message: r.last_return_message,
    // extensions (ScheduledTask ignores unknown keys)
    timezone: r.timezone,
    misfire_policy: r.misfire_policy,
    catch_up_max: r.catch_up_max,
    next_run_at: isoOrNull(r.next_run_at),
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}
export type TaskJson = ReturnType<typeof taskJson>;

/** ScheduledTaskRun of wire-contract §7.5. `id` is the run's number as a string (it also parses as an int). */
export function runJson(r: RunWithRoom) {
  const t = (v: number | null) => (v === null || v === undefined ? null : iso(Number(v)));
  return {
    id: String(r.id),
    task_id: r.task_id,
    project_id: r.project_id,
    room_id: r.room_id,
    room_name: r.room_name,
    queued_message_id: r.queued_message_id,
    target: r.target,
    status: r.status,
    attempt_count: Number(r.attempt_count),
    error: r.error,
    container_id: r.container_id ?? null,
    scheduled_time: iso(Number(r.scheduled_time)),
    timeout_at: t(r.timeout_at ?? null),
    started_at: t(r.started_at),
    lease_expires_at: null,
    completed_at: t(r.completed_at),
    // Container runs: the container's exit code and the tail of its output (null for queue runs and while it runs).
    exit_code: r.exit_code ?? null,
    logs: r.logs ?? null,
  };
}

/** The spec form's request body (create under a room, or PUT as a full replace). */
export interface SpecBody extends SettingsInput {
  spec: unknown;
  room_name?: string | null;
}

/** The legacy flat form (≤ 0.39.3): create needs room_name, queue_name and schedule; PUT is a patch. */
export interface FlatBody extends SettingsInput {
  id?: string | null;
  spec?: unknown;
  room_name?: string | null;
  queue_name?: string | null;
  payload?: Record<string, unknown> | null;
  schedule?: string | null;
  active?: boolean | null;
  once?: boolean | null;
  annotations?: Record<string, string> | null;
  storage_write_path?: string | null;
}

const FLAT_FIELDS = ["queue_name", "payload", "schedule", "active", "once", "annotations", "storage_write_path"] as const;
const TASK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_PREVIEW = 100;

const TOPIC = "scheduler";

/**
 * Scheduled tasks: a spec (schedule + queue or container target) attached to a room. Writes tell the engine of every
 * process (through the invalidator) so a task due sooner than anything else is picked up at once.
 */
/** The task columns that follow from its spec and settings: one mapping for create and for update. */
function specColumns(spec: ScheduledTaskSpec, settings: ReturnType<typeof resolveSettings>, anchor: number, next: number | null) {
  return {
    name: spec.metadata.name ?? null,
    spec: JSON.stringify(spec),
    target: spec.queue ? "queue" : "container",
    queue_name: spec.queue?.name ?? null,
    schedule: spec.schedule,
    timezone: settings.timezone,
    once: spec.once ? 1 : 0,
    active: spec.active ? 1 : 0,
    misfire_policy: settings.misfirePolicy,
    catch_up_max: settings.catchUpMax,
    anchor_at: anchor,
    next_run_at: next,
  } satisfies Partial<TaskRow>;
}

export class SchedulerService {
  private listeners: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly rooms: RoomsService,
    readonly config: SchedulerConfig,
    private readonly invalidator: Invalidator,
  ) {
    invalidator.subscribe(TOPIC, () => {
      for (const l of this.listeners) l();
    });
  }

  private get db() {
    return this.store.db;
  }

  /** Called (in every process) when tasks were created or changed: the engine re-plans its sleep. */
  onChange(fn: () => void) {
    this.listeners.push(fn);
  }

  private publishing = false;
  private pending = false;

  /** Tell every engine (here and in other processes); a burst of writes coalesces into a few notifications. */
  private changed() {
    this.pending = true;
    if (this.publishing) return;
    this.publishing = true;
    void (async () => {
      try {
        while (this.pending) {
          this.pending = false;
          await this.invalidator.publish(TOPIC, "changed").catch(() => {
            // the other processes' engines re-check on their own within a few seconds
          });
        }
      } finally {
        this.publishing = false;
      }
    })();
  }

  /** Parse a schedule and enforce the minimum spacing; errors name `field`. */
  schedule(expr: string, timezone: string, anchor: number, field: string): Schedule {
    let s: Schedule;
    try {
      s = parseSchedule(expr, { timezone, anchor });
    } catch (err) {
      if (err instanceof ScheduleError) throw badRequest(`${field}: ${err.message}`, err.code);
      throw err;
    }
    const spacing = s.minSpacingSeconds();
    if (spacing < this.config.minIntervalSeconds)
      throw badRequest(
        `${field}: "${expr}" runs every ${spacing} seconds; scheduled tasks may run at most every ${this.config.minIntervalSeconds} seconds`,
        "schedule_too_frequent",
      );
    return s;
  }

  private async roomFromBody(projectId: string, name: unknown): Promise<RoomRow> {
    if (typeof name !== "string" || !name) throw badRequest("room_name must be a non-empty room name");
    try {
      return await this.rooms.byName(projectId, name);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) throw badRequest(`room_name: room ${quote(name)} does not exist in this project`, "room_not_found");
      throw err;
    }
  }

  /** create_scheduled_task (0.39.9): `POST P/rooms/{room_name}/scheduled-tasks` with `{"spec": …}`. */
  async createInRoom(projectId: string, roomName: string, body: SpecBody): Promise<TaskJson> {
    const room = await this.rooms.byName(projectId, roomName);
    return this.insert(projectId, room, parseSpec(body.spec), body, (p) => p);
  }

  /** Legacy create (`POST P/scheduled-tasks` with the flat fields); a `spec` with `room_name` is accepted too. */
  async createFlat(projectId: string, body: FlatBody): Promise<TaskJson> {
    if (body.spec !== undefined && body.spec !== null) {
      const stray = FLAT_FIELDS.filter((f) => body[f] !== undefined && body[f] !== null);
      if (stray.length) throw badRequest(`send either spec or the flat fields, not both (${stray.join(", ")})`);
      const room = await this.roomFromBody(projectId, body.room_name);
      return this.insert(projectId, room, parseSpec(body.spec), body, (p) => p, body.id);
    }
    for (const f of ["room_name", "queue_name", "schedule"] as const) if (body[f] === undefined || body[f] === null) throw badRequest(`${f} is required`);
    const raw = {
      schedule: body.schedule,
      active: body.active ?? true,
      once: body.once ?? false,
      metadata: { annotations: body.annotations ?? {} },
      queue: {
        name: body.queue_name,
        payload: body.payload ?? {},
        ...(body.storage_write_path ? { storage_write_path: body.storage_write_path } : {}),
      },
    };
    const spec = parseSpec(raw, flatLabel);
    const room = await this.roomFromBody(projectId, body.room_name);
    return this.insert(projectId, room, spec, body, flatLabel, body.id);
  }

  private async insert(
    projectId: string,
    room: RoomRow,
    spec: ScheduledTaskSpec,
    input: SettingsInput,
    label: (p: string) => string,
    id?: string | null,
  ): Promise<TaskJson> {
    if (id !== undefined && id !== null && !TASK_ID_RE.test(id))
      throw badRequest("id must be 1–128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit");
    const settings = resolveSettings(spec, input, label);
    const now = this.clock.now();
    const anchor = Math.floor(now / 1000) * 1000;
    const schedule = this.schedule(spec.schedule, settings.timezone, anchor, label("spec.schedule"));
    const next = spec.active ? schedule.nextAfter(now) : null;
    if (spec.active && next === null) throw badRequest(`${label("spec.schedule")}: ${quote(spec.schedule)} never fires again`, "invalid_schedule");
    const row: TaskRow = {
      id: id ?? newId(),
      project_id: projectId,
      room_id: room.id,
      ...specColumns(spec, settings, anchor, next),
      last_run_id: null,
      last_start_time: null,
      last_end_time: null,
      last_status: null,
      last_return_message: null,
      created_at: now,
      updated_at: now,
    };
    if (id && (await schedulerRepo.exists(this.db, id))) throw conflict(`a scheduled task with id ${quote(id)} already exists`);
    try {
      await schedulerRepo.insert(this.db, row);
    } catch (err) {
      if (isUniqueViolation(err))
        throw conflict(
          row.name !== null
            ? `a scheduled task named "${row.name}" already exists in room "${room.name}"`
            : `a scheduled task with id "${row.id}" already exists`,
        );
      throw err;
    }
    this.changed();
    return taskJson({ ...row, room_name: room.name });
  }

  /**
   * update_scheduled_task: with `spec` a full replace (0.39.9); otherwise the legacy patch. The schedule restarts
   * from now when the schedule, time zone or `once` change or the task is resumed; otherwise next_run_at is kept.
   */
  async update(projectId: string, taskId: string, body: FlatBody): Promise<TaskJson> {
    const now = this.clock.now();
    const room = body.room_name !== undefined && body.room_name !== null ? await this.roomFromBody(projectId, body.room_name) : undefined;
    let result: TaskWithRoom;
    try {
      result = await inTx(this.db, async (tx) => {
        const cur = await schedulerRepo.getForUpdate(tx, this.store.dialect, projectId, taskId);
        if (!cur) throw notFound("scheduled task");
        let spec: ScheduledTaskSpec;
        let label: (p: string) => string;
        if (body.spec !== undefined && body.spec !== null) {
          const stray = FLAT_FIELDS.filter((f) => body[f] !== undefined && body[f] !== null);
          if (stray.length) throw badRequest(`send either spec or the flat fields, not both (${stray.join(", ")})`);
          spec = parseSpec(body.spec);
          label = (p) => p;
        } else {
          spec = this.patched(cur, body);
          label = flatLabel;
        }
        const settings = resolveSettings(spec, body, label);
        const scheduleChanged = spec.schedule !== cur.schedule || settings.timezone !== cur.timezone || spec.once !== !!cur.once;
        const resumed = spec.active && !cur.active;
        const anchor = scheduleChanged || resumed ? Math.floor(now / 1000) * 1000 : cur.anchor_at;
        const schedule = this.schedule(spec.schedule, settings.timezone, anchor, label("spec.schedule"));
        let next = cur.next_run_at;
        if (!spec.active) next = null;
        else if (scheduleChanged || resumed || next === null) {
          next = schedule.nextAfter(now);
          if (next === null) throw badRequest(`${label("spec.schedule")}: ${quote(spec.schedule)} never fires again`, "invalid_schedule");
        }
        const patch: Partial<TaskRow> = {
          room_id: room?.id ?? cur.room_id,
          ...specColumns(spec, settings, anchor, next),
          updated_at: now,
        };
        await schedulerRepo.update(tx, cur.id, patch);
        return (await schedulerRepo.get(tx, projectId, taskId))!;
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`a scheduled task with that name already exists in the room`);
      throw err;
    }
    this.changed();
    return taskJson(result);
  }

  /** The legacy patch applied to the current spec: only the fields sent change; `storage_write_path: ""` clears it. */
  private patched(cur: TaskRow, body: FlatBody): ScheduledTaskSpec {
    const spec = JSON.parse(cur.spec) as ScheduledTaskSpec;
    spec.active = !!cur.active;
    const has = (f: (typeof FLAT_FIELDS)[number]) => body[f] !== undefined && body[f] !== null;
    if (has("queue_name")) {
      spec.queue = { payload: spec.queue?.payload ?? {}, ...spec.queue, name: body.queue_name! };
      delete spec.container;
    }
    if (has("payload") || has("storage_write_path")) {
      if (!spec.queue) throw badRequest("this task targets a container: send queue_name to make it deliver into a queue");
      if (has("payload")) spec.queue.payload = body.payload!;
      if (has("storage_write_path")) {
        if (body.storage_write_path === "") delete spec.queue.storage_write_path;
        else spec.queue.storage_write_path = body.storage_write_path!;
      }
    }
    if (has("schedule")) spec.schedule = body.schedule!;
    if (has("active")) spec.active = body.active!;
    if (has("once")) spec.once = body.once!;
    if (has("annotations")) {
      // A patch keeps our schedule settings unless the new annotations set them.
      const keep = Object.fromEntries(
        SETTINGS_ANNOTATIONS.filter((k) => spec.metadata.annotations[k] !== undefined).map((k) => [k, spec.metadata.annotations[k]]),
      );
      spec.metadata.annotations = { ...keep, ...body.annotations! };
    }
    return parseSpec(spec, flatLabel);
  }

  async get(projectId: string, taskId: string): Promise<TaskJson> {
    const t = await schedulerRepo.get(this.db, projectId, taskId);
    if (!t) throw notFound("scheduled task");
    return taskJson(t);
  }

  async delete(projectId: string, taskId: string): Promise<void> {
    if (!(await schedulerRepo.delete(this.db, projectId, taskId))) throw notFound("scheduled task");
    this.changed();
  }

  /** list_scheduled_tasks: `limit` defaults to 100 (at most 1000), ordered by creation. */
  async list(
    projectId: string,
    q: { room_id?: string; room_name?: string; task_id?: string; active?: boolean; filter?: string; limit?: number; offset?: number },
  ): Promise<{ tasks: TaskJson[]; total: number }> {
    const { rows, total } = await schedulerRepo.page(this.db, projectId, {
      roomId: q.room_id || undefined,
      roomName: q.room_name || undefined,
      taskId: q.task_id || undefined,
      active: q.active,
      filter: q.filter?.trim() || undefined,
      limit: pageSize(q.limit, 100),
      offset: pageOffset(q.offset),
    });
    return { tasks: rows.map(taskJson), total };
  }

  /** list_scheduled_task_runs: newest first; `limit` defaults to 100 (at most 1000). */
  async runs(projectId: string, taskId: string, q: { limit?: number; offset?: number }) {
    const t = await schedulerRepo.get(this.db, projectId, taskId);
    if (!t) throw notFound("scheduled task");
    const { rows, total } = await schedulerRepo.runs(this.db, taskId, pageSize(q.limit, 100), pageOffset(q.offset));
    return { runs: rows.map(runJson), total };
  }

  /**
   * The next `n` times the task fires (ISO 8601, UTC). A paused task shows when it would fire if resumed now; a
   * one-time task has at most one.
   */
  async preview(projectId: string, taskId: string, n = 5) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_PREVIEW) throw badRequest(`n must be an integer from 1 to ${MAX_PREVIEW}`);
    const t = await schedulerRepo.get(this.db, projectId, taskId);
    if (!t) throw notFound("scheduled task");
    const now = this.clock.now();
    const anchor = t.active ? t.anchor_at : Math.floor(now / 1000) * 1000;
    const schedule = parseSchedule(t.schedule, { timezone: t.timezone, anchor });
    const times: number[] = [];
    let at = t.active && t.next_run_at !== null ? t.next_run_at : schedule.nextAfter(now);
    while (at !== null && times.length < (t.once ? 1 : n)) {
      times.push(at);
      at = schedule.nextAfter(at);
    }
    return { task_id: t.id, schedule: t.schedule, timezone: t.timezone, active: !!t.active, once: !!t.once, next_runs: times.map(iso) };
  }
}
