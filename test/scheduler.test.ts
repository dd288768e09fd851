import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { createRoom, deleteRoom } from "./helpers/rooms.js";
import { expectPythonRun, expectPythonTask, expectStrictSpec, pySpec } from "./helpers/scheduler.js";
import { ManualClock } from "../src/core/clock.js";

// REST black-box tests for scheduled tasks (wire-contract §6.7, §7.5). The official TS client 0.39.9 has no
// scheduled-task methods (contract §12), so these are raw HTTP with the Python client's exact bodies and models.
// The engine is off here (explicit ticks); test/scheduler-engine.test.ts covers firing.
describe("scheduled tasks REST (contract §6.7)", () => {
  const T0 = Date.UTC(2026, 0, 15, 10, 7, 0); // a Thursday, 10:07 UTC
  const clock = new ManualClock(T0);
  let s: TestServer;
  let P: string;
  let room: { id: string; name: string };
  let room2: { id: string; name: string };
  let other: Awaited<ReturnType<TestServer["otherProject"]>>;

  const create = (spec: unknown, extra: Record<string, unknown> = {}, roomName = room.name) =>
    s.http("POST", `${P}/rooms/${encodeURIComponent(roomName)}/scheduled-tasks`, { json: { spec, ...extra } });

  beforeAll(async () => {
    s = await startServer({ clock, env: { MESHAGENT_SCHEDULER_ENABLED: "false" } });
    P = `/accounts/projects/${s.admin.projectId}`;
    room = await createRoom(s.ctx, s.admin.projectId, "sched-room");
    room2 = await createRoom(s.ctx, s.admin.projectId, "other-room");
    other = await s.otherProject();
  });
  afterAll(() => s.close());

  describe("0.39.9 spec form (Python client bodies)", () => {
    it("create_scheduled_task with client_test.py's body answers {task_id}; list_scheduled_tasks returns the spec and the flat mirror", async () => {
      const r = await create(pySpec());
      expect(r.status).toBe(201);
      expect(r.headers.get("content-type")).toMatch(/application\/json/);
      expect(typeof r.json.task_id).toBe("string");
      const l = await s.http("GET", `${P}/scheduled-tasks?task_id=${r.json.task_id}&limit=100&offset=0`);
      expect(l.status).toBe(200);
      expect(l.json.total).toBe(1);
      const t = l.json.tasks[0];
      expectPythonTask(t);
      expect(t).toMatchObject({
        id: r.json.task_id,
        project_id: s.admin.projectId,
        room_id: room.id,
        room_name: room.name,
        spec: pySpec(),
        queue_name: "jobs",
        payload: {},
        container: null,
        schedule: "0 * * * *",
        active: true,
        once: false,
        annotations: {},
        storage_write_path: "scheduled/outbox",
        last_run_id: null,
        last_status: null,
        timezone: "UTC",
        misfire_policy: "run_once",
        catch_up_max: 10,
        next_run_at: "2026-01-15T11:00:00.000Z",
      });
    });

    it("fills the spec's defaults (exclude_none bodies leave them out) and echoes no key the strict model does not know", async () => {
      const r = await create({ schedule: "30 2 * * *", queue: { name: "nightly" } });
      expect(r.status).toBe(201);
      expect(r.json.task.spec).toEqual({
        version: "v1",
        kind: "ScheduledTask",
        metadata: { annotations: {} },
        schedule: "30 2 * * *",
        active: true,
        once: false,
        queue: { name: "nightly", payload: {} },
      });
      expectPythonTask(r.json.task);
      expect(r.json.task.storage_write_path).toBeNull();
    });

    it("accepts a container target (ContainerSpec, private defaults to true) and mirrors it", async () => {
      const container = { image: "img", command: "run", environment: [{ name: "A", value: "1" }], storage: { room: [{ path: "/data" }] } };
      const r = await create({ ...pySpec(), queue: undefined, container });
      expect(r.status).toBe(201);
      const t = (await s.http("GET", `${P}/scheduled-tasks/${r.json.task_id}`)).json;
      expectPythonTask(t);
      expect(t.spec.container).toEqual({ ...container, private: true });
      expect(t.container).toEqual({ ...container, private: true });
      expect(t.queue_name).toBeNull();
    });

    it("update_scheduled_task replaces the whole spec; the schedule restarts only when it changed", async () => {
      const id = (await create(pySpec({ name: "to-update" }))).json.task_id;
      const before = (await s.http("GET", `${P}/scheduled-tasks/${id}`)).json;
      // same schedule, new payload and annotations: next_run_at kept
      const u1 = await s.http("PUT", `${P}/scheduled-tasks/${id}`, {
        json: { spec: pySpec({ name: "to-update", queue: { name: "jobs", payload: { v: 2 } }, annotations: { team: "a" } }) },
      });
      expect(u1.status).toBe(200);
      expectPythonTask(u1.json);
      expect(u1.json).toMatchObject({ payload: { v: 2 }, annotations: { team: "a" }, storage_write_path: null, next_run_at: before.next_run_at });
      // new schedule: next_run_at recomputed; full replace drops what the new spec does not have
      const u2 = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { spec: { schedule: "15 9 * * 1", queue: { name: "weekly" } } } });
      expect(u2.status).toBe(200);
      expect(u2.json).toMatchObject({ schedule: "15 9 * * 1", queue_name: "weekly", payload: {}, annotations: {}, next_run_at: "2026-01-19T09:15:00.000Z" });
      expect(u2.json.spec.metadata).toEqual({ annotations: {} });
      // room_name beside spec moves it
      const u3 = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { spec: u2.json.spec, room_name: room2.name } });
      expect(u3.json).toMatchObject({ room_id: room2.id, room_name: room2.name });
    });

    it("pause and resume through active: paused has no next run; resuming starts from now", async () => {
      const id = (await create(pySpec({ schedule: "*/30 * * * *" }))).json.task_id;
      const p = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { spec: pySpec({ schedule: "*/30 * * * *", active: false }) } });
      expect(p.json).toMatchObject({ active: false, next_run_at: null });
      expect(p.json.spec.active).toBe(false);
      expect((await s.http("GET", `${P}/scheduled-tasks?active=false&task_id=${id}`)).json.total).toBe(1);
      expect((await s.http("GET", `${P}/scheduled-tasks?active=true&task_id=${id}`)).json.total).toBe(0);
      clock.advance(3 * 3600_000);
      try {
        const r = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { active: true } }); // legacy patch works too
        expect(r.json).toMatchObject({ active: true, next_run_at: "2026-01-15T13:30:00.000Z" });
      } finally {
        clock.set(T0);
      }
    });

    it("delete_scheduled_task answers 204, then the task and its runs are gone (404)", async () => {
      const id = (await create(pySpec())).json.task_id;
      const d = await s.http("DELETE", `${P}/scheduled-tasks/${id}`);
      expect(d.status).toBe(204);
      expect(d.text).toBe("");
      expect((await s.http("DELETE", `${P}/scheduled-tasks/${id}`)).status).toBe(404);
      expect((await s.http("GET", `${P}/scheduled-tasks/${id}`)).status).toBe(404);
      expect((await s.http("GET", `${P}/scheduled-tasks/${id}/runs`)).status).toBe(404);
      expect((await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { spec: pySpec() } })).status).toBe(404);
    });

    it("409 when the room already has a task with the same metadata.name; another room may reuse it", async () => {
      expect((await create(pySpec({ name: "daily-report" }))).status).toBe(201);
      const dup = await create(pySpec({ name: "daily-report" }));
      expect(dup.status).toBe(409);
      expect(dup.json.error.message).toMatch(/daily-report.*already exists/);
      expect((await create(pySpec({ name: "daily-report" }), {}, room2.name)).status).toBe(201);
    });

    it("list_scheduled_tasks filters by room_id, active, filter and pages with limit/offset/total", async () => {
      const r = await createRoom(s.ctx, s.admin.projectId, "list-room");
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        clock.advance(1000); // distinct creation times: the list is in creation order
        ids.push((await create(pySpec({ name: `lister-${i}`, active: i !== 4 }), {}, r.name)).json.task_id);
      }
      clock.set(T0);
      const all = await s.http("GET", `${P}/scheduled-tasks?room_id=${r.id}`);
      expect(all.json.total).toBe(5);
      expect(all.json.tasks.map((t: any) => t.id)).toEqual(ids); // creation order
      const page = await s.http("GET", `${P}/scheduled-tasks?room_id=${r.id}&limit=2&offset=2`);
      expect(page.json).toMatchObject({ total: 5 });
      expect(page.json.tasks.map((t: any) => t.id)).toEqual(ids.slice(2, 4));
      expect((await s.http("GET", `${P}/scheduled-tasks?room_id=${r.id}&active=false`)).json.tasks.map((t: any) => t.id)).toEqual([ids[4]]);
      expect((await s.http("GET", `${P}/scheduled-tasks?filter=LISTER-3`)).json.tasks.map((t: any) => t.id)).toEqual([ids[3]]);
      expect((await s.http("GET", `${P}/scheduled-tasks?filter=list-room`)).json.total).toBe(5); // matches the room name
      expect((await s.http("GET", `${P}/scheduled-tasks?room_name=${r.name}`)).json.total).toBe(5); // legacy filter
      expect((await s.http("GET", `${P}/scheduled-tasks?filter=${encodeURIComponent("%")}`)).json.total).toBe(0); // LIKE wildcards are literal
      for (const t of all.json.tasks) expectPythonTask(t);
    });

    it("list_scheduled_task_runs returns {runs, total} newest first, in the ScheduledTaskRun shape", async () => {
      const id = (await create(pySpec({ schedule: "0 */6 * * *", queue: { name: "runs-q", payload: { x: 1 } } }))).json.task_id;
      clock.set(Date.UTC(2026, 0, 15, 12, 0, 5));
      await s.ctx.schedulerEngine.tick();
      clock.set(Date.UTC(2026, 0, 15, 18, 0, 5));
      await s.ctx.schedulerEngine.tick();
      clock.set(T0);
      const r = await s.http("GET", `${P}/scheduled-tasks/${id}/runs?limit=100&offset=0`);
      expect(r.status).toBe(200);
      expect(r.json.total).toBe(2);
      for (const run of r.json.runs) expectPythonRun(run);
      expect(r.json.runs.map((x: any) => x.scheduled_time)).toEqual(["2026-01-15T18:00:00.000Z", "2026-01-15T12:00:00.000Z"]);
      expect(r.json.runs[0]).toMatchObject({
        task_id: id,
        project_id: s.admin.projectId,
        room_id: room.id,
        room_name: room.name,
        target: "queue",
        status: "submitted",
        attempt_count: 1,
        error: null,
      });
      const page = await s.http("GET", `${P}/scheduled-tasks/${id}/runs?limit=1&offset=1`);
      expect(page.json).toMatchObject({ total: 2, runs: [{ scheduled_time: "2026-01-15T12:00:00.000Z" }] });
      const t = (await s.http("GET", `${P}/scheduled-tasks/${id}`)).json;
      expectPythonTask(t);
      expect(t).toMatchObject({ last_run_id: Number(r.json.runs[0].id), last_status: "submitted", last_start_time: "2026-01-15T18:00:05.000Z" });
      expect(t.last_return_message).toMatch(/enqueued message .* into queue "runs-q"/);
    });
  });

  describe("legacy flat form (≤ 0.39.3)", () => {
    it("POST P/scheduled-tasks with the flat body, a chosen id, then the flat patch", async () => {
      const body = {
        id: "legacy-task-1",
        room_name: room.name,
        queue_name: "legacy-q",
        payload: { prompt: "hi" },
        schedule: "0 8 * * *",
        active: true,
        once: false,
        annotations: { k: "v" },
        storage_write_path: "legacy/out",
      };
      const r = await s.http("POST", `${P}/scheduled-tasks`, { json: body });
      expect(r.status).toBe(201);
      expect(r.json.task_id).toBe("legacy-task-1");
      expectPythonTask(r.json.task);
      expect(r.json.task).toMatchObject({
        id: "legacy-task-1",
        room_name: room.name,
        queue_name: "legacy-q",
        payload: { prompt: "hi" },
        annotations: { k: "v" },
        storage_write_path: "legacy/out",
      });
      expect((await s.http("POST", `${P}/scheduled-tasks`, { json: body })).status).toBe(409);

      // patch: only what is sent changes; "" clears storage_write_path
      const u = await s.http("PUT", `${P}/scheduled-tasks/legacy-task-1`, { json: { payload: { prompt: "bye" }, storage_write_path: "" } });
      expect(u.status).toBe(200);
      expect(u.json).toMatchObject({
        payload: { prompt: "bye" },
        storage_write_path: null,
        queue_name: "legacy-q",
        schedule: "0 8 * * *",
        annotations: { k: "v" },
      });
      expect(u.json.spec.queue).toEqual({ name: "legacy-q", payload: { prompt: "bye" } });
      const u2 = await s.http("PUT", `${P}/scheduled-tasks/legacy-task-1`, {
        json: { room_name: room2.name, queue_name: "q2", schedule: "0 9 * * *", active: false, annotations: { z: "1" } },
      });
      expect(u2.json).toMatchObject({
        room_name: room2.name,
        queue_name: "q2",
        schedule: "0 9 * * *",
        active: false,
        annotations: { z: "1" },
        next_run_at: null,
      });
      // list by room_name, the legacy filter
      const l = await s.http("GET", `${P}/scheduled-tasks?room_name=${room2.name}&task_id=legacy-task-1`);
      expect(l.json.total).toBe(1);
      expectPythonTask(l.json.tasks[0]);
    });

    it("flat create without an id gets a UUID; {room_name, spec} works on the flat route too", async () => {
      const r = await s.http("POST", `${P}/scheduled-tasks`, {
        json: { room_name: room.name, queue_name: "q", payload: {}, schedule: "0 * * * *", annotations: {} },
      });
      expect(r.status).toBe(201);
      expect(r.json.task_id).toMatch(/^[0-9a-f-]{36}$/);
      const r2 = await s.http("POST", `${P}/scheduled-tasks`, { json: { room_name: room.name, spec: pySpec() } });
      expect(r2.status).toBe(201);
      expectPythonTask(r2.json.task);
    });
  });

  describe("extensions: time zone, misfire policy, preview", () => {
    it("a time zone in spec.metadata.annotations (so the strict spec still validates) shifts the due times", async () => {
      const r = await create(pySpec({ schedule: "0 9 * * *", annotations: { "meshagent.schedule.timezone": "America/New_York" } }));
      expect(r.status).toBe(201);
      expect(r.json.task).toMatchObject({ timezone: "America/New_York", next_run_at: "2026-01-15T14:00:00.000Z" }); // EST = UTC-5
      expectStrictSpec(r.json.task.spec);
      // preview crosses the US DST change (2026-03-08): 09:00 EDT is 13:00 UTC
      const u = await s.http("PUT", `${P}/scheduled-tasks/${r.json.task_id}`, {
        json: { spec: pySpec({ schedule: "0 9 7-9 3 *", annotations: { "meshagent.schedule.timezone": "America/New_York" } }) },
      });
      expect(u.status).toBe(200);
      const p = await s.http("GET", `${P}/scheduled-tasks/${r.json.task_id}/preview?n=3`);
      expect(p.status).toBe(200);
      expect(p.json).toEqual({
        task_id: r.json.task_id,
        schedule: "0 9 7-9 3 *",
        timezone: "America/New_York",
        active: true,
        once: false,
        next_runs: ["2026-03-07T14:00:00.000Z", "2026-03-08T13:00:00.000Z", "2026-03-09T13:00:00.000Z"],
      });
    });

    it("top-level timezone / misfire_policy / catch_up_max win and are written into the annotations", async () => {
      const r = await create(pySpec({ annotations: { "meshagent.schedule.timezone": "Asia/Tokyo", keep: "me" } }), {
        timezone: "Europe/Berlin",
        misfire_policy: "catch_up",
        catch_up_max: 3,
      });
      expect(r.status).toBe(201);
      expect(r.json.task).toMatchObject({ timezone: "Europe/Berlin", misfire_policy: "catch_up", catch_up_max: 3 });
      expect(r.json.task.annotations).toEqual({
        keep: "me",
        "meshagent.schedule.timezone": "Europe/Berlin",
        "meshagent.schedule.misfire-policy": "catch_up",
        "meshagent.schedule.catch-up-max": "3",
      });
      // a client that reads the task and PUTs its spec back keeps them
      const u = await s.http("PUT", `${P}/scheduled-tasks/${r.json.task_id}`, { json: { spec: r.json.task.spec } });
      expect(u.json).toMatchObject({ timezone: "Europe/Berlin", misfire_policy: "catch_up", catch_up_max: 3 });
      // a legacy annotations patch keeps them unless it sets them
      const u2 = await s.http("PUT", `${P}/scheduled-tasks/${r.json.task_id}`, { json: { annotations: { other: "x" } } });
      expect(u2.json).toMatchObject({ timezone: "Europe/Berlin", misfire_policy: "catch_up", catch_up_max: 3 });
      expect(u2.json.annotations.other).toBe("x");
      expect(u2.json.annotations.keep).toBeUndefined();
    });

    it("preview of a paused task shows when it would run if resumed now; a one-time task has one run", async () => {
      const paused = await create(pySpec({ schedule: "0 12 * * *", active: false }));
      expect((await s.http("GET", `${P}/scheduled-tasks/${paused.json.task_id}/preview`)).json).toMatchObject({
        active: false,
        next_runs: ["2026-01-15T12:00:00.000Z", "2026-01-16T12:00:00.000Z", "2026-01-17T12:00:00.000Z", "2026-01-18T12:00:00.000Z", "2026-01-19T12:00:00.000Z"],
      });
      const once = await create(pySpec({ schedule: "45 23 31 12 *", once: true }));
      expect((await s.http("GET", `${P}/scheduled-tasks/${once.json.task_id}/preview?n=10`)).json.next_runs).toEqual(["2026-12-31T23:45:00.000Z"]);
    });

    it('interval schedules ("<n> minutes|hours|days") count from the creation time', async () => {
      const r = await create(pySpec({ schedule: "90 minutes" }));
      expect(r.status).toBe(201);
      expect(r.json.task.next_run_at).toBe("2026-01-15T11:37:00.000Z");
      const p = await s.http("GET", `${P}/scheduled-tasks/${r.json.task_id}/preview?n=2`);
      expect(p.json.next_runs).toEqual(["2026-01-15T11:37:00.000Z", "2026-01-15T13:07:00.000Z"]);
    });
  });

  describe("bad input: 4xx naming the problem", () => {
    const spec = pySpec();
    const cases: [string, unknown, Record<string, unknown>, RegExp, string?][] = [
      ["bad cron", { ...spec, schedule: "61 * * * *" }, {}, /spec\.schedule: .*minute/, "invalid_schedule"],
      ["6-field cron", { ...spec, schedule: "0 0 * * * *" }, {}, /spec\.schedule: .*5-field/, "invalid_schedule"],
      ["cron that never matches", { ...spec, schedule: "0 0 30 2 *" }, {}, /spec\.schedule: .*never/],
      ["unsupported cron syntax", { ...spec, schedule: "0 0 ? * MON#2" }, {}, /spec\.schedule/],
      ["empty schedule", { ...spec, schedule: " " }, {}, /spec\.schedule must not be empty/],
      ["too frequent cron", { ...spec, schedule: "*/5 * * * *" }, {}, /spec\.schedule: .*every 300 seconds.*900/, "schedule_too_frequent"],
      ["too frequent interval", { ...spec, schedule: "10 minutes" }, {}, /spec\.schedule: .*every 600 seconds/, "schedule_too_frequent"],
      ["zero interval", { ...spec, schedule: "0 minutes" }, {}, /spec\.schedule: .*positive/],
      ["bad time zone field", spec, { timezone: "Mars/Olympus" }, /timezone: "Mars\/Olympus" is not a known IANA time zone/, "invalid_timezone"],
      [
        "bad time zone annotation",
        pySpec({ annotations: { "meshagent.schedule.timezone": "Nowhere/Land" } }),
        {},
        /spec\.metadata\.annotations\["meshagent\.schedule\.timezone"\]/,
        "invalid_timezone",
      ],
      ["bad misfire policy", spec, { misfire_policy: "whenever" }, /misfire_policy must be one of skip, run_once, catch_up/],
      ["bad catch_up_max", spec, { catch_up_max: 0 }, /catch_up_max/],
      ["bad catch-up annotation", pySpec({ annotations: { "meshagent.schedule.catch-up-max": "lots" } }), {}, /catch-up-max.*integer/],
      ["unknown spec key", { ...spec, priority: 1 }, {}, /spec\.priority is not a known field/],
      ["unknown queue key", { ...spec, queue: { name: "q", nme: "x" } }, {}, /spec\.queue\.nme is not a known field/],
      [
        "unknown container key",
        { ...spec, queue: undefined, container: { image: "i", template: "agent" } },
        {},
        /spec\.container\.template is not a known field/,
      ],
      ["container without image", { ...spec, queue: undefined, container: { command: "x" } }, {}, /spec\.container\.image is required/],
      ["both targets", { ...spec, container: { image: "i" } }, {}, /exactly one target/],
      ["no target", { ...spec, queue: undefined }, {}, /exactly one target/],
      ["empty queue name", { ...spec, queue: { name: "  " } }, {}, /spec\.queue\.name/],
      ["payload not an object", { ...spec, queue: { name: "q", payload: [1] } }, {}, /spec\.queue\.payload must be a JSON object/],
      [
        "storage path escaping the room",
        { ...spec, queue: { name: "q", storage_write_path: "a/../../b" } },
        {},
        /storage_write_path must not contain "\." or "\.\." segments/,
      ],
      ["wrong version", { ...spec, version: "v2" }, {}, /spec\.version must be "v1"/],
      ["wrong kind", { ...spec, kind: "Service" }, {}, /spec\.kind must be "ScheduledTask"/],
      ["active not a boolean", { ...spec, active: "yes" }, {}, /spec\.active must be true or false/],
      ["annotation not a string", pySpec({ annotations: { a: 1 as unknown as string } }), {}, /spec\.metadata\.annotations\.a must be a string/],
      ["empty name", { ...spec, metadata: { name: "", annotations: {} } }, {}, /spec\.metadata\.name must not be empty/],
      ["spec not an object", "0 * * * *", {}, /spec must be an object/],
      ["missing spec", undefined, {}, /spec/],
    ];
    for (const [what, body, extra, msg, code] of cases)
      it(`create: ${what}`, async () => {
        const r = await create(body, extra);
        expect(r.status).toBe(400);
        expect(r.json.error.message).toMatch(msg);
        if (code) expect(r.json.error.code).toBe(code);
      });

    const flat: [string, Record<string, unknown>, RegExp][] = [
      ["missing queue_name", { room_name: "sched-room", schedule: "0 * * * *" }, /queue_name is required/],
      ["missing room_name", { queue_name: "q", schedule: "0 * * * *" }, /room_name is required/],
      ["unknown room", { room_name: "ghost", queue_name: "q", schedule: "0 * * * *" }, /room_name: room "ghost" does not exist/],
      ["bad schedule names the flat field", { room_name: "sched-room", queue_name: "q", schedule: "every day" }, /^schedule: /],
      ["too frequent names the flat field", { room_name: "sched-room", queue_name: "q", schedule: "* * * * *" }, /^schedule: .*every 60 seconds/],
      [
        "bad queue name names the flat field",
        { room_name: "sched-room", queue_name: "a\tb", schedule: "0 * * * *" },
        /^queue_name must not contain control characters/,
      ],
      ["bad id", { id: "../x", room_name: "sched-room", queue_name: "q", schedule: "0 * * * *" }, /id must be 1–128 characters/],
      ["payload not an object", { room_name: "sched-room", queue_name: "q", schedule: "0 * * * *", payload: "text" }, /payload/],
      ["spec and flat fields together", { room_name: "sched-room", queue_name: "q", spec: pySpec() }, /either spec or the flat fields/],
    ];
    for (const [what, body, msg] of flat)
      it(`legacy create: ${what}`, async () => {
        const r = await s.http("POST", `${P}/scheduled-tasks`, { json: body });
        expect(r.status).toBe(400);
        expect(r.json.error.message).toMatch(msg);
      });

    it("create in an unknown room is a 404; update checks like create; bad paging and preview n are 400; a malformed body never a 500", async () => {
      const nr = await create(pySpec(), {}, "ghost-room");
      expect(nr.status).toBe(404);
      expect(nr.json.error.message).toMatch(/room not found/);
      const id = (await create(pySpec())).json.task_id;
      const u = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { spec: { ...pySpec(), schedule: "* * * * *" } } });
      expect(u.status).toBe(400);
      expect(u.json.error.code).toBe("schedule_too_frequent");
      const u2 = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { schedule: "bad" } });
      expect(u2.status).toBe(400);
      expect(u2.json.error.message).toMatch(/^schedule: /);
      const u3 = await s.http("PUT", `${P}/scheduled-tasks/${id}`, { json: { room_name: "ghost" } });
      expect(u3.json.error.code).toBe("room_not_found");
      const containerTask = (await create({ ...pySpec(), queue: undefined, container: { image: "i" } })).json.task_id;
      const u4 = await s.http("PUT", `${P}/scheduled-tasks/${containerTask}`, { json: { payload: { a: 1 } } });
      expect(u4.status).toBe(400);
      expect(u4.json.error.message).toMatch(/send queue_name/);
      // nothing changed by the refused updates
      expect((await s.http("GET", `${P}/scheduled-tasks/${id}`)).json.schedule).toBe("0 * * * *");
      expect((await s.http("PUT", `${P}/scheduled-tasks/no-such-task`, { json: { active: false } })).status).toBe(404);
      for (const q of ["limit=-1", "offset=abc", "active=maybe"]) expect((await s.http("GET", `${P}/scheduled-tasks?${q}`)).status, q).toBe(400);
      for (const n of ["0", "101", "x"]) expect((await s.http("GET", `${P}/scheduled-tasks/${id}/preview?n=${n}`)).status, n).toBe(400);
      const bad = await s.http("POST", `${P}/rooms/${room.name}/scheduled-tasks`, { body: "{not json", headers: { "content-type": "application/json" } });
      expect(bad.status).toBe(400);
      expect((await s.http("GET", `/accounts/projects/not-a-uuid/scheduled-tasks`)).status).toBe(400);
    });
  });

  describe("authorization", () => {
    let id: string;
    beforeAll(async () => {
      id = (await create(pySpec())).json.task_id;
    });
    let n = 0;
    const routes = () =>
      [
        ["POST", `/rooms/${room.name}/scheduled-tasks`, () => ({ spec: pySpec({ name: `authz-${n++}` }) })],
        ["POST", `/scheduled-tasks`, () => ({ room_name: room.name, queue_name: "q", schedule: "0 * * * *" })],
        ["PUT", `/scheduled-tasks/${id}`, () => ({ spec: pySpec() })],
        ["GET", `/scheduled-tasks/${id}`, () => undefined],
        ["GET", `/scheduled-tasks`, () => undefined],
        ["GET", `/scheduled-tasks/${id}/runs`, () => undefined],
        ["GET", `/scheduled-tasks/${id}/preview`, () => undefined],
        ["DELETE", `/scheduled-tasks/${id}`, () => undefined],
      ] as const;

    it("no token and a garbage token get 401 on every route", async () => {
      for (const [method, path, body] of routes()) {
        expect((await s.http(method, P + path, { token: null, json: body() })).status, `${method} ${path}`).toBe(401);
        expect((await s.http(method, P + path, { token: "garbage", json: body() })).status, `${method} ${path}`).toBe(401);
      }
    });

    it("another project's key and admin get 404 on every route; through their project our task does not exist", async () => {
      for (const [method, path, body] of routes())
        for (const token of [other.apiKey, other.userToken])
          expect((await s.http(method, P + path, { token, json: body() })).status, `${method} ${path}`).toBe(404);
      const theirs = `/accounts/projects/${other.projectId}`;
      for (const [method, path] of [
        ["GET", `/scheduled-tasks/${id}`],
        ["GET", `/scheduled-tasks/${id}/runs`],
        ["GET", `/scheduled-tasks/${id}/preview`],
        ["DELETE", `/scheduled-tasks/${id}`],
      ] as const)
        expect((await s.http(method, theirs + path, { token: other.apiKey })).status, path).toBe(404);
      expect((await s.http("PUT", `${theirs}/scheduled-tasks/${id}`, { token: other.apiKey, json: { spec: pySpec() } })).status).toBe(404);
      // our room cannot be targeted from their project, nor listed there
      expect((await s.http("POST", `${theirs}/rooms/${room.name}/scheduled-tasks`, { token: other.apiKey, json: { spec: pySpec() } })).status).toBe(404);
      expect((await s.http("GET", `${theirs}/scheduled-tasks?task_id=${id}`, { token: other.apiKey })).json).toEqual({ tasks: [], total: 0 });
      expect((await s.http("GET", `${P}/scheduled-tasks/${id}`)).status).toBe(200); // still ours
    });

    it("a member gets 403; a developer and an admin user may manage scheduled tasks; API keys act as admins", async () => {
      const member = await s.user({});
      for (const [method, path, body] of routes())
        expect((await s.http(method, P + path, { token: member.token, json: body() })).status, `${method} ${path}`).toBe(403);
      const stranger = await s.user(null);
      expect((await s.http("GET", `${P}/scheduled-tasks`, { token: stranger.token })).status).toBe(404);
      for (const flags of [{ is_developer: true }, { is_admin: true }]) {
        const u = await s.user(flags);
        const c = await s.http("POST", `${P}/rooms/${room.name}/scheduled-tasks`, { token: u.token, json: { spec: pySpec() } });
        expect(c.status).toBe(201);
        const tid = c.json.task_id;
        expect((await s.http("PUT", `${P}/scheduled-tasks/${tid}`, { token: u.token, json: { active: false } })).status).toBe(200);
        expect((await s.http("GET", `${P}/scheduled-tasks?task_id=${tid}`, { token: u.token })).json.total).toBe(1);
        expect((await s.http("GET", `${P}/scheduled-tasks/${tid}/runs`, { token: u.token })).status).toBe(200);
        expect((await s.http("DELETE", `${P}/scheduled-tasks/${tid}`, { token: u.token })).status).toBe(204);
      }
    });
  });

  it("deleting the room deletes its tasks", async () => {
    const r = await createRoom(s.ctx, s.admin.projectId, "doomed-room");
    const id = (await create(pySpec(), {}, r.name)).json.task_id;
    await deleteRoom(s.ctx, r.id);
    expect((await s.http("GET", `${P}/scheduled-tasks/${id}`)).status).toBe(404);
  });

  it("is in the OpenAPI document", async () => {
    const o = await s.http("GET", "/openapi.json", { token: null });
    expect(Object.keys(o.json.paths)).toEqual(
      expect.arrayContaining([
        "/accounts/projects/{project_id}/rooms/{room_name}/scheduled-tasks",
        "/accounts/projects/{project_id}/scheduled-tasks",
        "/accounts/projects/{project_id}/scheduled-tasks/{task_id}",
        "/accounts/projects/{project_id}/scheduled-tasks/{task_id}/runs",
        "/accounts/projects/{project_id}/scheduled-tasks/{task_id}/preview",
      ]),
    );
    const schemas = Object.values(o.json.components.schemas) as { description?: string; properties?: object }[];
    const task = schemas.find((x) => x.description?.includes("flat mirror"));
    expect(Object.keys(task?.properties ?? {})).toEqual(expect.arrayContaining(["spec", "queue_name", "payload", "schedule", "timezone", "next_run_at"]));
  });
});
