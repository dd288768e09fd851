/**
 * Storage transfer benchmark: a 1 GiB upload and download through the server (local-disk backend) against `cp` of
 * the same file on the same disk, measured in the same run. Prints both throughput ratios (goal ≥ 0.8) and the
 * server's RSS growth during each transfer (goal ≤ 64 MiB), sampled from /proc/<pid>/status.
 *
 *   npx tsx bench/storage-transfer.ts   (MESHAGENT_BENCH_SIZE_MB=1024, MESHAGENT_BENCH_ROUNDS=2, MESHAGENT_BENCH_DIR=tmpdir)
 *
 * The server is a separate process (`node --import tsx src/main.ts serve`, so its pid is the server itself), the
 * client streams from and to files. Upload includes the server's fsync (it acknowledges only durable writes), so a
 * `cp` followed by an fsync of the copy is printed as a second baseline. The same client also runs against
 * bench/bare-storage-server.ts, a node:http server that only streams to and from a file (no fsync): the ceiling of
 * an HTTP transfer in Node on this machine, printed with ours as a fraction of it. Every big file is deleted at the end.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  fsyncSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { ROOT, startChild, TSX_LOADER } from "./lib.js";

const SIZE = Number(process.env.MESHAGENT_BENCH_SIZE_MB ?? 1024) * 1024 * 1024;
const MiB = 1024 * 1024;
const ROUNDS = Number(process.env.MESHAGENT_BENCH_ROUNDS ?? 2);

const base = mkdtempSync(join(process.env.MESHAGENT_BENCH_DIR ?? tmpdir(), "meshagent-bench-storage-"));
const dataDir = join(base, "data");
const src = join(base, "source.bin");
let server: ChildProcess | undefined;
let bare: ChildProcess | undefined;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** Samples a process's RSS every 20 ms while `fn` runs; resolves to fn's duration and the peak RSS in KiB. */
async function sampled<T>(pid: number, fn: () => Promise<T>): Promise<{ seconds: number; peakKiB: number; result: T }> {
  let peak = rssKiB(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssKiB(pid))), 20);
  const t0 = process.hrtime.bigint();
  try {
    const result = await fn();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    peak = Math.max(peak, rssKiB(pid));
    return { seconds, peakKiB: peak, result };
  } finally {
    clearInterval(timer);
  }
}

