// 10k scheduled tasks due in the same minute: how late is each run (due time → run committed), and are there
// duplicates? Baseline in the same run: the same number of plain queue sends (ctx.queues.send, one transaction each),
// which is what a naive scheduler would do at least.
//
//   npx tsx bench/scheduler-due.ts                                   # SQLite, 10000 tasks, one engine
//   npx tsx bench/scheduler-due.ts --postgres postgres://postgres@127.0.0.1:5432/postgres --engines 2
//   options: --tasks N (default 10000), --rooms N (default 100)
//
// Every task is a cron task whose next due time is the same minute boundary T, in a mix of expressions and time zones.
// The engines run their normal loop on the system clock (they sleep until T); lag = the moment the run's
// scheduled_task.run.succeeded event is delivered after its commit − T.
import pg from "pg";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const TASKS = Number(arg("tasks", "10000"));
const ROOMS = Number(arg("rooms", "100"));
const PG = arg("postgres", "");
const ENGINES = Number(arg("engines", "1"));

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "meshagent-bench-"));
  let dbUrl = `sqlite://${join(dir, "meshagent.db")}`;
  let dropDb = async () => {};
  if (PG) {
    const name = `bench_${randomBytes(4).toString("hex")}`;
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(PG);
    u.pathname = `/${name}`;
    dbUrl = u.toString();
    dropDb = async () => {
      const c = new pg.Client({ connectionString: PG });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  } else if (ENGINES > 1) throw new Error("several engines need PostgreSQL (--postgres URL)");

  const config = loadConfig({ MESHAGENT_DATA_DIR: dir, MESHAGENT_DATABASE_URL: dbUrl, MESHAGENT_LOG_LEVEL: "warn" });
  const ctxs = [await createContext(config)];
  for (let i = 1; i < ENGINES; i++) ctxs.push(await createContext(config));
  const ctx = ctxs[0];
  try {
    const { project_id } = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
    const now0 = Date.now();
    const rooms: { id: string; name: string }[] = [];
    for (let i = 0; i < ROOMS; i++) rooms.push({ id: randomUUID(), name: `room-${i}` });
    await ctx.store.db
      .insertInto("rooms")
      .values(rooms.map((r) => ({ ...r, project_id, metadata: "{}", annotations: "{}", created_at: now0, updated_at: now0 })))
      .execute();

    // --- baseline: plain queue sends --------------------------------------------------------------------------------
    let t0 = performance.now();
    for (let i = 0; i < TASKS; i++) await ctx.queues.send(rooms[i % ROOMS].id, "baseline", { task: i });
    const baselineMs = performance.now() - t0;

    // --- tasks, all due at the next minute boundary at least 20 s (plus setup time) away ---------------------------
    const setupGuess = Number(arg("setup-ms", PG ? "60000" : "30000"));
    const T = Math.ceil((Date.now() + setupGuess + 20_000) / 60_000) * 60_000;
    const m = new Date(T).getUTCMinutes();
    const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Los_Angeles"];
    const exprs = [`${m} * * * *`, `${m},${(m + 30) % 60} * * * *`, `${m} */1 * * *`, `${m} * * * 0-6`, `${m} * 1-31 * *`];
    t0 = performance.now();
    for (let i = 0; i < TASKS; i++) {
      const room = rooms[i % ROOMS];
      await ctx.scheduler.createInRoom(project_id, room.name, {
        spec: { schedule: exprs[i % exprs.length], queue: { name: "jobs", payload: { task: i } } },
        timezone: zones[Math.floor(i / exprs.length) % zones.length],
      });
    }
    const setupMs = performance.now() - t0;
    const dueRows = await ctx.store.db
      .selectFrom("scheduled_tasks")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("next_run_at", "=", T)
      .executeTakeFirst();
    if (Number(dueRows?.n) !== TASKS) throw new Error(`only ${dueRows?.n} of ${TASKS} tasks are due at ${new Date(T).toISOString()}`);
    if (Date.now() > T - 2000) throw new Error("setup took too long; the due time passed: raise setupGuess");

    // --- fire: the engines' own loops, on the system clock --------------------------------------------------------
    const lags: number[] = [];
    let failed = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    for (const c of ctxs)
      c.bus.on((e) => {
        if (e.type === "scheduled_task.run.succeeded") lags.push(Date.now() - T);
        else if (e.type === "scheduled_task.run.failed") failed++;
        if (lags.length + failed >= TASKS) done();
      });
    for (const c of ctxs) c.schedulerEngine.start({ warn: (o, m) => console.warn(m, o), error: (o, m) => console.error(m, o) });
    const timeout = setTimeout(() => done(), Math.max(0, T - Date.now()) + 120_000);
    await all;
    clearTimeout(timeout);
    for (const c of ctxs) await c.schedulerEngine.stop();

    // --- duplicates: runs per task and messages per task ------------------------------------------------------------
    const runsPerTask = await ctx.store.db
      .selectFrom("scheduled_task_runs")
      .select(["task_id", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("task_id")
      .having((eb) => eb.fn.countAll(), ">", 1)
      .execute();
    const msgs = await ctx.store.db
      .selectFrom("queue_messages")
      .innerJoin("room_queues", "room_queues.id", "queue_messages.queue_id")
      .select(["queue_messages.body"])
      .where("room_queues.name", "=", "jobs")
      .execute();
    const distinct = new Set(msgs.map((r) => r.body)).size;
    const dupRuns = runsPerTask.reduce((a, r) => a + Number(r.n) - 1, 0);
    const dupMessages = msgs.length - distinct;

    lags.sort((a, b) => a - b);
    const lastMs = lags[lags.length - 1];
    const store = PG ? `postgres, ${ENGINES} engine(s)` : "sqlite, 1 engine";
    console.log(
      `scheduler-due (${store}): ${TASKS} tasks due at ${new Date(T).toISOString()} in ${ROOMS} rooms, ${exprs.length} cron forms × ${zones.length} time zones`,
    );
    console.log(`  setup: ${TASKS} create_scheduled_task calls in ${(setupMs / 1000).toFixed(1)} s`);
    console.log(`  baseline: ${TASKS} queue sends (one transaction each) in ${baselineMs.toFixed(0)} ms = ${((TASKS / baselineMs) * 1000).toFixed(0)}/s`);
    console.log(
      `  scheduler: ${lags.length} runs recorded (${failed} failed), lag from due time min ${lags[0]} ms, p50 ${pct(lags, 50)} ms, p99 ${pct(lags, 99)} ms, max ${lastMs} ms = ${((lags.length / lastMs) * 1000).toFixed(0)} runs/s`,
    );
    console.log(`  duplicates: ${dupRuns} runs, ${dupMessages} messages (${msgs.length} messages for ${distinct} tasks)`);
    console.log(`  ratio: scheduler time to fire all / baseline time to send as many = ${(lastMs / baselineMs).toFixed(2)} (below 1: faster than plain sends)`);
    console.log(`  within 5 s of due time: ${lags.filter((l) => l <= 5000).length}/${TASKS}`);
  } finally {
    for (const c of ctxs) await c.close();
    await dropDb();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
