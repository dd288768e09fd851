// Calls to a hosted toolkit through the room server, against the same calls relayed by bench/bare-room-server.ts (a
// bare `ws` relay: register → remember the host socket; invoke → room.tool_call.<toolkit> with a fresh id;
// tool_call_response → the caller's answer; no tokens, scopes, sessions or limits): the ceiling.
//
//   npx tsx bench/tool-calls.ts [sqlite|postgres|both]      (default sqlite)
//   MESHAGENT_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   (postgres: a role that may CREATE DATABASE)
//   BENCH_SECONDS (default 5): length of one measured round; BENCH_CALLERS (default "1,50"); BENCH_WINDOW (default 1):
//   calls each caller keeps in flight
//
// Both servers run as child processes; the clients are the official RoomClient 0.39.9, in this process: one host
// (startHostedToolkit, an `echo` tool answering small JSON) and N callers looping on room.invoke_tool. Rounds
// alternate between the servers (a warm-up, then three measured rounds each; the median round by calls/s is
// reported). Our server runs with the per-participant message rate effectively off
// (MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND), as the bare relay has none; everything else (scopes, routing, timeouts,
// session records, usage) is on. Goals: >= 0.5x the relay's calls/s, p99 <= 2x the relay's.
import { type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { ROOT, startChild } from "./lib.js";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { freePort, spawnServer } from "../test/helpers/process.js";
import official, { ApiScope, ParticipantToken, RoomClient, WebSocketClientProtocol } from "../test/helpers/official.js";

const { Toolkit, Tool, JsonContent, startHostedToolkit } = official as any;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CALLERS = (process.env.BENCH_CALLERS ?? "1,50").split(",").map(Number);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 1);
const ROOM = "bench-tools";
const progress = (msg: string) => process.stderr.write(`[tool-calls] ${msg}\n`);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

class Echo extends Tool {
  constructor() {
    super({ name: "echo", description: "answers its arguments", inputSchema: { type: "object" } });
  }
  async execute(args: any) {
    return new JsonContent({ json: { i: args.i, c: args.c, ok: true } });
  }
}

async function joinRoom(url: string, token: string): Promise<any> {
  const room = new RoomClient({ protocolFactory: WebSocketClientProtocol.createFactory({ url, token }), reconnectTimeout: 0 });
  await room.start();
  return room;
}

interface Side {
  label: string;
  host: any;
  callers: any[];
}

async function side(label: string, url: string, token: string, maxCallers: number): Promise<Side> {
  const host = await joinRoom(url, token);
  await startHostedToolkit({ room: host, toolkit: new Toolkit({ name: "bench", tools: [new Echo()] }), public_: true });
  const callers = [];
  for (let i = 0; i < maxCallers; i++) callers.push(await joinRoom(url, token));
  return { label, host, callers };
}

interface Result {
  rate: number;
  p50: number;
  p99: number;
  calls: number;
}

async function round(s: Side, n: number, seconds: number): Promise<Result> {
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    s.callers.slice(0, n).flatMap((c, ci) =>
      Array.from({ length: WINDOW }, async (_, w) => {
        for (let i = 0; performance.now() < end; i++) {
          const t = performance.now();
          const r = await c.invoke({ toolkit: "bench", tool: "echo", arguments: { i, c: ci * WINDOW + w } });
          lat.push(performance.now() - t);
          if (r.json?.i !== i || r.json?.c !== ci * WINDOW + w) throw new Error(`${s.label}: a call got another call's answer: ${JSON.stringify(r.json)}`);
        }
      }),
    ),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { rate: lat.length / elapsed, p50: pct(lat, 50), p99: pct(lat, 99), calls: lat.length };
}

