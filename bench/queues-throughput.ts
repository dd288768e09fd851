/**
 * Room queue benchmark. Run: `npx tsx bench/queues-throughput.ts` (SQLite in a temp dir), or with
 * `MESHAGENT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres` (a fresh database is created on that server and
 * dropped afterwards). `BENCH_N` sets the message count (default 2000).
 *
 * Prints ratios against baselines measured in the same run:
 *  1. send + receive + ack through ctx.queues vs the bare minimum a durable queue needs (insert a row, then
 *     delete the oldest row) on a scratch table of the same store: the queue's overhead.
 *  2. 8 concurrent receivers vs 1 (on PostgreSQL, SKIP LOCKED lets them work in parallel).
 *  3. the cost of a claim at depth 10 000 (half of them claimed, at the head) vs at depth 10: the claim stays indexed.
 *  4. SMTP delivery (nodemailer over loopback, parse, enqueue, 250) vs a bare queue send of the same message.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { sql } from "kysely";
import nodemailer from "nodemailer";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";

const PG = /^postgres(ql)?:/.test(process.env.MESHAGENT_DATABASE_URL ?? "") ? process.env.MESHAGENT_DATABASE_URL : undefined;
const N = Number(process.env.BENCH_N || 2000);

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "meshagent-bench-"));
  let dbUrl = `sqlite://${join(dir, "bench.db")}`;
  let dropDb = async () => {};
  if (PG) {
    const name = `bench_${randomBytes(4).toString("hex")}`;
    const c = new pg.Client({ connectionString: PG });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    const u = new URL(PG);
    u.pathname = `/${name}`;
    dbUrl = u.toString();
    dropDb = async () => {
      const d = new pg.Client({ connectionString: PG });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    };
  }
  const config = loadConfig({ MESHAGENT_DATA_DIR: dir, MESHAGENT_DATABASE_URL: dbUrl, MESHAGENT_SMTP_PORT: "0", MESHAGENT_LOG_LEVEL: "warn" });
  const ctx = await createContext(config);
  try {
    const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
    const roomId = randomUUID();
    const now = Date.now();
    await ctx.store.db
      .insertInto("rooms")
      .values({ id: roomId, project_id: b.project_id, name: "bench", metadata: "{}", annotations: "{}", created_at: now, updated_at: now })
      .execute();
    const body = JSON.stringify({ subject: "hello", text: "x".repeat(200) });
    const q = ctx.queues;
    const db = ctx.store.db;
    console.log(`store: ${ctx.store.dialect}, ${N} messages`);

    // 1. Baseline: insert, then delete the oldest row, on a scratch table with a comparable index.
    await sql`CREATE TABLE bench_raw (seq ${sql.raw(ctx.store.dialect === "postgres" ? "bigserial PRIMARY KEY" : "integer PRIMARY KEY AUTOINCREMENT")}, id text NOT NULL, q text NOT NULL, body text NOT NULL)`.execute(
      db,
    );
    await sql`CREATE INDEX bench_raw_q ON bench_raw (q, seq)`.execute(db);
    let t = performance.now();
    for (let i = 0; i < N; i++) await sql`INSERT INTO bench_raw (id, q, body) VALUES (${randomUUID()}, 'q', ${body})`.execute(db);
    for (let i = 0; i < N; i++) await sql`DELETE FROM bench_raw WHERE seq = (SELECT seq FROM bench_raw WHERE q = 'q' ORDER BY seq LIMIT 1)`.execute(db);
    const rawRate = N / ((performance.now() - t) / 1000);

    t = performance.now();
    for (let i = 0; i < N; i++) await q.send(roomId, "q1", { i, body });
    const tSend = performance.now() - t;
    for (let i = 0; i < N; i++) {
      const m = await q.receive(roomId, "q1");
      await q.ack(m!);
    }
    if (process.env.BENCH_DEBUG)
      console.log(`  send ${(N / (tSend / 1000)).toFixed(0)}/s, receive+ack ${(N / ((performance.now() - t - tSend) / 1000)).toFixed(0)}/s`);
    const queueRate = N / ((performance.now() - t) / 1000);
    console.log(
      `send+receive+ack: ${queueRate.toFixed(0)} msg/s; baseline insert+delete-oldest: ${rawRate.toFixed(0)} msg/s; ratio ${(queueRate / rawRate).toFixed(2)}`,
    );

    // 2. Concurrent receivers.
    const drainWith = async (workers: number, name: string) => {
      await db.transaction().execute(async (tx) => {
        for (let i = 0; i < N; i++) await q.enqueue(tx, roomId, name, { i });
      });
      const start = performance.now();
      let got = 0;
      await Promise.all(
        Array.from({ length: workers }, async () => {
          for (let m; (m = await q.receive(roomId, name));) {
            await q.ack(m);
            got++;
          }
        }),
      );
      if (got !== N) throw new Error(`expected ${N}, got ${got}`);
      return N / ((performance.now() - start) / 1000);
    };
    const one = await drainWith(1, "c1");
    const eight = await drainWith(8, "c8");
    console.log(`receive+ack with 8 receivers: ${eight.toFixed(0)} msg/s; baseline 1 receiver: ${one.toFixed(0)} msg/s; ratio ${(eight / one).toFixed(2)}`);

    // 3. Claim cost at depth.
    const claimCost = async (name: string, depth: number, inflight: number, samples: number) => {
      await db.transaction().execute(async (tx) => {
        for (let i = 0; i < depth; i++) await q.enqueue(tx, roomId, name, { i });
      });
      for (let i = 0; i < inflight; i++) await q.receive(roomId, name, { visibilityMs: 3_600_000 });
      const start = performance.now();
      for (let i = 0; i < samples; i++) await q.receive(roomId, name, { visibilityMs: 3_600_000 });
      return (performance.now() - start) / samples;
    };
    const shallow = await claimCost("shallow", 10 + 200, 0, 200);
    const deep = await claimCost("deep", 10_000, 5_000, 200);
    console.log(
      `claim at depth 10000 (5000 in flight at the head): ${(deep * 1000).toFixed(0)} µs; baseline depth 10: ${(shallow * 1000).toFixed(0)} µs; ratio ${(deep / shallow).toFixed(2)}`,
    );

    // 4. SMTP delivery vs a bare send of the same message.
    await ctx.mail.start();
    await db
      .insertInto("mailboxes")
      .values({
        id: randomUUID(),
        address: "bench@bench.example",
        address_lower: "bench@bench.example",
        project_id: b.project_id,
        room_id: roomId,
        queue: "mail",
        public: 1,
        annotations: "{}",
        created_at: now,
        updated_at: now,
      })
      .execute();
    const M = Math.max(50, Math.floor(N / 10));
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: ctx.mail.port!,
      secure: false,
      ignoreTLS: true,
      pool: true,
      maxConnections: 1,
    } as never);
    t = performance.now();
    for (let i = 0; i < M; i++) await transport.sendMail({ from: "x@outside.example", to: "bench@bench.example", subject: `m${i}`, text: "x".repeat(200) });
    const smtpRate = M / ((performance.now() - t) / 1000);
    transport.close();
    t = performance.now();
    for (let i = 0; i < M; i++) await q.send(roomId, "bare", { subject: `m${i}`, text: "x".repeat(200) });
    const bareRate = M / ((performance.now() - t) / 1000);
    const delivered = (await q.list(roomId)).find((x) => x.name === "mail")?.size;
    if (delivered !== M) throw new Error(`expected ${M} mails, got ${delivered}`);
    console.log(`SMTP delivery: ${smtpRate.toFixed(0)} msg/s; baseline queue send: ${bareRate.toFixed(0)} msg/s; ratio ${(smtpRate / bareRate).toFixed(3)}`);
  } finally {
    await ctx.close();
    await dropDb();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
