import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import type { EventBus } from "../core/events.js";
import type { SchedulerConfig } from "../config.js";
import type { AttachmentSink } from "../mail/attachments.js";
import type { QueuesService } from "../queues/service.js";
import { inTx, type Queryable, type Store } from "../store/db.js";
import { schedulerRepo, type NewRun, type TaskAdvance, type TaskWithRoom } from "./repo.js";
import { parseSchedule, planDue, type DuePlan, type MisfirePolicy } from "./schedule.js";
import { storagePathSegments, type ScheduledTaskSpec } from "./spec.js";

export interface EngineLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface TickResult {
  /** Tasks claimed (due) in this tick. */
  tasks: number;
  /** Runs recorded. */
  runs: number;
  /** Of which failed. */
  failed: number;
  /** Tasks that could not even record a failed run (the database refused): they stay due. */
  stuck?: number;
}

export const NO_CONTAINER_RUNTIME = "no container runtime: this server cannot start containers, so container targets are recorded as failed";

/** A run with a `container` target, once its row is committed. */
export interface ContainerRun {
  runId: number;
  taskId: string;
  projectId: string;
  roomId: string;
  roomName: string;
  spec: ScheduledTaskSpec;
}

/** How a container run ended: its exit code (null when it never ran or was stopped) and the tail of its output. */
export interface ContainerRunResult {
  containerId: string | null;
  exitCode: number | null;
  logs: string;
  error: string | null;
}

/** What runs the containers of scheduled tasks (src/hosting/tasks.ts). */
export interface TaskContainerRunner {
  /** Why containers cannot run here now, or null when they can. */
  unavailable(): string | null;
  /** Run it to its end; `started` once the container exists (its id and when it will be stopped). */
  run(run: ContainerRun, started: (containerId: string, timeoutAt: number) => Promise<void>, signal: AbortSignal): Promise<ContainerRunResult>;
}

/**
 * The file a run writes when the task has `storage_write_path`: `<path>/<due time, UTC, YYYYMMDDTHHMMSSZ>-<task id>.json`
 * in the room's storage, holding the payload as JSON. One file per run; a retried run rewrites the same file.
 */
export function storageFileFor(storagePath: string, taskId: string, scheduledTime: number): string {
  const stamp = iso(scheduledTime)
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
  return [...storagePathSegments(storagePath, "storage_write_path"), `${stamp}-${taskId}.json`].join("/");
}

interface PendingRun {
  row: TaskWithRoom;
  spec: ScheduledTaskSpec;
  run: NewRun;
  file?: string;
}

const sleepFail = (n: number, max: number) => Math.min(max, 500 * 2 ** Math.min(n, 6));

/**
 * The scheduler engine. Tasks are rows with `next_run_at`; a tick claims the due ones in batches and, for each batch in
 * ONE transaction: writes the storage files, enqueues the payloads into the room queues, records the runs, publishes
 * `scheduled_task.run.succeeded|failed` on the bus and advances `next_run_at`. A crash anywhere before the commit
 * leaves the tasks due, so they fire on the next tick; after it, they never fire twice for one due time (the runs
 * table refuses a second (task, due time) too).
 *
 * On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED`, so any number of server processes run engines on one database
 * and each due time fires exactly once. On SQLite there is one process (one writer), hence one engine.
 *
 * Idle cost: the loop sleeps until the earliest next_run_at (at most `maxSleepMs`), woken early when a task is created
 * or changed in any process. All times come from the injected clock; tests call `tick()` after moving it.
 */