async function database(dialect: "sqlite" | "postgres", dataDir: string) {
  if (dialect === "sqlite") return { url: `sqlite://${join(dataDir, "meshagent.db")}`, drop: async () => {} };
  const admin = process.env.MESHAGENT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `bench_tools_${randomBytes(5).toString("hex")}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}

async function main(dialect: "sqlite" | "postgres") {
  const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-tools-"));
  const db = await database(dialect, dataDir);
  const procs: { kill(): unknown }[] = [];
  const sides: Side[] = [];
  try {
    const env = {
      MESHAGENT_DATA_DIR: dataDir,
      MESHAGENT_DATABASE_URL: db.url,
      MESHAGENT_LOG_LEVEL: "warn",
      MESHAGENT_RATE_LIMIT: "0",
      MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND: "10000000",
    };
    const ctx = await createContext(loadConfig(env), { listen: false });
    const b = await bootstrap(ctx, { email: "bench-tools@example.com", project: "bench" });
    await ctx.rooms.create(b.project_id, { name: ROOM });
    await ctx.close();
    const t = new ParticipantToken({ name: "bench" });
    t.addRoomGrant(ROOM);
    t.addRoleGrant("agent");
    t.addApiGrant(ApiScope.agentDefault());
    const token = await t.toJwt({ apiKey: b.api_key });

    progress(`${dialect}: starting servers`);
    const ours = await spawnServer(env);
    procs.push({ kill: () => ours.kill("SIGTERM") });
    const barePort = await freePort();
    const bare: ChildProcess = await startChild(
      [join(ROOT, "bench/bare-room-server.ts")],
      { MESHAGENT_PORT: String(barePort) },
      `http://127.0.0.1:${barePort}/healthz`,
    );
    procs.push({ kill: () => bare.kill("SIGTERM") });

    const max = Math.max(...CALLERS);
    const o = await side("ours", `${ours.url.replace(/^http/, "ws")}/rooms/${ROOM}`, token, max);
    const r = await side("bare relay", `ws://127.0.0.1:${barePort}/rooms/${ROOM}`, token, max);
    sides.push(o, r);
    progress(`${dialect}: warming up`);
    for (const n of CALLERS) for (const s of [o, r]) await round(s, n, 1);
    for (const n of CALLERS) {
      const got = { ours: [] as Result[], bare: [] as Result[] };
      for (let k = 0; k < 3; k++) {
        got.ours.push(await round(o, n, SECONDS));
        got.bare.push(await round(r, n, SECONDS));
        progress(`${dialect} ${n} callers round ${k + 1}: ours ${got.ours[k].rate.toFixed(0)}, bare ${got.bare[k].rate.toFixed(0)} calls/s`);
      }
      const median = (xs: Result[]) => [...xs].sort((a, b) => a.rate - b.rate)[1];
      const a = median(got.ours);
      const z = median(got.bare);
      const ratio = a.rate / z.rate;
      const p99 = a.p99 / z.p99;
      console.log(
        `tool-calls ${dialect} ${n} caller${n === 1 ? "" : "s"}: ours ${a.rate.toFixed(0)} calls/s p50 ${a.p50.toFixed(2)} ms p99 ${a.p99.toFixed(2)} ms; ` +
          `bare relay ${z.rate.toFixed(0)} calls/s p50 ${z.p50.toFixed(2)} ms p99 ${z.p99.toFixed(2)} ms; ` +
          `ratio ${ratio.toFixed(2)}x (goal >= 0.5x) ${ratio >= 0.5 ? "OK" : "MISSED"}, p99 ${p99.toFixed(2)}x (goal <= 2x) ${p99 <= 2 ? "OK" : "MISSED"}`,
      );
    }
  } finally {
    for (const s of sides) for (const c of [s.host, ...s.callers]) c.dispose();
    for (const p of procs) await p.kill();
    await new Promise((r) => setTimeout(r, 300));
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const which = process.argv[2] ?? "sqlite";
for (const d of which === "both" ? (["sqlite", "postgres"] as const) : [which as "sqlite" | "postgres"]) await main(d);
process.exit(0);