/** The process's CPU time (user + system) in seconds, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path, { highWaterMark: 4 * MiB }), h);
  return h.digest("hex");
}

function writeSource() {
  const block = randomBytes(8 * MiB);
  const fd = openSync(src, "w");
  for (let n = 0; n < SIZE; n += block.length) writeSync(fd, block, 0, Math.min(block.length, SIZE - n));
  fsyncSync(fd);
  closeSync(fd);
}

async function main() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    MESHAGENT_DATA_DIR: dataDir,
    MESHAGENT_DATABASE_URL: `sqlite://${join(dataDir, "meshagent.db")}`,
    MESHAGENT_STORAGE_URL: join(dataDir, "storage"),
    MESHAGENT_PORT: String(port),
    MESHAGENT_HOST: "127.0.0.1",
    MESHAGENT_LOG_LEVEL: "warn",
    // Rate limits off unless MESHAGENT_RATE_LIMIT is set: the benchmark measures throughput, not the limiter.
    MESHAGENT_RATE_LIMIT: process.env.MESHAGENT_RATE_LIMIT ?? "0",
  };

  writeSource();

  const boot = spawnSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "bench@example.com"], {
    cwd: ROOT,
    env,
    encoding: "utf8",
  });
  if (boot.status !== 0) throw new Error(`bootstrap failed: ${boot.stderr}`);
  const { project_id: projectId, api_key: apiKey } = JSON.parse(boot.stdout.trim().split("\n").pop()!) as { project_id: string; api_key: string };

  server = spawn(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "serve"], { cwd: ROOT, env, stdio: ["ignore", "inherit", "inherit"] });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      if (i > 300) throw new Error("the server did not start");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = server.pid!;
  const path = `/projects/${projectId}/storage`;
  const auth = { authorization: `Bearer ${apiKey}` };

  // Warm up both routes so JIT and first-request allocations are not counted as transfer growth.
  for (let i = 0; i < 3; i++) {
    const small = randomBytes(4 * MiB);
    await fetch(`${url}${path}/upload?path=warmup.bin`, { method: "POST", body: small, headers: { ...auth, "content-type": "application/octet-stream" } });
    await (await fetch(`${url}${path}/download?path=warmup.bin`, { headers: auth })).arrayBuffer();
  }
  await new Promise((r) => setTimeout(r, 500));
  const rssBefore = rssKiB(pid);

  // The same client against ours and against the bare node:http ceiling (bench/bare-storage-server.ts).
  const upload =
    (target: string, headers: Record<string, string> = auth) =>
    () =>
      new Promise<void>((resolve, reject) => {
        const req = request(`${target}/upload?path=big.bin`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/octet-stream", "content-length": SIZE },
        });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`upload answered ${res.statusCode}`))));
        });
        req.on("error", reject);
        createReadStream(src, { highWaterMark: 1 * MiB }).pipe(req);
      });
  const dl = join(base, "downloaded.bin");
  const download =
    (target: string, headers: Record<string, string> = auth) =>
    () =>
      new Promise<void>((resolve, reject) => {
        request(`${target}/download?path=big.bin`, { headers }, (res) => {
          if (res.statusCode !== 200) return reject(new Error(`download answered ${res.statusCode}`));
          pipeline(res, createWriteStream(dl, { highWaterMark: 1 * MiB })).then(resolve, reject);
        })
          .on("error", reject)
          .end();
      });
  const bareDir = join(base, "bare");
  mkdirSync(bareDir);
  const barePort = await freePort();
  bare = await startChild(
    [join(ROOT, "bench/bare-storage-server.ts")],
    { MESHAGENT_PORT: String(barePort), BENCH_BARE_DIR: bareDir },
    `http://127.0.0.1:${barePort}/healthz`,
  );
  const bareUrl = `http://127.0.0.1:${barePort}`;
  const timedRun = async (fn: () => Promise<void>) => (await sampled(pid, fn)).seconds;
  const cp = (fsync: boolean) => {
    const copy = join(base, "cp-copy.bin");
    const t = timed(() => {
      const r = spawnSync("cp", [src, copy]);
      if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
      if (fsync) {
        const fd = openSync(copy, "r+");
        fsyncSync(fd);
        closeSync(fd);
      }
    });
    rmSync(copy);
    return t;
  };

  // The machine is shared and its disk's writeback is bursty: interleave the baselines with the transfers over a
  // few rounds and keep each one's best time.
  const best = { cp: Infinity, cpSync: Infinity, up: Infinity, down: Infinity, bareUp: Infinity, bareDown: Infinity };
  const cpu = { up: Infinity, down: Infinity };
  const client = { up: Infinity, down: Infinity };
  const clientSeconds = (since: NodeJS.CpuUsage) => {
    const c = process.cpuUsage(since);
    return (c.user + c.system) / 1e6;
  };
  let upPeak = 0;
  let downGrowthKiB = 0;
  for (let round = 0; round < ROUNDS; round++) {
    best.cp = Math.min(best.cp, cp(false));
    const c0 = cpuSeconds(pid);
    const k0 = process.cpuUsage();
    const u = await sampled(pid, upload(`${url}${path}`));
    cpu.up = Math.min(cpu.up, cpuSeconds(pid) - c0);
    client.up = Math.min(client.up, clientSeconds(k0));
    best.up = Math.min(best.up, u.seconds);
    upPeak = Math.max(upPeak, u.peakKiB);
    const before = rssKiB(pid);
    const c1 = cpuSeconds(pid);
    const k1 = process.cpuUsage();
    const d = await sampled(pid, download(`${url}${path}`));
    cpu.down = Math.min(cpu.down, cpuSeconds(pid) - c1);
    client.down = Math.min(client.down, clientSeconds(k1));
    best.down = Math.min(best.down, d.seconds);
    downGrowthKiB = Math.max(downGrowthKiB, d.peakKiB - before);
    best.cpSync = Math.min(best.cpSync, cp(true));
    rmSync(dl);
    best.bareUp = Math.min(best.bareUp, await timedRun(upload(bareUrl, {})));
    best.bareDown = Math.min(best.bareDown, await timedRun(download(bareUrl, {})));
    rmSync(join(bareDir, "big.bin"));
    if (round === ROUNDS - 1)
      await download(`${url}${path}`)(); // keep ours for the content check
    else rmSync(dl);
  }
  const cpSeconds = best.cp;
  const cpSyncSeconds = best.cpSync;
  const up = { seconds: best.up, peakKiB: upPeak };
  const down = { seconds: best.down };

  const stored = join(dataDir, "storage", "projects", projectId, "big.bin");
  const same = statSync(dl).size === SIZE && statSync(stored).size === SIZE && (await sha256File(dl)) === (await sha256File(src));

  const mibs = (s: number) => SIZE / MiB / s;
  const f = (n: number, d = 2) => n.toFixed(d);
  const gib = SIZE / 1024 / MiB;
  const upGrowth = (up.peakKiB - rssBefore) / 1024;
  const downGrowth = downGrowthKiB / 1024;
  const lines = [
    `storage-transfer: ${f(gib, 2)} GiB through the server (local-disk backend) vs cp on the same disk (${base}), best of ${ROUNDS} interleaved rounds`,
    `cp                 ${f(cpSeconds)} s  ${f(mibs(cpSeconds), 1)} MiB/s`,
    `cp + fsync         ${f(cpSyncSeconds)} s  ${f(mibs(cpSyncSeconds), 1)} MiB/s`,
    `upload   (HTTP)    ${f(up.seconds)} s  ${f(mibs(up.seconds), 1)} MiB/s  ratio vs cp ${f(cpSeconds / up.seconds)} (goal >= 0.80), vs cp+fsync ${f(cpSyncSeconds / up.seconds)}`,
    `download (HTTP)    ${f(down.seconds)} s  ${f(mibs(down.seconds), 1)} MiB/s  ratio vs cp ${f(cpSeconds / down.seconds)} (goal >= 0.80)`,
    `bare node:http     upload ${f(best.bareUp)} s  ${f(mibs(best.bareUp), 1)} MiB/s = ${f(cpSeconds / best.bareUp)}x cp | download ${f(best.bareDown)} s  ${f(mibs(best.bareDown), 1)} MiB/s = ${f(cpSeconds / best.bareDown)}x cp  (the ceiling: a server that only streams to and from the file, no fsync)`,
    `ours / bare        upload ${f(best.bareUp / up.seconds)}x, download ${f(best.bareDown / down.seconds)}x`,
    `server CPU         ${f(cpu.up)} s per upload, ${f(cpu.down)} s per download (user + system); client CPU ${f(client.up)} s / ${f(client.down)} s; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")} on ${cpus().length} cores`,
    `server RSS         before ${f(rssBefore / 1024, 1)} MiB; growth during upload ${f(upGrowth, 1)} MiB, during download ${f(downGrowth, 1)} MiB (goal <= 64 MiB)`,
    `content            ${same ? "downloaded bytes equal the source (sha256)" : "MISMATCH between source and download"}`,
  ];
  for (const l of lines) console.log(l);
  if (!same) process.exitCode = 1;
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    bare?.kill("SIGTERM");
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once("exit", r));
      server.kill("SIGTERM");
      await exited;
    }
    // Delete every big file: the source, the copies, the server's data directory and the download.
    rmSync(base, { recursive: true, force: true });
  });
