// Start-up and footprint, and the per-request cost of metrics and logging.
//
//   npx tsx bench/startup.ts            (BENCH_ROUNDS, default 5; BENCH_SECONDS per load round, default 5;
//                                        BENCH_CONTAINER=0 skips the container; MESHAGENT_DATABASE_URL: PostgreSQL)
//
// 1. Cold start: a new node process until GET /healthz answers 200, on a data directory that is already migrated,
//    for the compiled build (node dist/main.js serve) and the TypeScript sources (through tsx), and in the container
//    image when Docker is there (docker run → healthy /healthz). Median of BENCH_ROUNDS, alternating.
// 2. Idle RSS of each, 5 s after it answered (VmRSS of the server process).
// 3. get_project requests/s with metrics on and logging at info (JSON lines to a file) against metrics off and
//    logging at warn (no request lines), same compiled build, alternating rounds; goal ≥ 0.95x.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootstrapData, load, median, ROOT, TSX_LOADER } from "./lib.js";

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-start-"));
const env: Record<string, string> = {
  MESHAGENT_DATA_DIR: dataDir,
  MESHAGENT_RATE_LIMIT: "0",
  ...(process.env.MESHAGENT_DATABASE_URL ? { MESHAGENT_DATABASE_URL: process.env.MESHAGENT_DATABASE_URL } : {}),
};
const COMPILED = join(ROOT, "dist/main.js");
if (!existsSync(COMPILED)) throw new Error("no dist/main.js: run npm run build first");
const b = bootstrapData(env, ["--email", "bench-start@example.com"]);
/** BENCH_ON / BENCH_OFF: "K=V,K=V" overrides of the two servers of part 3 (to take the cost apart); BENCH_ONLY=load: part 3 alone. */
const overrides = (v: string | undefined) =>
  Object.fromEntries(
    (v ?? "")
      .split(",")
      .filter(Boolean)
      .map((kv) => kv.split("=") as [string, string]),
  );
const onEnv = { MESHAGENT_METRICS: "true", MESHAGENT_LOG_LEVEL: "info", ...overrides(process.env.BENCH_ON) };
const offEnv = { MESHAGENT_METRICS: "false", MESHAGENT_LOG_LEVEL: "warn", ...overrides(process.env.BENCH_OFF) };

const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

async function waitHealthy(url: string, child?: ChildProcess, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await done;
}

/** `rounds` rounds of `measure` on two ports, their order swapped every round; each result goes to its port's list. */
async function alternate(a: number, aRuns: number[], b: number, bRuns: number[], measure: (port: number) => Promise<number>) {
  for (let i = 0; i < rounds; i++)
    for (const [port, runs] of i % 2
      ? ([
          [b, bRuns],
          [a, aRuns],
        ] as const)
      : ([
          [a, aRuns],
          [b, bRuns],
        ] as const))
      runs.push(await measure(port));
}

/** Start a server process; resolves once /healthz answers, with the time that took. */
async function start(args: string[], extra: Record<string, string>, port: number, stdout: "ignore" | string = "ignore") {
  // Logs go straight to a file (the server writes it, as it would to a journal or a log file), not through this process.
  const out = stdout === "ignore" ? "ignore" : openSync(stdout, "w");
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, MESHAGENT_LOG_LEVEL: "warn", MESHAGENT_LOG_FORMAT: "json", ...extra, MESHAGENT_PORT: String(port) },
    stdio: ["ignore", out, "ignore"],
  });
  await waitHealthy(`http://127.0.0.1:${port}`, child);
  return { child, ms: performance.now() - t0 };
}

const ways: { name: string; args: string[]; extra: Record<string, string> }[] = [
  { name: "compiled (node dist/main.js)", args: [COMPILED, "serve"], extra: {} },
  { name: "sources (tsx)", args: [join(ROOT, "bin/meshagent-server.mjs"), "serve"], extra: { MESHAGENT_FROM_SOURCE: "1" } },
];
const starts = new Map<string, number[]>(ways.map((w) => [w.name, []]));
const idle = new Map<string, number[]>(ways.map((w) => [w.name, []]));

