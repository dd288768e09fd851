/**
 * Usage records at scale: get_usage by day over 90 days, and the pricing job, on SQLite and on PostgreSQL.
 *
 *   node --import tsx bench/usage.ts [sqlite|postgres|both]      (default both)
 *     --records N    usage records to load (default 10000000)
 *     --requests N   measured get_usage requests (default 400; plus one warm-up request per project)
 *     --hours N      consecutive hours the pricing job prices (default 48)
 *     --keep         keep the database (and data dir) at the end, for EXPLAIN; prints where they are
 *   MESHAGENT_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   (a role that may CREATE DATABASE)
 *
 * For each store: a fresh database (a temp SQLite file; a PostgreSQL database bench_usage_* created here and dropped at
 * the end), one bootstrapped user owning 100 projects (ctx.projects.create), then N usage records spread evenly over
 * 90 days (2026-01-01 → 2026-04-01) and the 100 projects, in time order, bulk-loaded on a connection of the loader's own
 * (SQLite: multi-row INSERTs of 500 rows in transactions of 500k, synchronous=OFF; PostgreSQL: COPY FROM STDIN through
 * pg, 500k rows per COPY, synchronous_commit=off), with the table's indexes in place, then ANALYZE (VACUUM ANALYZE on
 * PostgreSQL, which also sets the visibility map that index-only scans need).
 * The mix: room/participant_second 30%, api/request 30%, tool_calls/call 15%, container/container_second 10%,
 * llm/input_token 15% (3 provider/models); 5 rooms and 10 users per project.
 *
 *  1. get_usage (interval=day, the 90 days) through the real server — first from the raw records, then once the rollup
 *     job (ctx.billingEngine.rollClosedHours, timed) has summed every closed hour into usage_hourly — (a child process, billing job off, rate limits
 *     off) with a user token, one request at a time over keep-alive, timed per request, round-robin over the 100
 *     projects in shuffled rounds. Baseline in the same run, interleaved request by request: the bare
 *     `SELECT (recorded_at / 86400000) AS day, usage_type, unit, SUM(quantity) … GROUP BY 1,2,3` for the same project
 *     and range on a connection of this process (a prepared statement). Goal: p99 <= 100 ms.
 *  2. The pricing job: ctx.billingEngine.pricePeriod over `--hours` consecutive hours from day 45 (records priced per
 *     second), against the bare per-hour `SELECT project_id, usage_type, unit, provider, model, SUM(quantity),
 *     COUNT(*) … GROUP BY …` of the same hours, interleaved hour by hour (after one unmeasured pass over those hours).
 */
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { once } from "node:events";
import pg from "pg";
import { sql } from "kysely";
import SQLite from "better-sqlite3";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { spawnServer } from "../test/helpers/process.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const RECORDS = Number(arg("records", "10000000"));
const REQUESTS = Number(arg("requests", "400"));
const HOURS = Number(arg("hours", "48"));
const KEEP = process.argv.includes("--keep");
const PG_ADMIN = process.env.MESHAGENT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const PROJECTS = 100;
const HOUR = 3600_000;
const DAY = 24 * HOUR;
const DAYS = 90;
const START = Date.UTC(2026, 0, 1);
const END = START + DAYS * DAY;
const TX_ROWS = 500_000;
const progress = (m: string) => process.stderr.write(`[usage] ${m}\n`);

