/**
 * list_rooms p99 with 1k rooms versus 1M rooms in the project, on SQLite and on PostgreSQL.
 *
 *   npx tsx bench/rooms-list.ts [sqlite|postgres|both]     (default both)
 *   MESHAGENT_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   (a role that may CREATE DATABASE)
 *
 * For each store: two fresh databases (temp SQLite files; PostgreSQL databases created here and dropped at the end),
 * one whose project holds 1k rooms and one whose project holds 1M, both loaded by bench/rooms-load.ts; the real
 * server runs as a child process on each, and the same request mix (pages of 50/100 at offsets 0..900, both orders,
 * with `total`) is measured against both in alternating rounds. Goal: p99(1M) <= 2 x p99(1k). Latency is timed per
 * request with hrtime from a keep-alive client at concurrency 4. Deep offsets (up to 999k) are printed for information.
 */
import http from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { sql } from "kysely";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { migrate, openStore } from "../src/store/db.js";
import { spawnServer } from "../test/helpers/process.js";
import { loadRooms } from "./rooms-load.js";

const PG_ADMIN = process.env.MESHAGENT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const CONCURRENCY = 4;
const WARMUP = 400;
const MEASURE = 4000;

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
}

/** Paths of the request mix; the same seed gives the same mix in every phase. */
function mix(pid: string, n: number, maxOffset: number, seed: number): string[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const order = r() < 0.5 ? "room_name" : "created_at";
    const limit = r() < 0.5 ? 50 : 100;
    const offset = Math.floor(r() * (maxOffset + 1));
    return `/accounts/projects/${pid}/rooms?limit=${limit}&offset=${offset}&order_by=${order}`;
  });
}

async function run(base: string, token: string, paths: string[]): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const u = new URL(base);
  const times: number[] = [];
  let next = 0;
  const one = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.request({ host: u.hostname, port: u.port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const dt = Number(process.hrtime.bigint() - t0) / 1e6;
          if (res.statusCode !== 200) return reject(new Error(`${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`));
          const body = JSON.parse(Buffer.concat(chunks).toString());
          if (typeof body.total !== "number" || !Array.isArray(body.rooms)) return reject(new Error("bad body"));
          resolve(dt);
        });
      });
      req.on("error", reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < paths.length) times.push(await one(paths[next++]));
    }),
  );
  agent.destroy();
  return times;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

interface Setup {
  url: string;
  env: Record<string, string>;
  pid: string;
  apiKey: string;
  cleanup(): Promise<void>;
}

/** A fresh database (and data dir) with a bootstrapped project holding `rooms` rooms. */
async function setup(dialect: "sqlite" | "postgres", rooms: number): Promise<Setup & { loadS: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-rooms-"));
  let url = `sqlite://${join(dataDir, "meshagent.db")}`;
  let dropDb = async () => {};
  if (dialect === "postgres") {
    const name = `bench_rooms_${randomBytes(5).toString("hex")}`;
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
  // Rate limits off unless MESHAGENT_RATE_LIMIT is set: the benchmark measures throughput, not the limiter.
  const env = {
    MESHAGENT_DATA_DIR: dataDir,
    MESHAGENT_DATABASE_URL: url,
    MESHAGENT_LOG_LEVEL: "warn",
    MESHAGENT_RATE_LIMIT: process.env.MESHAGENT_RATE_LIMIT ?? "0",
  };
  const cleanup = async () => {
    await dropDb();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const store = openStore(url);
    await migrate(store);
    const ctx = await createContext(loadConfig(env), { listen: false });
    const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
    await ctx.close();
    const t0 = performance.now();
    await loadRooms(store, b.project_id, rooms, 0);
    const loadS = (performance.now() - t0) / 1000;
    await store.close();
    return { url, env, pid: b.project_id, apiKey: b.api_key, cleanup, loadS };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function bench(dialect: "sqlite" | "postgres") {
  const small = await setup(dialect, 1_000);
  const big = await setup(dialect, 1_000_000).catch(async (e) => {
    await small.cleanup();
    throw e;
  });
  const servers: Awaited<ReturnType<typeof spawnServer>>[] = [];
  try {
    const s1 = await spawnServer(small.env);
    servers.push(s1);
    const s2 = await spawnServer(big.env);
    servers.push(s2);
    await run(s1.url, small.apiKey, mix(small.pid, WARMUP, 900, 7));
    await run(s2.url, big.apiKey, mix(big.pid, WARMUP, 900, 7));
    // Alternate rounds between the two servers so drift in machine load hits both alike.
    const ts: number[] = [];
    const tb: number[] = [];
    const ROUNDS = 8;
    for (let i = 0; i < ROUNDS; i++) {
      ts.push(...(await run(s1.url, small.apiKey, mix(small.pid, MEASURE / ROUNDS, 900, 1000 + i))));
      tb.push(...(await run(s2.url, big.apiKey, mix(big.pid, MEASURE / ROUNDS, 900, 1000 + i))));
    }
    const deep = await run(s2.url, big.apiKey, mix(big.pid, 200, 999_000, 99));

    // What the maintained counter saves: count(*) over the project's 1M rooms.
    const store = openStore(big.url);
    const counts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await sql`SELECT count(*) FROM rooms WHERE project_id = ${big.pid}`.execute(store.db);
      counts.push(performance.now() - t);
    }
    await store.close();

    const f = (x: number) => x.toFixed(2);
    const [p99s, p99b] = [pct(ts, 99), pct(tb, 99)];
    console.log(`rooms-list ${dialect}: bulk-loaded 1M rooms in ${big.loadS.toFixed(1)} s`);
    console.log(`rooms-list ${dialect}: 1k rooms  p50 ${f(pct(ts, 50))} ms  p99 ${f(p99s)} ms  (${ts.length} requests)`);
    console.log(`rooms-list ${dialect}: 1M rooms  p50 ${f(pct(tb, 50))} ms  p99 ${f(p99b)} ms  (${tb.length} requests)`);
    console.log(`rooms-list ${dialect}: p99(1M)/p99(1k) = ${(p99b / p99s).toFixed(2)}x (goal <= 2x) ${p99b <= 2 * p99s ? "OK" : "MISSED"}`);
    console.log(
      `rooms-list ${dialect}: (info) 1M rooms at offsets up to 999k: p50 ${f(pct(deep, 50))} ms  p99 ${f(pct(deep, 99))} ms; ` +
        `count(*) over the 1M rows: median ${f(pct(counts, 50))} ms (off the request path: total comes from the room counter)`,
    );
  } finally {
    // a graceful stop (the server closes its store)
    for (const s of servers) await s.kill("SIGTERM");
    await small.cleanup();
    await big.cleanup();
  }
}

const which = process.argv[2] ?? "both";
for (const d of ["sqlite", "postgres"] as const) if (which === "both" || which === d) await bench(d);
process.exit(0);