export class SchedulerEngine {
  private timer?: NodeJS.Timeout;
  private started = false;
  private inLoop = false;
  private woken = false;
  private failures = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private looping: Promise<void> = Promise.resolve();
  private lastPrune = 0;
  private log: EngineLog = { warn: () => {}, error: () => {} };
  /** Runs container targets (set by wiring.ts); absent, they are recorded as failed with NO_CONTAINER_RUNTIME. */
  containers: TaskContainerRunner | null = null;
  /** Container runs in progress (stop() waits for them to be recorded). */
  private readonly containerRuns = new Set<Promise<void>>();
  /** Aborted by stop(): container runs in progress are stopped and recorded as failed. */
  private stopRuns = new AbortController();
  readonly batchSize: number;
  readonly maxSleepMs: number;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly queues: QueuesService,
    private readonly bus: EventBus,
    private readonly sink: AttachmentSink,
    private readonly config: SchedulerConfig,
    opts: { batchSize?: number; maxSleepMs?: number } = {},
  ) {
    this.batchSize = opts.batchSize ?? 500;
    this.maxSleepMs = opts.maxSleepMs ?? 5_000;
  }

  private get db() {
    return this.store.db;
  }

  get running() {
    return this.started;
  }

  /** Start the background loop (no-op when MESHAGENT_SCHEDULER_ENABLED=false or already started). */
  start(log?: EngineLog) {
    if (log) this.log = log;
    if (this.started || !this.config.enabled) return;
    this.started = true;
    if (this.stopRuns.signal.aborted) this.stopRuns = new AbortController();
    this.arm(0);
  }

  /** Stop the loop and wait for a tick in progress to finish. */
  async stop() {
    this.started = false;
    clearTimeout(this.timer);
    this.stopRuns.abort();
    await this.looping;
    await this.chain;
    await Promise.all([...this.containerRuns]);
  }

  /** Re-plan now (a task was created or changed). */
  wake() {
    if (!this.started) return;
    this.woken = true;
    if (!this.inLoop) this.arm(0);
  }

  private arm(ms: number) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.looping = this.loop();
    }, ms);
    this.timer.unref();
  }

  private async loop() {
    if (!this.started || this.inLoop) return;
    this.inLoop = true;
    this.woken = false;
    let delay: number;
    try {
      await this.maybePrune();
      let next = await schedulerRepo.nextDue(this.db);
      let claimed = -1;
      let stuck = 0;
      if (next !== null && next <= this.clock.now()) {
        const r = await this.tick();
        claimed = r.tasks;
        stuck = r.stuck ?? 0;
        next = await schedulerRepo.nextDue(this.db);
      }
      delay = next === null ? this.maxSleepMs : Math.max(0, Math.min(this.maxSleepMs, next - this.clock.now()));
      // Due, yet nothing claimed: another engine holds those rows right now. Look again shortly.
      if (delay === 0 && claimed === 0) delay = 200;
      // Tasks the database would not let us move on: back off like after a failed tick.
      if (stuck > 0) delay = Math.max(delay, sleepFail(this.failures++, this.maxSleepMs));
      else this.failures = 0;
    } catch (err) {
      this.log.error({ err }, "scheduler tick failed");
      delay = sleepFail(this.failures++, this.maxSleepMs);
    } finally {
      this.inLoop = false;
    }
    if (this.woken) delay = 0;
    if (this.started) this.arm(delay);
  }

  private async maybePrune() {
    const days = this.config.runRetentionDays;
    const now = this.clock.now();
    if (days <= 0 || now - this.lastPrune < 3600_000) return;
    this.lastPrune = now;
    await schedulerRepo.pruneRuns(this.db, now - days * 86400_000);
  }

  /** Fire everything due now, batch after batch. Calls are serialized (the loop and tests may both call it). */
  tick(): Promise<TickResult> {
    const p = this.chain.then(() => this.tickNow());
    this.chain = p.catch(() => {});
    return p;
  }

  private async tickNow(): Promise<TickResult> {
    const total: TickResult = { tasks: 0, runs: 0, failed: 0 };
    for (;;) {
      const r = await this.batch(this.clock.now());
      total.tasks += r.tasks;
      total.runs += r.runs;
      total.failed += r.failed;
      if (r.stuck) total.stuck = (total.stuck ?? 0) + r.stuck;
      // Stuck tasks stay due: stop here rather than claim them again at once.
      if (r.tasks < this.batchSize || r.stuck) return total;
    }
  }

  private async batch(now: number): Promise<TickResult> {
    let claimed: TaskWithRoom[] = [];
    const after: (() => void)[] = [];
    try {
      const r = await inTx(this.db, async (tx) => {
        claimed = await schedulerRepo.claimDue(tx, this.store.dialect, now, this.batchSize);
        return this.fire(tx, claimed, now, after, false);
      });
      for (const fn of after) fn();
      return r;
    } catch (err) {
      if (claimed.length === 0) throw err;
      // Something in the batch failed: it rolled back as a whole. Redo it task by task, so one bad task
      // cannot hold up the others.
      this.log.warn({ err }, "scheduler batch failed; retrying its tasks one by one");
      const total: TickResult = { tasks: claimed.length, runs: 0, failed: 0, stuck: 0 };
      for (const t of claimed) {
        const r = await this.single(t.id, now);
        total.runs += r.runs;
        total.failed += r.failed;
        total.stuck! += r.stuck ?? 0;
      }
      return total;
    }
  }

  /** One task in its own transaction; if even that fails, record a failed run and move the task on. */
  private async single(id: string, now: number): Promise<TickResult> {
    const after: (() => void)[] = [];
    try {
      const r = await inTx(this.db, async (tx) => this.fire(tx, await schedulerRepo.claimDue(tx, this.store.dialect, now, 1, id), now, after, true));
      for (const fn of after) fn();
      return r;
    } catch (err) {
      this.log.error({ err, task_id: id }, "scheduled task failed to fire");
      after.length = 0;
      try {
        const r = await inTx(this.db, async (tx) =>
          this.fire(tx, await schedulerRepo.claimDue(tx, this.store.dialect, now, 1, id), now, after, true, `internal error: ${(err as Error).message}`),
        );
        for (const fn of after) fn();
        return r;
      } catch (err2) {
        this.log.error({ err: err2, task_id: id }, "could not record the failed run; the task stays due");
        return { tasks: 1, runs: 0, failed: 0, stuck: 1 };
      }
    }
  }

  private startContainerRun(cr: ContainerRun) {
    const runner = this.containers!;
    const p = (async () => {
      let result: ContainerRunResult;
      try {
        result = await runner.run(
          cr,
          (containerId, timeoutAt) =>
            schedulerRepo
              .putContainerRun(this.db, { run_id: cr.runId, container_id: containerId, exit_code: null, logs: null, timeout_at: timeoutAt })
              .then(() => {}),
          this.stopRuns.signal,
        );
      } catch (e) {
        result = { containerId: null, exitCode: null, logs: "", error: `the container could not run: ${(e as Error).message}` };
      }
      await this.finishContainerRun(cr, result);
    })().catch((e) => this.log.error({ err: e, run_id: cr.runId }, "could not record a container run"));
    this.containerRuns.add(p);
    void p.finally(() => this.containerRuns.delete(p));
  }

  /** Record how a container run ended: the run, its container row, the task's last_*, and the run event. */
  async finishContainerRun(cr: ContainerRun, r: ContainerRunResult) {
    const ok = r.error === null && r.exitCode === 0;
    const status = ok ? "submitted" : "failed";
    const error = ok ? null : (r.error ?? `the container exited with code ${r.exitCode}`);
    const message = ok ? `the container ${r.containerId} exited with code 0` : error!;
    const now = this.clock.now();
    const after = await inTx(this.db, async (tx) => {
      await schedulerRepo.putContainerRun(tx, { run_id: cr.runId, container_id: r.containerId, exit_code: r.exitCode, logs: r.logs, timeout_at: null });
      await schedulerRepo.finishRun(tx, cr.runId, cr.taskId, status, error, message, now);
      return this.bus.publish(tx, {
        type: ok ? "scheduled_task.run.succeeded" : "scheduled_task.run.failed",
        project_id: cr.projectId,
        data: {
          task_id: cr.taskId,
          run_id: String(cr.runId),
          room_id: cr.roomId,
          room_name: cr.roomName,
          target: "container",
          status,
          container_id: r.containerId,
          exit_code: r.exitCode,
          error,
        },
      });
    });
    after();
  }

  /** Container runs a dead server left `submitting`: recorded as failed (their containers are removed by the runtime's reconciliation). */
  async failOrphanedContainerRuns(isOrphan: (runId: number, startedAt: number) => Promise<boolean>) {
    for (const r of await schedulerRepo.openContainerRuns(this.db)) {
      if (!(await isOrphan(Number(r.id), Number(r.started_at ?? 0)))) continue;
      await this.finishContainerRun(
        { runId: Number(r.id), taskId: r.task_id, projectId: r.project_id, roomId: r.room_id, roomName: r.room_name, spec: {} as ScheduledTaskSpec },
        { containerId: null, exitCode: null, logs: "", error: "the server running the container stopped before it finished" },
      );
    }
  }

  private plan(row: TaskWithRoom, now: number): { spec: ScheduledTaskSpec; plan: DuePlan; error?: string } {
    const graceMs = this.config.misfireGraceSeconds * 1000;
    const base = { once: !!row.once, nextRunAt: row.next_run_at!, policy: row.misfire_policy as MisfirePolicy, catchUpMax: row.catch_up_max };
    let spec = { metadata: { annotations: {} } } as ScheduledTaskSpec;
    try {
      spec = JSON.parse(row.spec) as ScheduledTaskSpec;
      const schedule = parseSchedule(row.schedule, { timezone: row.timezone, anchor: row.anchor_at });
      return { spec, plan: planDue({ ...base, schedule }, now, graceMs) };
    } catch (err) {
      // Stored tasks were validated when written; a runtime that no longer knows the time zone lands here. The task
      // gets a failed run and is deactivated, instead of being claimed again and again.
      return { spec, plan: { fire: [row.next_run_at!], skipped: 0, next: null }, error: `the task cannot be evaluated: ${(err as Error).message}` };
    }
  }

  /**
   * Fire the claimed tasks inside `tx`. `checkDuplicates` (the one-by-one path) skips a due time that already has a
   * run; `forceError` records every run as failed with that message (the last resort for a task that keeps failing).
   */
  private async fire(
    tx: Queryable,
    rows: TaskWithRoom[],
    now: number,
    after: (() => void)[],
    checkDuplicates: boolean,
    forceError?: string,
  ): Promise<TickResult> {
    if (rows.length === 0) return { tasks: 0, runs: 0, failed: 0 };
    const pending: PendingRun[] = [];
    const advances = new Map<string, TaskAdvance>();
    for (const row of rows) {
      const { spec, plan, error } = this.plan(row, now);
      for (const slot of plan.fire) {
        if (checkDuplicates && (await schedulerRepo.runExists(tx, row.id, slot))) continue;
        const failure = forceError ?? error ?? (row.target === "container" ? (this.containers ? this.containers.unavailable() : NO_CONTAINER_RUNTIME) : null);
        const p: PendingRun = {
          row,
          spec,
          run: {
            task_id: row.id,
            project_id: row.project_id,
            room_id: row.room_id,
            target: row.target,
            // A container run is "submitting" until its container exited (then submitted or failed).
            status: failure ? "failed" : row.target === "container" ? "submitting" : "submitted",
            attempt_count: 1,
            error: failure,
            queued_message_id: null,
            scheduled_time: slot,
            started_at: now,
            completed_at: null,
          },
        };
        if (!failure && spec.queue?.storage_write_path) p.file = storageFileFor(spec.queue.storage_write_path, row.id, slot);
        pending.push(p);
      }
      const active = row.once || plan.next === null || error ? 0 : 1;
      advances.set(row.id, {
        id: row.id,
        next_run_at: active ? plan.next : null,
        active,
        last_run_id: null,
        last_start_time: null,
        last_end_time: null,
        last_status: plan.fire.length === 0 && plan.skipped > 0 ? "skipped" : null,
        last_return_message:
          plan.fire.length === 0 && plan.skipped > 0 ? `missed ${plan.skipped} due time(s) while the server was down; skipped (misfire policy skip)` : null,
      });
    }

    // 1. Storage files (outside the database: written before the commit, idempotent by name, so a retry rewrites them).
    await eachLimit(
      pending.filter((p) => p.file),
      8,
      async (p) => {
        try {
          await this.sink.write(p.row.project_id, p.row.room_id, p.file!, Buffer.from(JSON.stringify(p.spec.queue!.payload)));
        } catch (err) {
          p.run.status = "failed";
          p.run.error = `could not write ${p.file} into the room's storage: ${(err as Error).message}`;
          p.file = undefined;
        }
      },
    );

    // 2. Enqueue (same transaction), all of the batch's messages at once.
    const deliver = pending.filter((p) => p.run.status === "submitted" && p.spec.queue);
    const { ids: messageIds, notify } = await this.queues.enqueueMany(
      tx,
      deliver.map((p) => ({ roomId: p.row.room_id, name: p.spec.queue!.name, message: p.spec.queue!.payload })),
    );
    deliver.forEach((p, i) => (p.run.queued_message_id = messageIds[i]));
    after.push(notify);

    // 3. Runs, events and the tasks' new state.
    const completed = this.clock.now();
    for (const p of pending) p.run.completed_at = completed;
    const inserted = await schedulerRepo.insertRuns(
      tx,
      pending.map((p) => p.run),
    );
    // RETURNING promises no order: match the ids by (task, due time), which is unique.
    const idOf = new Map(inserted.map((r) => [`${r.task_id}\u0000${r.scheduled_time}`, r.id]));
    let failed = 0;
    for (let i = 0; i < pending.length; i++) {
      const { row, run, spec, file } = pending[i];
      const runId = idOf.get(`${row.id}\u0000${run.scheduled_time}`)!;
      if (run.status === "submitting") {
        // A container run: it starts once this transaction committed; its end is recorded by finishContainerRun.
        Object.assign(advances.get(row.id)!, {
          last_run_id: runId,
          last_start_time: run.started_at,
          last_status: "submitting",
          last_return_message: "the container is starting",
        });
        const cr: ContainerRun = { runId, taskId: row.id, projectId: row.project_id, roomId: row.room_id, roomName: row.room_name, spec };
        after.push(() => this.startContainerRun(cr));
        continue;
      }
      const ok = run.status === "submitted";
      if (!ok) failed++;
      const message = ok ? `enqueued message ${run.queued_message_id} into queue "${spec.queue!.name}"${file ? ` and wrote ${file}` : ""}` : run.error!;
      const a = advances.get(row.id)!;
      // Runs are in due-time order per task, so the last one wins: last_* describe the latest due time.
      Object.assign(a, {
        last_run_id: runId,
        last_start_time: run.started_at,
        last_end_time: completed,
        last_status: run.status,
        last_return_message: message,
      });
      after.push(
        await this.bus.publish(tx, {
          type: ok ? "scheduled_task.run.succeeded" : "scheduled_task.run.failed",
          project_id: row.project_id,
          data: {
            task_id: row.id,
            run_id: String(runId),
            room_id: row.room_id,
            room_name: row.room_name,
            target: run.target,
            status: run.status,
            scheduled_time: iso(run.scheduled_time),
            queue: spec.queue?.name ?? null,
            queued_message_id: run.queued_message_id,
            storage_path: file ?? null,
            error: run.error,
          },
        }),
      );
    }
    await schedulerRepo.advance(tx, this.store.dialect, [...advances.values()]);
    return { tasks: rows.length, runs: pending.length, failed };
  }
}

export type { ScheduledTaskSpec };

async function eachLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>) {
  let i = 0;
  const worker = async () => {
    while (i < items.length) await fn(items[i++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
