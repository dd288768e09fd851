import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { dialectName, startServer, type TestServer } from "./helpers/server.js";
import { createRoom } from "./helpers/rooms.js";
import { ManualClock } from "../src/core/clock.js";
import { createContext } from "../src/wiring.js";
import { SchedulerEngine } from "../src/scheduler/engine.js";
import { DetachedAttachmentSink } from "../src/mail/attachments.js";
import type { AppContext } from "../src/context.js";

// Two engines on one database, 1000 tasks due at once: every task fires exactly once. On PostgreSQL the engines live in
// two contexts (two connection pools, as two server processes would have) and claim with FOR UPDATE SKIP LOCKED; on
// SQLite (one process, one writer) they share the store.
describe(`two engines, 1000 due tasks (${dialectName})`, () => {
  const N = 1000;
  const clock = new ManualClock(Date.parse("2026-01-15T10:07:00Z"));
  let s: TestServer;
  let second: (AppContext & { close(): Promise<void> }) | undefined;
  let rooms: { id: string; name: string }[];

  beforeAll(async () => {
    s = await startServer({ clock, env: { MESHAGENT_SCHEDULER_ENABLED: "false" } });
    if (dialectName === "postgres") second = await createContext(s.config, { clock });
    rooms = [];
    for (let i = 0; i < 10; i++) rooms.push(await createRoom(s.ctx, s.admin.projectId, `multi-${i}`));
    // One task through the service, then 999 copies of its row in one transaction (lean setup for a big test).
    const t = await s.ctx.scheduler.createInRoom(s.admin.projectId, rooms[0].name, {
      spec: { schedule: "0 11 * * *", queue: { name: "multi", payload: { n: 0 } } },
    });
    const row = await s.ctx.store.db.selectFrom("scheduled_tasks").selectAll().where("id", "=", t.id).executeTakeFirstOrThrow();
    const copies = Array.from({ length: N - 1 }, (_, i) => {
      const spec = JSON.parse(row.spec);
      spec.queue.payload = { n: i + 1 };
      return { ...row, id: randomUUID(), room_id: rooms[(i + 1) % rooms.length].id, spec: JSON.stringify(spec) };
    });
    await s.ctx.store.db.transaction().execute(async (tx) => {
      for (let i = 0; i < copies.length; i += 200)
        await tx
          .insertInto("scheduled_tasks")
          .values(copies.slice(i, i + 200))
          .execute();
    });
  });
  afterAll(async () => {
    await second?.close();
    await s.close();
  });

  it("each task fires exactly once, and both engines take a share", async () => {
    const mk = (ctx: AppContext) =>
      new SchedulerEngine(ctx.store, clock, ctx.queues, ctx.bus, new DetachedAttachmentSink(ctx.storage), s.config.scheduler, { batchSize: 25 });
    const e1 = mk(s.ctx);
    const e2 = mk(second ?? s.ctx);
    clock.set(Date.parse("2026-01-15T11:00:00Z"));
    const [r1, r2] = await Promise.all([e1.tick(), e2.tick()]);
    expect(r1.runs + r2.runs).toBe(N);
    expect(r1.failed + r2.failed).toBe(0);
    if (dialectName === "postgres") {
      expect(r1.runs).toBeGreaterThan(0);
      expect(r2.runs).toBeGreaterThan(0);
    }
    // a second round at the same time finds nothing due
    const [again1, again2] = await Promise.all([e1.tick(), e2.tick()]);
    expect(again1.runs + again2.runs).toBe(0);

    const perTask = await s.ctx.store.db
      .selectFrom("scheduled_task_runs")
      .select(["task_id", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("task_id")
      .execute();
    expect(perTask).toHaveLength(N);
    expect(perTask.every((r) => Number(r.n) === 1)).toBe(true);
    const payloads: number[] = [];
    for (const room of rooms) for (const m of await s.ctx.queues.peek<{ n: number }>(room.id, "multi", 10_000)) payloads.push(m.message.n);
    expect(payloads).toHaveLength(N);
    expect(new Set(payloads).size).toBe(N);
    const next = await s.ctx.store.db.selectFrom("scheduled_tasks").select("next_run_at").distinct().execute();
    expect(next.map((r) => Number(r.next_run_at))).toEqual([Date.parse("2026-01-16T11:00:00Z")]);
  });
});