try {
  // Warm the file-system cache and the migrations once, untimed.
  await stop((await start(ways[0].args, ways[0].extra, 18301)).child);
  for (let i = 0; i < (process.env.BENCH_ONLY === "load" ? 0 : rounds); i++)
    for (const w of i % 2 ? [...ways].reverse() : ways) {
      const s = await start(w.args, w.extra, 18301);
      starts.get(w.name)!.push(s.ms);
      if (i < 2) {
        await new Promise((r) => setTimeout(r, 5000));
        idle.get(w.name)!.push(rss(s.child.pid!));
      }
      await stop(s.child);
    }

  let container: { ms: number; rss: number } | null = null;
  if (process.env.BENCH_CONTAINER !== "0" && process.env.BENCH_ONLY !== "load")
    container = await containerStart().catch((e) => (console.log(`container: skipped (${(e as Error).message})`), null));

  if (process.env.BENCH_ONLY !== "load") console.log("cold start to a healthy /healthz (migrated data directory), and idle RSS 5 s later:");
  for (const w of process.env.BENCH_ONLY === "load" ? [] : ways)
    console.log(
      `  ${w.name.padEnd(32)} ${median(starts.get(w.name)!).toFixed(0).padStart(5)} ms (median of ${rounds})   idle RSS ${median(idle.get(w.name)!).toFixed(0)} MiB`,
    );
  if (container)
    console.log(`  ${"container (docker run)".padEnd(32)} ${container.ms.toFixed(0).padStart(5)} ms (median of 3)   idle RSS ${container.rss.toFixed(0)} MiB`);
  if (process.env.BENCH_ONLY !== "load")
    console.log(`  compiled/tsx start time: ${(median(starts.get(ways[0].name)!) / median(starts.get(ways[1].name)!)).toFixed(2)}x`);

  // 3. Metrics and logging on vs off.
  const logFile = join(dataDir, "requests.log");
  const on = await start([COMPILED, "serve"], onEnv, 18302, process.env.BENCH_LOG === "devnull" ? "/dev/null" : logFile);
  const off = await start([COMPILED, "serve"], offEnv, 18303);
  const path = `/accounts/projects/${b.project_id}`;
  const headers = { authorization: `Bearer ${b.api_key}` };
  const sample = await (await fetch(`http://127.0.0.1:18303${path}`, { headers })).text();
  const onRuns: number[] = [];
  const offRuns: number[] = [];
  try {
    for (const port of [18302, 18303]) await load(`http://127.0.0.1:${port}${path}`, { headers, seconds: 2 }); // warm-up
    await alternate(18302, onRuns, 18303, offRuns, async (port) => {
      const r = await load(`http://127.0.0.1:${port}${path}`, { headers, seconds });
      if (r.non2xx) throw new Error(`${r.non2xx} non-2xx answers`);
      return r.rps;
    });
  } finally {
    await stop(on.child);
    await stop(off.child);
  }
  const lines = !existsSync(logFile)
    ? 0
    : readFileSync(logFile, "utf8")
        .split("\n")
        .filter((l) => l.includes('"statusCode":200')).length;
  const a = median(onRuns);
  const z = median(offRuns);
  console.log(
    `get_project, metrics on + request logging at info: ${a.toFixed(0)} req/s (median of ${rounds}; ${lines} request lines, ${((existsSync(logFile) ? statSync(logFile).size : 0) / 1048576).toFixed(0)} MiB of log)`,
  );
  console.log(`get_project, metrics off + logging at warn:        ${z.toFixed(0)} req/s`);
  console.log(`ratio on/off: ${(a / z).toFixed(2)}x (goal >= 0.95x)`);

  // 4. The ceiling: what one pino line per request costs a bare Fastify route answering the same JSON (logs to a
  //    file at info against none at warn), measured the same way.
  const bare = (port: number, level: string, out: "ignore" | string) =>
    start(["--import", TSX_LOADER, join(ROOT, "bench/bare-server.ts")], { BARE_BODY: sample, BARE_ONE_LINE: "1", MESHAGENT_LOG_LEVEL: level }, port, out);
  const bOn = await bare(18304, "info", join(dataDir, "bare.log"));
  const bOff = await bare(18305, "warn", "ignore");
  const bOnRuns: number[] = [];
  const bOffRuns: number[] = [];
  try {
    await alternate(18304, bOnRuns, 18305, bOffRuns, async (port) => (await load(`http://127.0.0.1:${port}${path}`, { seconds })).rps);
  } finally {
    await stop(bOn.child);
    await stop(bOff.child);
  }
  console.log(
    `bare Fastify, same JSON, one pino line per request vs none: ${median(bOnRuns).toFixed(0)} vs ${median(bOffRuns).toFixed(0)} req/s: ${(median(bOnRuns) / median(bOffRuns)).toFixed(2)}x (the ceiling for logging every request)`,
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

/** The container image's cold start (test/helpers/image.ts builds and runs it), median of 3, and its idle RSS. */
async function containerStart(): Promise<{ ms: number; rss: number }> {
  const image = await import("../test/helpers/image.js");
  return image.benchContainerStart(3);
}
