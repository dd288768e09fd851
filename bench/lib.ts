import autocannon from "autocannon";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BootstrapJson } from "../src/bootstrap.js";

export const ROOT = join(import.meta.dirname, "..");
export const TSX_LOADER = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

/** Load a URL with autocannon for `seconds`; returns requests/s and latency percentiles (ms). */
export async function load(
  url: string,
  opts: { headers?: Record<string, string>; seconds?: number; connections?: number; method?: string; body?: string } = {},
): Promise<Load> {
  const r = await autocannon({
    url,
    method: (opts.method ?? "GET") as "GET",
    headers: opts.headers,
    body: opts.body,
    duration: opts.seconds ?? 5,
    connections: opts.connections ?? 32,
    pipelining: 1,
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Start a TypeScript entry as a child process and wait until `readyUrl` answers. */
export async function startChild(args: string[], env: Record<string, string>, readyUrl: string): Promise<ChildProcess> {
  // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the servers a benchmark starts.
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, "--import", TSX_LOADER, ...args], {
    cwd: ROOT,
    // Benchmarks measure throughput: rate limits are off unless MESHAGENT_RATE_LIMIT is set (to measure the limiter).
    env: { MESHAGENT_RATE_LIMIT: "0", ...process.env, ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(readyUrl)).ok) return child;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`${args.join(" ")} did not start`);
}

/** Run `bootstrap --json` on the data directory (and database) `env` names, from the sources. */
export function bootstrapData(env: Record<string, string>, args: string[] = []): BootstrapJson {
  return JSON.parse(
    execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", ...args], {
      env: { ...process.env, MESHAGENT_LOG_LEVEL: "warn", ...env },
      cwd: env.MESHAGENT_DATA_DIR ?? ROOT,
      encoding: "utf8",
    }),
  ) as BootstrapJson;
}
