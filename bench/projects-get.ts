// GET /accounts/projects/{id} with API-key auth vs a bare Fastify route returning the same JSON.
// Both run as child processes with the same logger setup (info level, to /dev/null), loaded by autocannon on loopback.
// Prints the median requests/s of 3 runs of each and the ratio (goal ≥ 0.5).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootstrapData, load, median, ROOT, startChild } from "./lib.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-"));
const env = {
  MESHAGENT_DATA_DIR: dataDir,
  MESHAGENT_LOG_LEVEL: "info",
  ...(process.env.MESHAGENT_DATABASE_URL ? { MESHAGENT_DATABASE_URL: process.env.MESHAGENT_DATABASE_URL } : {}),
};
const b = bootstrapData(env);

const ours = await startChild([join(ROOT, "src/main.ts"), "serve"], { ...env, MESHAGENT_PORT: "18181" }, "http://127.0.0.1:18181/healthz");
const path = `/accounts/projects/${b.project_id}`;
const headers = { authorization: `Bearer ${b.api_key}` };
const sample = await (await fetch(`http://127.0.0.1:18181${path}`, { headers })).text();
const bare = await startChild(
  [join(ROOT, "bench/bare-server.ts")],
  { MESHAGENT_PORT: "18182", BARE_BODY: sample, MESHAGENT_LOG_LEVEL: "info" },
  "http://127.0.0.1:18182/healthz",
);

try {
  const oursRuns: number[] = [];
  const bareRuns: number[] = [];
  const p99s: number[] = [];
  for (let i = 0; i < 3; i++) {
    const o = await load(`http://127.0.0.1:18181${path}`, { headers, seconds });
    if (o.non2xx) throw new Error(`ours answered ${o.non2xx} non-2xx`);
    oursRuns.push(o.rps);
    p99s.push(o.p99);
    bareRuns.push((await load(`http://127.0.0.1:18182${path}`, { seconds })).rps);
  }
  const o = median(oursRuns);
  const r = median(bareRuns);
  console.log(
    `get_project (API key, ${process.env.MESHAGENT_DATABASE_URL ? "postgres" : "sqlite"}): ${o.toFixed(0)} req/s median of 3 (p99 ${median(p99s)} ms)`,
  );
  console.log(`bare fastify route, same JSON:   ${r.toFixed(0)} req/s median of 3`);
  console.log(`ratio ours/bare: ${(o / r).toFixed(2)}x (goal >= 0.5x)`);
} finally {
  ours.kill("SIGTERM");
  bare.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}
