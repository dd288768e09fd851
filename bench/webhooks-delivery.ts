/**
 * Webhook delivery throughput and latency.
 *
 *   npx tsx bench/webhooks-delivery.ts                 # SQLite (temp dir)
 *   MESHAGENT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/webhooks-delivery.ts
 *
 * Events are published the way areas do (ctx.bus in a transaction, one transaction per event) to a webhook whose
 * receiver is a local HTTP server. Three phases:
 *  1. drain: 10k events wait in the outbox, then the dispatcher starts: deliveries/s of the dispatcher alone;
 *  2. burst: 10k events published as fast as possible while the dispatcher runs in the same thread: deliveries/s
 *     end to end and the publish → arrival latency (mostly queueing, since publishing outpaces delivery);
 *  3. paced: 2000 events at 500/s, below saturation: p50/p99 from publish to arrival.
 * Baseline, in the same run: the same receiver hit by a plain loop of fetches (same concurrency, no store, no
 * signing). The ratio is webhook deliveries/s over baseline requests/s.
 */
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { inTx } from "../src/store/db.js";

const N = Number(process.env.BENCH_EVENTS || 10_000);
const CONCURRENCY = 64;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  // The receiver: answers 200 at once and records when each event arrived.
  const arrivals = new Map<number, number>();
  let count = 0;
  let dupes = 0;
  let onCount: (() => void) | null = null;
  let target = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const t = performance.now();
      const body = Buffer.concat(chunks).toString();
      const m = /"i": (\d+)/.exec(body);
      if (m) {
        const i = Number(m[1]);
        if (arrivals.has(i)) dupes++;
        else arrivals.set(i, t);
      }
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok": true}');
      if (++count === target) onCount?.();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}/webhook`;
  const reached = (n: number) => new Promise<void>((r) => ((target = n), (onCount = r), count >= n && r()));

  // Baseline: a plain loop of fetches with the same concurrency.
  const baselineBody = JSON.stringify({ event: "baseline", data: { i: -1 } });
  count = 0;
  const bDone = reached(N);
  const b0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        next++;
        const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: baselineBody });
        await r.text();
      }
    }),
  );
  await bDone;
  const baselineRps = N / ((performance.now() - b0) / 1000);

  // The server's outbox and dispatcher.
  const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-wh-"));
  const pgBase = /^postgres/.test(process.env.MESHAGENT_DATABASE_URL ?? "") ? process.env.MESHAGENT_DATABASE_URL : undefined;
  let dbUrl = `sqlite://${join(dataDir, "meshagent.db")}`;
  let dbName = "";
  if (pgBase) {
    dbName = `bench_${randomBytes(4).toString("hex")}`;
    const c = new pg.Client({ connectionString: pgBase });
    await c.connect();
    await c.query(`CREATE DATABASE ${dbName}`);
    await c.end();
    const u = new URL(pgBase);
    u.pathname = `/${dbName}`;
    dbUrl = u.toString();
  }
  const ctx = await createContext(
    loadConfig({
      MESHAGENT_DATA_DIR: dataDir,
      MESHAGENT_DATABASE_URL: dbUrl,
      MESHAGENT_LOG_LEVEL: "warn",
      MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
      MESHAGENT_WEBHOOK_CONCURRENCY: String(CONCURRENCY),
    }),
  );
  const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
  await ctx.webhooks.create(b.project_id, { name: "bench", url, events: ["room.updated"] });
  const publish = async (i: number, room: string) => {
    const after = await inTx(ctx.store.db, (tx) =>
      ctx.bus.publish(tx, { type: "room.updated", project_id: b.project_id, data: { id: "r", room_name: room, i } }),
    );
    after();
  };

  // Phase 1, drain: 10k events wait in the outbox (one transaction each), then the dispatcher starts and sends them.
  const q0 = performance.now();
  for (let i = 0; i < N; i++) await publish(i, "backlog");
  const enqueueRate = N / ((performance.now() - q0) / 1000);
  arrivals.clear();
  count = 0;
  dupes = 0;
  const drained = reached(N);
  const d0 = performance.now();
  await ctx.webhookDispatcher.start();
  await drained;
  const drainRate = N / ((performance.now() - d0) / 1000);
  await ctx.webhookDispatcher.idle();
  const drainArrived = arrivals.size;
  const drainDupes = dupes;

  // Phase 2, burst: 10k events published as fast as possible while the dispatcher runs (same thread).
  arrivals.clear();
  count = 0;
  dupes = 0;
  const done = reached(N);
  const published: number[] = new Array(N);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    published[i] = performance.now();
    await publish(i, "burst");
  }
  const publishSecs = (performance.now() - t0) / 1000;
  await done;
  const secs = (performance.now() - t0) / 1000;
  await ctx.webhookDispatcher.idle();
  const latencies = [...arrivals.entries()].map(([i, t]) => t - published[i]);
  const burstArrived = arrivals.size;
  const burstDupes = dupes;
  const rate = N / secs;
  const dialect = ctx.store.dialect;

  // Latency below saturation: events paced at a fixed rate (the burst above measures queueing, not the path).
  const PACED = Math.min(N, 2000);
  const RATE = 500; // events per second
  arrivals.clear();
  count = 0;
  const pacedDone = reached(PACED);
  const pacedPub: number[] = new Array(PACED);
  const p0 = performance.now();
  for (let i = 0; i < PACED; i++) {
    const due = p0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pacedPub[i] = performance.now();
    await publish(i, "paced");
  }
  await pacedDone;
  const pacedLat = [...arrivals.entries()].map(([i, t]) => t - pacedPub[i]);

  await ctx.webhookDispatcher.idle();
  const delivered = await ctx.store.db
    .selectFrom("webhook_deliveries")
    .select((e) => e.fn.countAll<number>().as("n"))
    .where("status", "=", "delivered")
    .executeTakeFirstOrThrow();
  const failedAttempts = await ctx.store.db
    .selectFrom("webhook_attempts")
    .select((e) => e.fn.countAll<number>().as("n"))
    .where("error", "is not", null)
    .executeTakeFirstOrThrow();
  console.log(
    `webhooks-delivery ${dialect}: drain of a ${N}-event backlog: deliveries/s = ${drainRate.toFixed(0)} (${drainArrived} delivered, ${drainDupes} duplicates; enqueueing them, one transaction each: ${enqueueRate.toFixed(0)} events/s)`,
  );
  console.log(
    `webhooks-delivery ${dialect}: burst of ${N} events published while delivering: deliveries/s = ${rate.toFixed(0)} (${burstArrived} delivered, ${burstDupes} duplicates; publishing alone ${(N / publishSecs).toFixed(0)} events/s), queued event→delivery p50 = ${pct(latencies, 50).toFixed(0)} ms, p99 = ${pct(latencies, 99).toFixed(0)} ms`,
  );
  console.log(
    `webhooks-delivery ${dialect}: paced ${PACED} events at ${RATE}/s: event→delivery p50 = ${pct(pacedLat, 50).toFixed(1)} ms, p99 = ${pct(pacedLat, 99).toFixed(1)} ms, max = ${pct(pacedLat, 100).toFixed(1)} ms (${delivered.n} rows delivered in all; ${failedAttempts.n} attempts failed, e.g. timed out, and were retried: the only source of duplicates)`,
  );
  console.log(`baseline: plain fetch loop to the same receiver (concurrency ${CONCURRENCY}) = ${baselineRps.toFixed(0)} requests/s`);
  console.log(
    `ratio: drain deliveries/s ÷ baseline requests/s = ${(drainRate / baselineRps).toFixed(2)}; burst ÷ baseline = ${(rate / baselineRps).toFixed(2)}`,
  );

  await ctx.close();
  server.closeAllConnections();
  server.close();
  rmSync(dataDir, { recursive: true, force: true });
  if (dbName) {
    const c = new pg.Client({ connectionString: pgBase });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await c.end();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
