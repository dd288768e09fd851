import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { dialectName, startServer, type TestServer } from "./helpers/server.js";
import { freePort } from "./helpers/process.js";
import { createRoom, deleteRoom } from "./helpers/rooms.js";
import { expectPythonRun, expectPythonTask, pySpec } from "./helpers/scheduler.js";
import { ManualClock } from "../src/core/clock.js";
import type { DomainEvent } from "../src/core/events.js";

// The engine, moved through time with a ManualClock and fired with explicit ticks (the background loop is off,
// MESHAGENT_SCHEDULER_ENABLED=false) — except in the last tests, which run the real loop and a real `serve` process.
const ENV = { MESHAGENT_SCHEDULER_ENABLED: "false", MESHAGENT_SCHEDULE_MIN_INTERVAL: "60", MESHAGENT_SCHEDULE_MISFIRE_GRACE: "60" };
const at = (iso: string) => Date.parse(iso);

describe("scheduler engine (time travel)", () => {
  const clock = new ManualClock(at("2026-01-15T10:07:00Z"));
  let s: TestServer;
  let P: string;
  let room: { id: string; name: string };
  const events: DomainEvent[] = [];

  const create = async (spec: unknown, extra: Record<string, unknown> = {}, roomName = room.name) => {
    const r = await s.http("POST", `${P}/rooms/${roomName}/scheduled-tasks`, { json: { spec, ...extra } });
    expect(r.status, r.text).toBe(201);
    return r.json.task as { id: string } & Record<string, any>;
  };
  const task = async (id: string) => (await s.http("GET", `${P}/scheduled-tasks/${id}`)).json;
  const runs = async (id: string) => (await s.http("GET", `${P}/scheduled-tasks/${id}/runs?limit=1000`)).json.runs as any[];
  const messages = async (roomId: string, queue: string) => {
    try {
      return await s.ctx.queues.peek(roomId, queue, 10_000);
    } catch {
      return [];
    }
  };
  const tickAt = async (iso: string) => {
    clock.set(at(iso));
    return s.ctx.schedulerEngine.tick();
  };

  beforeAll(async () => {
    s = await startServer({ clock, env: ENV });
    P = `/accounts/projects/${s.admin.projectId}`;
    room = await createRoom(s.ctx, s.admin.projectId, "engine-room");
    s.ctx.bus.on((e) => {
      if (e.type.startsWith("scheduled_task.run.")) events.push(e);
    });
  });
  afterAll(() => s.close());

  it("a cron task fires at its due time, once per due time, delivering its payload into the room queue", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create(pySpec({ schedule: "0 * * * *", queue: { name: "hourly", payload: { prompt: "summarize" } } }));
    expect((await tickAt("2026-01-15T10:59:59Z")).runs).toBe(0);
    expect(await messages(room.id, "hourly")).toEqual([]);
    await tickAt("2026-01-15T11:00:00Z");
    await tickAt("2026-01-15T11:00:30Z"); // the same due time: nothing more
    let r = await runs(t.id);
    expect(r).toHaveLength(1);
    expectPythonRun(r[0]);
    expect(r[0]).toMatchObject({ scheduled_time: "2026-01-15T11:00:00.000Z", started_at: "2026-01-15T11:00:00.000Z", status: "submitted", target: "queue" });
    let m = await messages(room.id, "hourly");
    expect(m.map((x) => x.message)).toEqual([{ prompt: "summarize" }]);
    expect(m[0].id).toBe(r[0].queued_message_id);
    expect((await task(t.id)).next_run_at).toBe("2026-01-15T12:00:00.000Z");

    await tickAt("2026-01-15T12:00:10Z");
    r = await runs(t.id);
    expect(r.map((x) => x.scheduled_time)).toEqual(["2026-01-15T12:00:00.000Z", "2026-01-15T11:00:00.000Z"]);
    m = await messages(room.id, "hourly");
    expect(m).toHaveLength(2);
    const info = await task(t.id);
    expectPythonTask(info);
    expect(info).toMatchObject({ last_run_id: Number(r[0].id), last_status: "submitted", next_run_at: "2026-01-15T13:00:00.000Z" });
  });

  it("an interval task fires every interval from its creation; a late tick within the grace fires on time (skip policy too)", async () => {
    clock.set(at("2026-01-15T10:07:20.500Z"));
    const t = await create(pySpec({ schedule: "2 minutes", queue: { name: "interval" } }), { misfire_policy: "skip" });
    expect(t.next_run_at).toBe("2026-01-15T10:09:20.000Z"); // counted from the creation second
    await tickAt("2026-01-15T10:09:50Z"); // 30 s late, within the 60 s grace
    await tickAt("2026-01-15T10:11:20Z");
    expect((await runs(t.id)).map((x) => x.scheduled_time)).toEqual(["2026-01-15T10:11:20.000Z", "2026-01-15T10:09:20.000Z"]);
    expect(await messages(room.id, "interval")).toHaveLength(2);
  });

  it("a one-time task fires once, then is inactive (spec.active false too); resuming makes it fire once more", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create(pySpec({ schedule: "30 10 * * *", once: true, queue: { name: "once", payload: { n: 1 } } }));
    await tickAt("2026-01-15T10:30:01Z");
    await tickAt("2026-01-16T10:30:01Z");
    expect(await runs(t.id)).toHaveLength(1);
    let info = await task(t.id);
    expectPythonTask(info);
    expect(info).toMatchObject({ active: false, once: true, next_run_at: null, last_status: "submitted" });
    expect(info.spec.active).toBe(false);
    const u = await s.http("PUT", `${P}/scheduled-tasks/${t.id}`, { json: { active: true } });
    expect(u.json.next_run_at).toBe("2026-01-17T10:30:00.000Z");
    await tickAt("2026-01-17T10:30:00Z");
    info = await task(t.id);
    expect(info).toMatchObject({ active: false, next_run_at: null });
    expect(await runs(t.id)).toHaveLength(2);
    expect(await messages(room.id, "once")).toHaveLength(2);
  });

  it("storage_write_path: the payload is also written as <path>/<due time UTC>-<task id>.json in the room's storage", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const payload = { prompt: "write me", nested: { a: [1, 2] } };
    const t = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "files", payload, storage_write_path: "/scheduled/outbox/" } }));
    await tickAt("2026-01-15T11:00:05Z");
    const file = join(s.dataDir, "storage", "rooms", room.id, "scheduled", "outbox", `20260115T110000Z-${t.id}.json`);
    expect(existsSync(file)).toBe(true);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual(payload);
    const info = await task(t.id);
    expect(info.last_return_message).toContain(`wrote scheduled/outbox/20260115T110000Z-${t.id}.json`);
    expect((await messages(room.id, "files")).map((m) => m.message)).toEqual([payload]);
    const ev = events.find((e) => e.data.task_id === t.id)!;
    expect(ev.data).toMatchObject({ storage_path: `scheduled/outbox/20260115T110000Z-${t.id}.json`, status: "submitted" });
  });

  it("a storage write that fails records a failed run and enqueues nothing", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const roomDir = join(s.dataDir, "storage", "rooms", room.id);
    mkdirSync(roomDir, { recursive: true });
    writeFileSync(join(roomDir, "blocked"), "a file where a folder should be");
    const t = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "blocked-q", storage_write_path: "blocked/sub" } }));
    await tickAt("2026-01-15T11:00:05Z");
    const [r] = await runs(t.id);
    expectPythonRun(r);
    expect(r).toMatchObject({ status: "failed", queued_message_id: null });
    expect(r.error).toMatch(/could not write blocked\/sub\/20260115T110000Z-.*\.json into the room's storage/);
    expect(await messages(room.id, "blocked-q")).toEqual([]);
    expect((await task(t.id)).next_run_at).toBe("2026-01-16T11:00:00.000Z"); // moves on
    expect(events.find((e) => e.data.task_id === t.id)?.type).toBe("scheduled_task.run.failed");
  });

  it('a container target is recorded as failed with "no container runtime" and a scheduled_task.run.failed event', async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create({ ...pySpec({ schedule: "0 11 * * *" }), queue: undefined, container: { image: "worker:1" } });
    await tickAt("2026-01-15T11:00:00Z");
    const [r] = await runs(t.id);
    expect(r).toMatchObject({ target: "container", status: "failed", queued_message_id: null });
    expect(r.error).toMatch(/no container runtime/);
    expect(await task(t.id)).toMatchObject({ last_status: "failed", next_run_at: "2026-01-16T11:00:00.000Z" });
    const ev = events.find((e) => e.data.task_id === t.id)!;
    expect(ev).toMatchObject({
      type: "scheduled_task.run.failed",
      project_id: s.admin.projectId,
      data: { run_id: r.id, target: "container", room_name: room.name },
    });
  });

  it("run events are published inside the run's transaction (transactional subscribers see the run) and delivered after commit", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "evq" } }));
    const seen: { inTx: boolean; outside?: boolean }[] = [];
    s.ctx.bus.subscribeTx(async (q, e) => {
      if (e.data.task_id !== t.id) return;
      const inTx = !!(await q.selectFrom("scheduled_task_runs").select("id").where("id", "=", Number(e.data.run_id)).executeTakeFirst());
      // On PostgreSQL another connection must not see the uncommitted run yet (SQLite has one connection: skip).
      const outside =
        dialectName === "postgres"
          ? !!(await s.ctx.store.db.selectFrom("scheduled_task_runs").select("id").where("id", "=", Number(e.data.run_id)).executeTakeFirst())
          : undefined;
      seen.push({ inTx, outside });
    });
    await tickAt("2026-01-15T11:00:00Z");
    expect(seen).toEqual([{ inTx: true, outside: dialectName === "postgres" ? false : undefined }]);
    const ev = events.find((e) => e.data.task_id === t.id)!;
    expect(ev).toMatchObject({
      type: "scheduled_task.run.succeeded",
      data: { queue: "evq", status: "submitted", scheduled_time: "2026-01-15T11:00:00.000Z", room_id: room.id },
    });
    expect((await messages(room.id, "evq"))[0].id).toBe(ev.data.queued_message_id);
  });

  it("one task whose firing fails does not hold up the others of its batch; it gets a failed run and moves on", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const good = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "batch-good" } }));
    const bad = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "batch-bad" } }));
    s.ctx.bus.subscribeTx(async (_q, e) => {
      if (e.data.task_id === bad.id && e.type === "scheduled_task.run.succeeded") throw new Error("subscriber exploded");
    });
    await tickAt("2026-01-15T11:00:00Z");
    expect((await runs(good.id))[0]).toMatchObject({ status: "submitted" });
    expect(await messages(room.id, "batch-good")).toHaveLength(1);
    const [r] = await runs(bad.id);
    expect(r).toMatchObject({ status: "failed", queued_message_id: null });
    expect(r.error).toMatch(/internal error: subscriber exploded/);
    expect(await messages(room.id, "batch-bad")).toEqual([]); // rolled back with the failed attempt
    expect((await task(bad.id)).next_run_at).toBe("2026-01-16T11:00:00.000Z");
  });

  it("a stored task that can no longer be evaluated gets one failed run and is deactivated, not claimed over and over", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "broken-q" } }));
    await s.ctx.store.db.updateTable("scheduled_tasks").set({ timezone: "Gone/Zone" }).where("id", "=", t.id).execute();
    await tickAt("2026-01-15T11:00:00Z");
    await tickAt("2026-01-16T11:00:00Z");
    const r = await runs(t.id);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ status: "failed" });
    expect(r[0].error).toMatch(/cannot be evaluated/);
    expect(await task(t.id)).toMatchObject({ active: false, next_run_at: null, last_status: "failed" });
    expect(await messages(room.id, "broken-q")).toEqual([]);
  });

  it("a due time that already has a run is never fired again (the runs table refuses it; the engine skips it)", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "dup-q" } }));
    await s.ctx.store.db
      .insertInto("scheduled_task_runs")
      .values({
        task_id: t.id,
        project_id: s.admin.projectId,
        room_id: room.id,
        target: "queue",
        status: "submitted",
        attempt_count: 1,
        error: null,
        queued_message_id: null,
        scheduled_time: at("2026-01-15T11:00:00Z"),
        started_at: null,
        completed_at: null,
      })
      .execute();
    await tickAt("2026-01-15T11:00:00Z");
    expect(await runs(t.id)).toHaveLength(1);
    expect(await messages(room.id, "dup-q")).toEqual([]);
    expect((await task(t.id)).next_run_at).toBe("2026-01-16T11:00:00.000Z");
  });

  it("a cron in a time zone follows its wall clock across a DST change", async () => {
    clock.set(at("2026-03-06T12:00:00Z"));
    const t = await create(pySpec({ schedule: "0 9 * * *", queue: { name: "tz-q" } }), { timezone: "America/New_York" });
    expect(t.next_run_at).toBe("2026-03-06T14:00:00.000Z");
    for (const when of ["2026-03-06T14:00:00Z", "2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"]) await tickAt(when);
    expect((await runs(t.id)).map((r) => r.scheduled_time).reverse()).toEqual([
      "2026-03-06T14:00:00.000Z",
      "2026-03-07T14:00:00.000Z",
      "2026-03-08T13:00:00.000Z", // 09:00 EDT
      "2026-03-09T13:00:00.000Z",
    ]);
  });

  it("a paused task does not fire, and resuming it does not catch up on the time it was paused", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const t = await create(pySpec({ schedule: "0 * * * *", queue: { name: "paused-q" } }), { misfire_policy: "catch_up" });
    await s.http("PUT", `${P}/scheduled-tasks/${t.id}`, { json: { active: false } });
    await tickAt("2026-01-15T14:00:00Z");
    expect(await runs(t.id)).toEqual([]);
    await tickAt("2026-01-15T14:30:00Z");
    await s.http("PUT", `${P}/scheduled-tasks/${t.id}`, { json: { active: true } });
    await tickAt("2026-01-15T15:00:00Z");
    expect((await runs(t.id)).map((r) => r.scheduled_time)).toEqual(["2026-01-15T15:00:00.000Z"]);
  });

  it("deleting the room deletes its tasks and their runs", async () => {
    clock.set(at("2026-01-15T10:07:00Z"));
    const r2 = await createRoom(s.ctx, s.admin.projectId, "short-lived");
    const t = await create(pySpec({ schedule: "0 11 * * *", queue: { name: "q" } }), {}, r2.name);
    await tickAt("2026-01-15T11:00:00Z");
    expect(await runs(t.id)).toHaveLength(1);
    await deleteRoom(s.ctx, r2.id);
    const left = await s.ctx.store.db.selectFrom("scheduled_task_runs").select("id").where("task_id", "=", t.id).execute();
    expect(left).toEqual([]);
    expect((await s.http("GET", `${P}/scheduled-tasks/${t.id}`)).status).toBe(404);
  });
});