function rng(seed: number) {
  // mulberry32
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const f = (x: number) => x.toFixed(2);
const rate = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString("en-US");

/** One usage record as the 12 columns the loader inserts (id is generated). */
type Row = [string, string, string, number, string | null, string | null, string | null, string | null, string | null, string | null, string | null, number];
const COLUMNS = "project_id, usage_type, unit, quantity, room_name, user_id, role, provider, model, client, annotations, recorded_at";
const MODELS: [string, string][] = [
  ["openai", "gpt-4o"],
  ["openai", "gpt-4o-mini"],
  ["anthropic", "claude-sonnet-4"],
];

/** Record i of N: time-ordered over the 90 days, a uniformly drawn project, the mix above. */
function* records(projects: string[], apiKeyIds: string[], n: number): Generator<Row> {
  const r = rng(42);
  const span = END - START;
  for (let i = 0; i < n; i++) {
    const t = START + Math.floor(((i + r()) * span) / n);
    const p = Math.floor(r() * projects.length);
    const pid = projects[p];
    const room = `room-${Math.floor(r() * 5)}`;
    const user = `user-${Math.floor(r() * 10)}`;
    const k = r();
    const ann = r() < 0.05 ? '{"env":"prod"}' : null;
    if (k < 0.3) yield [pid, "room", "participant_second", 1 + Math.floor(r() * 3600), room, user, r() < 0.8 ? "user" : "agent", null, null, null, ann, t];
    else if (k < 0.6)
      yield [pid, "api", "request", 1 + Math.floor(r() * 50), null, user, null, null, null, r() < 0.5 ? `api_key:${apiKeyIds[p]}` : `user:${user}`, null, t];
    else if (k < 0.75) yield [pid, "tool_calls", "call", 1 + Math.floor(r() * 10), room, user, "agent", null, null, null, ann, t];
    else if (k < 0.85) yield [pid, "container", "container_second", 60 + Math.floor(r() * 3540), room, null, null, null, null, null, ann, t];
    else {
      const [provider, model] = MODELS[Math.floor(r() * MODELS.length)];
      yield [pid, "llm", "input_token", 100 + Math.floor(r() * 20000), room, user, "agent", provider, model, null, ann, t];
    }
  }
}

async function loadSqlite(file: string, rows: Generator<Row>, n: number) {
  const db = new SQLite(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -1000000");
  db.pragma("foreign_keys = OFF");
  const PER = 500;
  const one = `(${COLUMNS.split(",")
    .map(() => "?")
    .join(",")})`;
  const stmt = db.prepare(`INSERT INTO usage_records (${COLUMNS}) VALUES ${Array(PER).fill(one).join(",")}`);
  const single = db.prepare(`INSERT INTO usage_records (${COLUMNS}) VALUES ${one}`);
  let done = 0;
  const chunk = db.transaction((count: number) => {
    const vals: unknown[] = [];
    for (let i = 0; i < count; i++) {
      const row = rows.next().value as Row;
      vals.push(...row);
      if (vals.length === PER * 12) {
        stmt.run(vals);
        vals.length = 0;
      }
    }
    for (let i = 0; i < vals.length; i += 12) single.run(vals.slice(i, i + 12));
  });
  const t0 = performance.now();
  while (done < n) {
    const c = Math.min(TX_ROWS, n - done);
    chunk(c);
    done += c;
    if (done % 2_000_000 === 0 || done === n) progress(`sqlite: ${done} records, ${rate(done, performance.now() - t0)}/s`);
  }
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  db.exec("ANALYZE");
  db.pragma("wal_checkpoint(TRUNCATE)");
  const analyzeMs = performance.now() - t1;
  db.close();
  return { loadMs, analyzeMs };
}

/** What COPY … FROM STDIN needs of pg's connection (pg-copy-streams uses the same; not in @types/pg). */
type CopyConnection = pg.Connection & { sendCopyFromChunk(chunk: Buffer): void; endCopyFrom(): void; sendCopyFail(msg: string): void };

/**
 * COPY `text` FROM STDIN on `c` through pg's submittable interface (what pg-copy-streams does): `next()` returns the
 * next piece of data (tab-separated rows) or null at the end; writes wait for the socket to drain.
 */
function copyFrom(c: pg.Client, text: string, next: () => string | null): Promise<void> {
  return new Promise((resolve, reject) => {
    let error: unknown;
    const copy = {
      submit: (con: pg.Connection) => con.query(text),
      handleCopyInResponse(con: CopyConnection) {
        void (async () => {
          try {
            for (let piece; (piece = next()) !== null;) {
              con.sendCopyFromChunk(Buffer.from(piece));
              if (con.stream.writableNeedDrain) await once(con.stream, "drain");
            }
            con.endCopyFrom();
          } catch (e) {
            error = e;
            con.sendCopyFail(String(e));
          }
        })();
      },
      handleCommandComplete() {},
      handleError(e: unknown) {
        error = e;
      },
      handleReadyForQuery() {
        if (error) reject(error);
        else resolve();
      },
    };
    c.query(copy);
  });
}

const tsv = (v: string | number | null) => (v === null ? "\\N" : String(v));

async function loadPostgres(url: string, rows: Generator<Row>, n: number) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("SET synchronous_commit = off");
  const PIECE = 2000; // rows per chunk sent
  let done = 0;
  const t0 = performance.now();
  while (done < n) {
    const copyEnd = Math.min(done + TX_ROWS, n);
    await copyFrom(c, `COPY usage_records (${COLUMNS}) FROM STDIN`, () => {
      if (done >= copyEnd) return null;
      let s = "";
      for (const stop = Math.min(done + PIECE, copyEnd); done < stop; done++) s += (rows.next().value as Row).map(tsv).join("\t") + "\n";
      return s;
    });
    if (done % 2_000_000 === 0 || done === n) progress(`postgres: ${done} records, ${rate(done, performance.now() - t0)}/s`);
  }
  const loadMs = performance.now() - t0;
  const t1 = performance.now();
  await c.query("VACUUM ANALYZE usage_records");
  const analyzeMs = performance.now() - t1;
  await c.end();
  return { loadMs, analyzeMs };
}

/** The bare queries on a connection of this process (prepared once): per project and range, per hour. */
async function bareQueries(dialect: "sqlite" | "postgres", url: string) {
  const DAY_SQL =
    "SELECT (recorded_at / 86400000) AS day, usage_type, unit, SUM(quantity) AS quantity FROM usage_records WHERE project_id = $1 AND recorded_at >= $2 AND recorded_at < $3 GROUP BY 1, 2, 3";
  const HOUR_SQL =
    "SELECT project_id, usage_type, unit, provider, model, SUM(quantity) AS quantity, COUNT(*) AS n FROM usage_records WHERE recorded_at >= $1 AND recorded_at < $2 GROUP BY 1, 2, 3, 4, 5";
  if (dialect === "sqlite") {
    const db = new SQLite(url.replace(/^sqlite:\/\//, ""), { readonly: true });
    const byDay = db.prepare(DAY_SQL.replace(/\$\d/g, "?"));
    const byHour = db.prepare(HOUR_SQL.replace(/\$\d/g, "?"));
    return {
      byDay: async (pid: string, start: number, end: number) => byDay.all(pid, start, end).length,
      byHour: async (start: number) => (byHour.all(start, start + HOUR) as { n: number }[]).reduce((a, r) => a + Number(r.n), 0),
      close: async () => db.close(),
    };
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return {
    byDay: async (pid: string, start: number, end: number) => (await c.query({ name: "by_day", text: DAY_SQL, values: [pid, start, end] })).rowCount ?? 0,
    byHour: async (start: number) =>
      (await c.query<{ n: string }>({ name: "by_hour", text: HOUR_SQL, values: [start, start + HOUR] })).rows.reduce((a, r) => a + Number(r.n), 0),
    close: () => c.end(),
  };
}

function getJson(agent: http.Agent, base: URL, path: string, token: string) {
  return new Promise<{ ms: number; body: { usage: { records: number }[] } }>((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request({ host: base.hostname, port: base.port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) return reject(new Error(`${res.statusCode} ${text.slice(0, 300)}`));
        resolve({ ms, body: JSON.parse(text) });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

async function bench(dialect: "sqlite" | "postgres") {
  const dir = mkdtempSync(join(tmpdir(), "meshagent-bench-usage-"));
  let url = `sqlite://${join(dir, "meshagent.db")}`;
  let dropDb = async () => {};
  if (dialect === "postgres") {
    const name = `bench_usage_${randomBytes(5).toString("hex")}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(PG_ADMIN);
    u.pathname = `/${name}`;
    url = u.toString();
    dropDb = async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  }
  const env = {
    MESHAGENT_DATA_DIR: dir,
    MESHAGENT_DATABASE_URL: url,
    MESHAGENT_LOG_LEVEL: "warn",
    MESHAGENT_BILLING_ENABLED: "false",
    MESHAGENT_RATE_LIMIT: process.env.MESHAGENT_RATE_LIMIT ?? "0",
  };
  const ctx = await createContext(loadConfig(env), { listen: false });
  let server: Awaited<ReturnType<typeof spawnServer>> | undefined;
  let bare: Awaited<ReturnType<typeof bareQueries>> | undefined;
  try {
    // --- 100 projects through the real services; records -------------------------------------------------------------
    const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench-0" });
    const projects = [b.project_id];
    for (let i = 1; i < PROJECTS; i++) projects.push((await ctx.projects.create(b.user_id, { name: `bench-${i}` })).id);
    const apiKeyIds = projects.map(() => randomBytes(8).toString("hex"));
    progress(`${dialect}: loading ${RECORDS} records`);
    const gen = records(projects, apiKeyIds, RECORDS);
    const { loadMs, analyzeMs } =
      dialect === "sqlite" ? await loadSqlite(url.replace(/^sqlite:\/\//, ""), gen, RECORDS) : await loadPostgres(url, gen, RECORDS);
    const perProject = await ctx.store.db
      .selectFrom("usage_records")
      .select(["project_id", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("project_id")
      .execute();
    const counts = new Map(perProject.map((r) => [r.project_id, Number(r.n)]));
    const ns = [...counts.values()];
    console.log(
      `usage ${dialect}: loaded ${RECORDS.toLocaleString("en-US")} records (${PROJECTS} projects, ${DAYS} days) in ${(loadMs / 1000).toFixed(1)} s = ` +
        `${rate(RECORDS, loadMs)} records/s, + ${dialect === "sqlite" ? "ANALYZE" : "VACUUM ANALYZE"} ${(analyzeMs / 1000).toFixed(1)} s; ` +
        `${Math.min(...ns)}–${Math.max(...ns)} records per project`,
    );

    // --- get_usage by day vs the bare GROUP BY, interleaved: from the raw records, then from the hourly rollups -------
    server = await spawnServer(env);
    bare = await bareQueries(dialect, url);
    const base = new URL(server.url);
    const path = (pid: string) => `/accounts/projects/${pid}/usage?interval=day&start=${new Date(START).toISOString()}&end=${new Date(END).toISOString()}`;
    const measure = async (label: string) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      // Warm-up: one of each per project; the answer must account for every record of the project.
      let entries = 0;
      for (const pid of projects) {
        const { body } = await getJson(agent, base, path(pid), b.user_token);
        const sum = body.usage.reduce((a, e) => a + e.records, 0);
        if (sum !== counts.get(pid)) throw new Error(`get_usage of ${pid} counted ${sum} records, the table holds ${counts.get(pid)}`);
        entries += body.usage.length;
        await bare!.byDay(pid, START, END);
      }
      const ours: number[] = [];
      const bares: number[] = [];
      const r = rng(7);
      while (ours.length < REQUESTS) {
        const round = [...projects].sort(() => r() - 0.5).slice(0, REQUESTS - ours.length);
        for (const pid of round) {
          ours.push((await getJson(agent, base, path(pid), b.user_token)).ms);
          const t0 = process.hrtime.bigint();
          await bare!.byDay(pid, START, END);
          bares.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }
      agent.destroy();
      const [o50, o99, b50, b99] = [pct(ours, 50), pct(ours, 99), pct(bares, 50), pct(bares, 99)];
      console.log(
        `usage ${dialect}: get_usage by day (${label}) p50 ${f(o50)} ms p99 ${f(o99)} ms (bare SELECT on the records p50 ${f(b50)} ms p99 ${f(b99)} ms, ratio get_usage/bare p50 ${f(o50 / b50)}x p99 ${f(o99 / b99)}x); ` +
          `${ours.length} requests over ${PROJECTS} projects, ${DAYS} days, ~${Math.round(RECORDS / PROJECTS)} records and ${Math.round(entries / PROJECTS)} entries each; ` +
          `goal p99 <= 100 ms: ${o99 <= 100 ? "OK" : "MISSED"}`,
      );
    };
    await measure("raw records, before the rollup job");
    // The rollup job over every closed hour (what the billing job does first each run).
    const t0 = performance.now();
    const rolled = await ctx.billingEngine.rollClosedHours(100_000);
    const rollMs = performance.now() - t0;
    // Fresh statistics (and, on PostgreSQL, the visibility map index-only scans need) for the new rows, as after the
    // load: what autovacuum does on its own soon after a catch-up like this one.
    const t1 = performance.now();
    await sql`${sql.raw(dialect === "sqlite" ? "ANALYZE" : "VACUUM ANALYZE usage_hourly")}`.execute(ctx.store.db);
    const statsMs = performance.now() - t1;
    const hourly = await ctx.store.db
      .selectFrom("usage_hourly")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirst();
    console.log(
      `usage ${dialect}: rollup job ${rolled} hours, ${RECORDS.toLocaleString("en-US")} records into ${Number(hourly?.n).toLocaleString("en-US")} hourly rows in ` +
        `${(rollMs / 1000).toFixed(1)} s = ${rate(RECORDS, rollMs)} records/s, + ${dialect === "sqlite" ? "ANALYZE" : "VACUUM ANALYZE"} ${(statsMs / 1000).toFixed(1)} s`,
    );
    await measure("hourly rollups");
    await server.kill("SIGTERM");
    server = undefined;

    // --- the pricing job vs the bare per-hour GROUP BY, interleaved hour by hour ---------------------------------------
    const first = START + 45 * DAY;
    const hours = Array.from({ length: HOURS }, (_, i) => first + i * HOUR);
    for (const h of hours) await bare.byHour(h); // warm the hours both read
    let bareRecords = 0;
    let bareMs = 0;
    let priced = 0;
    let pricedMs = 0;
    let charges = 0;
    for (const h of hours) {
      let t0 = performance.now();
      bareRecords += await bare.byHour(h);
      bareMs += performance.now() - t0;
      t0 = performance.now();
      const res = await ctx.billingEngine.pricePeriod(h);
      pricedMs += performance.now() - t0;
      if (!res) throw new Error(`period ${new Date(h).toISOString()} was already priced`);
      priced += res.records;
      charges += res.charges;
    }
    if (priced !== bareRecords) throw new Error(`the pricing job priced ${priced} records, the bare GROUP BY counted ${bareRecords}`);
    const txs = await ctx.store.db
      .selectFrom("billing_transactions")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("kind", "=", "usage")
      .executeTakeFirst();
    console.log(
      `usage ${dialect}: pricing job ${HOURS} hours, ${priced.toLocaleString("en-US")} records (${charges} charges, ${Number(txs?.n)} debits) in ${(pricedMs / 1000).toFixed(2)} s = ` +
        `${rate(priced, pricedMs)} records/s (bare GROUP BY ${rate(bareRecords, bareMs)} records/s, ${f(bareMs)} ms; ratio job/bare ${(bareMs / pricedMs).toFixed(3)}x)`,
    );
  } finally {
    if (server) await server.kill("SIGTERM");
    await bare?.close();
    await ctx.close();
    if (KEEP) progress(`${dialect}: kept ${url} (data dir ${dir})`);
    else {
      await dropDb();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const which = process.argv[2] && !process.argv[2].startsWith("--") ? process.argv[2] : "both";
for (const d of ["sqlite", "postgres"] as const) if (which === "both" || which === d) await bench(d);
process.exit(0);
