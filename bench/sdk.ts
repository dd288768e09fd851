// Our SDK and CLI against the raw transport, in the same run:
//   1. 10k getRoom calls through the SDK (Meshagent.getRoom) vs raw fetch of the same route, 16 in flight, rounds
//      each (BENCH_ROUNDS, default 5), alternating; prints the median calls/s of each and the ratio (goal >= 0.9x).
//   2. `meshagent storage cp` of a 1 GiB file vs curl POSTing the same file, 3 runs each, alternating; prints the
//      median MiB/s of each, the ratio (goal >= 0.9x), and the CLI's peak RSS. curl streams the file (`-X POST -T
//      file`): `--data-binary @file` reads the whole file into memory first and refuses 1 GiB ("out of memory").
// BENCH_CALLS (default 10000; 0 skips part 1) and BENCH_UPLOAD_MIB (default 1024; 0 skips part 2) scale it down.
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Meshagent } from "@meshagent-oss/sdk";
import { bootstrapData, median, ROOT, startChild } from "./lib.js";

const CALLS = Number(process.env.BENCH_CALLS ?? 10_000);
const MIB = Number(process.env.BENCH_UPLOAD_MIB ?? 1024);
const IN_FLIGHT = 16;
/** Rounds of part 1, alternating SDK and raw: the two processes share two cores, so single rounds swing by ±20%. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-sdk-"));
const env = {
  MESHAGENT_DATA_DIR: dataDir,
  MESHAGENT_LOG_LEVEL: "warn",
  ...(process.env.MESHAGENT_DATABASE_URL ? { MESHAGENT_DATABASE_URL: process.env.MESHAGENT_DATABASE_URL } : {}),
};
const b = bootstrapData(env);
const PORT = 18191;
const base = `http://127.0.0.1:${PORT}`;
const server = await startChild([join(ROOT, "src/main.ts"), "serve"], { ...env, MESHAGENT_PORT: String(PORT) }, `${base}/healthz`);

/** `n` calls of `one`, IN_FLIGHT at a time; calls per second. */
async function rate(n: number, one: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next++ < n) await one();
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

try {
  const sdk = new Meshagent({ baseUrl: base, token: b.api_key });
  await sdk.createRoom(b.project_id, "bench-room");
  if (CALLS > 0) await calls(sdk);
  if (MIB > 0) await upload(sdk);
} finally {
  server.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}

/** Part 1: getRoom through the SDK vs raw fetch. */
async function calls(sdk: Meshagent) {
  const url = `${base}/accounts/projects/${b.project_id}/rooms/bench-room`;
  const headers = { authorization: `Bearer ${b.api_key}`, accept: "application/json" };
  const raw = async () => {
    const res = await fetch(url, { headers });
    if (!res.ok) throw new Error(`raw fetch: ${res.status}`);
    return res.json();
  };
  await rate(500, () => sdk.getRoom(b.project_id, "bench-room")); // warm up both paths
  await rate(500, raw);
  const ours: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    ours.push(await rate(CALLS, () => sdk.getRoom(b.project_id, "bench-room")));
    bare.push(await rate(CALLS, raw));
  }
  const o = median(ours);
  const r = median(bare);
  console.log(`getRoom through the SDK: ${o.toFixed(0)} calls/s (median of ${ROUNDS} x ${CALLS}, ${IN_FLIGHT} in flight)`);
  console.log(`raw fetch, same route:   ${r.toFixed(0)} calls/s`);
  console.log(`ratio SDK/raw: ${(o / r).toFixed(2)}x (goal >= 0.9x)`);
}

/** Part 2: the CLI's upload of one file vs curl's. */
async function upload(sdk: Meshagent) {
  // A 1 GiB file of incompressible bytes (one random MiB repeated).
  const file = join(dataDir, "upload.bin");
  const block = randomBytes(1024 * 1024);
  const fd = openSync(file, "w");
  for (let i = 0; i < MIB; i++) writeSync(fd, block);
  closeSync(fd);
  const cli = join(ROOT, "packages/cli/bin/meshagent.mjs");
  const cliEnv = { ...process.env, MESHAGENT_API_URL: base, MESHAGENT_API_KEY: b.api_key, MESHAGENT_PROJECT_ID: b.project_id, HOME: dataDir };
  const timed = (cmd: string, args: string[], e: NodeJS.ProcessEnv = process.env) => {
    const t0 = performance.now();
    // GNU time's %M: the command's peak resident set, in KiB (on stderr's last line).
    const p = spawnSync("/usr/bin/time", ["-f", "%M", cmd, ...args], { env: e, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    const seconds = (performance.now() - t0) / 1000;
    if (p.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${p.status}: ${p.stderr.slice(-500)}`);
    return { seconds, rssKiB: Number(p.stderr.trim().split("\n").pop()) };
  };
  const cliRuns: number[] = [];
  const curlRuns: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c = timed(process.execPath, [cli, "storage", "cp", file, `storage:bench/cli-${i}.bin`], cliEnv);
    cliRuns.push(MIB / c.seconds);
    rss.push(c.rssKiB);
    const k = timed("curl", [
      "-sS",
      "-f",
      "-o",
      "/dev/null",
      "-X",
      "POST",
      "-H",
      `authorization: Bearer ${b.api_key}`,
      "-H",
      "content-type: application/octet-stream",
      "-T",
      file,
      `${base}/projects/${b.project_id}/storage/upload?path=bench/curl-${i}.bin`,
    ]);
    curlRuns.push(MIB / k.seconds);
  }
  const stat = await sdk.statStorage(b.project_id, "bench/cli-2.bin");
  if (stat.size !== MIB * 1024 * 1024) throw new Error(`the CLI's upload is ${stat.size} bytes`);
  const c = median(cliRuns);
  const k = median(curlRuns);
  console.log(`meshagent storage cp, ${MIB} MiB: ${c.toFixed(0)} MiB/s (median of 3), peak RSS ${(median(rss) / 1024).toFixed(0)} MiB`);
  console.log(`curl -X POST -T, same file:    ${k.toFixed(0)} MiB/s`);
  console.log(`ratio CLI/curl: ${(c / k).toFixed(2)}x (goal >= 0.9x)`);
}