describe("catch-up after a restart, per misfire policy", () => {
  it("skip fires nothing, run_once fires the latest missed due time once, catch_up fires up to its maximum", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshagent-sched-restart-"));
    const clock = new ManualClock(at("2026-01-15T10:07:00Z"));
    let s2: TestServer | undefined;
    try {
      const s1 = await startServer({ clock, env: ENV, keepData: dir, keepDatabase: true });
      const P = `/accounts/projects/${s1.admin.projectId}`;
      const room = await createRoom(s1.ctx, s1.admin.projectId, "restart-room");
      const mk = async (queue: string, extra: Record<string, unknown>, once = false, schedule = "0 * * * *") => {
        const r = await s1.http("POST", `${P}/rooms/${room.name}/scheduled-tasks`, {
          json: { spec: pySpec({ schedule, once, queue: { name: queue } }), ...extra },
        });
        expect(r.status, r.text).toBe(201);
        return r.json.task_id as string;
      };
      const ids = {
        skip: await mk("skip", { misfire_policy: "skip" }),
        runOnce: await mk("run-once", {}), // the default policy
        catchUp3: await mk("catch-up-3", { misfire_policy: "catch_up", catch_up_max: 3 }),
        catchUp: await mk("catch-up", { misfire_policy: "catch_up" }),
        onceSkip: await mk("once-skip", { misfire_policy: "skip" }, true),
        onceRunOnce: await mk("once-run-once", {}, true),
      };
      await s1.close(); // the server goes down at 10:07 …

      clock.set(at("2026-01-15T15:27:00Z")); // … and comes back at 15:27: due times 11:00 … 15:00 were missed
      s2 = await startServer({ clock, env: ENV, keepData: dir, databaseUrl: s1.databaseUrl });
      const r = await s2.ctx.schedulerEngine.tick();
      const times = async (id: string) =>
        ((await s2!.http("GET", `${P}/scheduled-tasks/${id}/runs`, { token: s1.admin.apiKey })).json.runs as any[])
          .map((x) => x.scheduled_time.slice(11, 16))
          .reverse();
      const get = async (id: string) => (await s2!.http("GET", `${P}/scheduled-tasks/${id}`, { token: s1.admin.apiKey })).json; // s2 bootstrapped its own admin

      expect(await times(ids.skip)).toEqual([]);
      expect(await get(ids.skip)).toMatchObject({ last_status: "skipped", next_run_at: "2026-01-15T16:00:00.000Z", active: true });
      expect((await get(ids.skip)).last_return_message).toMatch(/missed 5 due time/);
      expect(await times(ids.runOnce)).toEqual(["15:00"]);
      expect(await times(ids.catchUp3)).toEqual(["13:00", "14:00", "15:00"]);
      expect(await times(ids.catchUp)).toEqual(["11:00", "12:00", "13:00", "14:00", "15:00"]);
      expect(await times(ids.onceSkip)).toEqual([]);
      expect(await get(ids.onceSkip)).toMatchObject({ active: false, last_status: "skipped", next_run_at: null });
      expect(await times(ids.onceRunOnce)).toEqual(["11:00"]);
      expect(await get(ids.onceRunOnce)).toMatchObject({ active: false, next_run_at: null });
      for (const id of [ids.runOnce, ids.catchUp3, ids.catchUp]) expect((await get(id)).next_run_at).toBe("2026-01-15T16:00:00.000Z");
      expect(r).toEqual({ tasks: 6, runs: 1 + 3 + 5 + 1, failed: 0 });
      // every run delivered exactly one message
      for (const [q, n] of [
        ["run-once", 1],
        ["catch-up-3", 3],
        ["catch-up", 5],
        ["once-run-once", 1],
      ] as const)
        expect(await s2.ctx.queues.peek(room.id, q, 100)).toHaveLength(n);
      // and the next due time fires normally for every policy
      clock.set(at("2026-01-15T16:00:10Z"));
      await s2.ctx.schedulerEngine.tick();
      for (const id of [ids.skip, ids.runOnce, ids.catchUp3, ids.catchUp]) expect((await times(id)).at(-1)).toBe("16:00");
    } finally {
      await s2?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the engine's own loop", () => {
  it("starts with the server on the system clock, wakes for a new task, and stops with it", async () => {
    const s = await startServer({ env: { MESHAGENT_SCHEDULE_MIN_INTERVAL: "1" } });
    try {
      expect(s.ctx.schedulerEngine.running).toBe(true);
      const room = await createRoom(s.ctx, s.admin.projectId, "live-room");
      const P = `/accounts/projects/${s.admin.projectId}`;
      const r = await s.http("POST", `${P}/rooms/${room.name}/scheduled-tasks`, {
        json: { spec: pySpec({ schedule: "1 second", queue: { name: "live", payload: { tick: true } } }) },
      });
      expect(r.status).toBe(201);
      const until = Date.now() + 20_000;
      let runs: any[] = [];
      while (Date.now() < until) {
        runs = (await s.http("GET", `${P}/scheduled-tasks/${r.json.task_id}/runs`)).json.runs;
        if (runs.length >= 3) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      expect(runs.length).toBeGreaterThanOrEqual(3);
      await s.ctx.schedulerEngine.stop(); // freeze, then compare runs and messages
      runs = (await s.http("GET", `${P}/scheduled-tasks/${r.json.task_id}/runs`)).json.runs;
      const times = runs.map((x) => Date.parse(x.scheduled_time)).reverse();
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBe(1000);
      expect((await s.ctx.queues.peek(room.id, "live", 1000)).length).toBe(runs.length);
    } finally {
      await s.close();
    }
    expect(s.ctx.schedulerEngine.running).toBe(false);
  });

  it("deletes runs older than MESHAGENT_SCHEDULE_RUN_RETENTION_DAYS", async () => {
    const clock = new ManualClock(at("2026-01-15T10:07:00Z"));
    const s = await startServer({ clock, env: { MESHAGENT_SCHEDULE_RUN_RETENTION_DAYS: "1", MESHAGENT_SCHEDULE_MIN_INTERVAL: "60" } });
    try {
      const room = await createRoom(s.ctx, s.admin.projectId, "retention-room");
      const P = `/accounts/projects/${s.admin.projectId}`;
      const id = (await s.http("POST", `${P}/rooms/${room.name}/scheduled-tasks`, { json: { spec: pySpec({ schedule: "0 11 * * *", queue: { name: "r" } }) } }))
        .json.task_id;
      clock.set(at("2026-01-15T11:00:00Z"));
      await s.ctx.schedulerEngine.tick();
      const times = async () => ((await s.http("GET", `${P}/scheduled-tasks/${id}/runs`)).json.runs as any[]).map((r) => r.scheduled_time);
      expect(await times()).toEqual(["2026-01-15T11:00:00.000Z"]);
      clock.set(at("2026-01-18T11:30:00Z")); // three days later: the loop catches up (run_once) and prunes
      s.ctx.schedulerEngine.wake();
      const until = Date.now() + 15_000;
      const expected = ["2026-01-18T11:00:00.000Z"]; // the old run pruned, the caught-up one recorded
      while (Date.now() < until && JSON.stringify(await times()) !== JSON.stringify(expected)) await new Promise((r) => setTimeout(r, 100));
      expect(await times()).toEqual(expected);
    } finally {
      await s.close();
    }
  });

  it("acknowledged tasks survive kill -9, and every recorded run has exactly its message (one transaction)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshagent-sched-kill-"));
    let s2: TestServer | undefined;
    try {
      const s1 = await startServer({ keepData: dir, keepDatabase: true, env: { MESHAGENT_SCHEDULER_ENABLED: "false" } });
      const room = await createRoom(s1.ctx, s1.admin.projectId, "kill-room");
      const P = `/accounts/projects/${s1.admin.projectId}`;
      await s1.close();

      const port = await freePort();
      // One process (node with tsx's loader), so SIGKILL hits the server itself, not a launcher that leaves it running.
      const loader = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm")).href;
      const child = spawn(process.execPath, ["--import", loader, resolve("src/main.ts"), "serve"], {
        cwd: dir,
        env: {
          PATH: process.env.PATH,
          MESHAGENT_DATA_DIR: dir,
          MESHAGENT_DATABASE_URL: s1.databaseUrl,
          MESHAGENT_PORT: String(port),
          MESHAGENT_LOG_LEVEL: "warn",
          MESHAGENT_SCHEDULE_MIN_INTERVAL: "1",
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr!.on("data", (d) => (stderr += d));
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      const base = `http://127.0.0.1:${port}`;
      const call = (method: string, path: string, json?: unknown) =>
        fetch(base + path, {
          method,
          headers: { authorization: `Bearer ${s1.admin.apiKey}`, "content-type": "application/json" },
          body: json === undefined ? undefined : JSON.stringify(json),
        });
      let taskId = "";
      try {
        const until = Date.now() + 30_000;
        for (;;) {
          try {
            if ((await fetch(`${base}/healthz`)).ok) break;
          } catch {
            // not up yet
          }
          if (Date.now() > until) throw new Error(`the server did not start: ${stderr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const c = await call("POST", `${P}/rooms/${room.name}/scheduled-tasks`, {
          spec: pySpec({ schedule: "1 second", queue: { name: "crash", payload: { x: 1 } } }),
        });
        expect(c.status).toBe(201);
        taskId = ((await c.json()) as { task_id: string }).task_id;
        const until2 = Date.now() + 20_000;
        while (Date.now() < until2) {
          const runs = ((await (await call("GET", `${P}/scheduled-tasks/${taskId}/runs`)).json()) as { total: number }).total;
          if (runs >= 3) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        child.kill("SIGKILL"); // at an arbitrary moment of its ticks
        await exited;
      }
      s2 = await startServer({ keepData: dir, databaseUrl: s1.databaseUrl, env: { MESHAGENT_SCHEDULER_ENABLED: "false" } });
      const token = s1.admin.apiKey; // s2 bootstrapped another admin; the first one's key still works
      const task = (await s2.http("GET", `${P}/scheduled-tasks/${taskId}`, { token })).json;
      expectPythonTask(task);
      const runs = (await s2.http("GET", `${P}/scheduled-tasks/${taskId}/runs?limit=1000`, { token })).json.runs as any[];
      expect(runs.length).toBeGreaterThanOrEqual(3);
      const msgs = await s2.ctx.queues.peek(room.id, "crash", 10_000);
      expect(msgs.map((m) => m.id).sort()).toEqual(runs.map((r) => r.queued_message_id).sort());
      expect(new Set(runs.map((r) => r.scheduled_time)).size, JSON.stringify(runs)).toBe(runs.length);
      const latest = [...runs].sort((a, b) => Date.parse(b.scheduled_time) - Date.parse(a.scheduled_time))[0];
      expect(task.last_run_id, JSON.stringify({ task, runs })).toBe(Number(latest.id));
    } finally {
      await s2?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
