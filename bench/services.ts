/**
 * Benchmarks of the services-era features, one section per feature:
 *
 *   npx tsx bench/services.ts [sqlite|postgres|both] [section ...]     (default: both stores, every section)
 *   MESHAGENT_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   (a role that may CREATE DATABASE)
 *
 * Sections (add one: a function `(store) => Promise<void>` in SECTIONS):
 *
 * - crud: get_service and list_services (100 services) with API-key auth vs a bare Fastify route with the same JSON
 *   (goal >= 0.7x); see the function.
 * - rotation: master-key rotation. BENCH_ROTATION_VALUES (default 100 000) sealed values are loaded in bulk (rows of
 *   the `secrets` table when an area declares it sealed, else `api_keys` rows), the real server runs as a child
 *   process, and `rotate-master-key` (a child process, default settings; BENCH_ROTATION_BATCH sets --batch-size,
 *   BENCH_ROTATION_ARGS adds options, e.g. "--duty 1")
 *   re-seals them all while a keep-alive client at concurrency 4 keeps reading `GET P/webhooks` (20 webhooks: every
 *   answer opens 20 sealed secrets). Prints values/s of the re-sealing phase (the wait for servers to switch keys
 *   excluded) and the p99 of those reads during it vs the p99 of the same reads in the 8 s before and the 8 s after
 *   the rotation, measured in the same run (goal <= 2x).
 */
import http from "node:http";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { domains } from "../src/domains.js";
import { newId } from "../src/core/ids.js";
import { sha256Hex } from "../src/core/crypto.js";
import { freePort, spawnServer } from "../test/helpers/process.js";
import { load, median, ROOT, startChild, TSX_LOADER } from "./lib.js";

type StoreKind = "sqlite" | "postgres";
const PG_ADMIN = process.env.MESHAGENT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A scratch data directory and database for one section on one store; drop() removes both. */
async function scratch(store: StoreKind, prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  if (store === "sqlite") {
    return { dataDir, url: `sqlite://${join(dataDir, "meshagent.db")}`, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const name = `bench_${randomBytes(5).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_ADMIN);
  u.pathname = `/${name}`;
  return {
    dataDir,
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

/** GET `path` from `concurrency` keep-alive connections until `until()`; each answer's end time and latency (ms). */
async function readLoad(base: string, token: string, path: string, until: () => boolean, concurrency = 4) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const u = new URL(base);
  const samples: { at: number; ms: number }[] = [];
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.request({ host: u.hostname, port: u.port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode !== 200) return reject(new Error(`GET ${path}: ${res.statusCode}`));
          samples.push({ at: Date.now(), ms: Number(process.hrtime.bigint() - t0) / 1e6 });
          resolve();
        });
      });
      req.on("error", reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!until()) await one();
    }),
  );
  agent.destroy();
  return samples;
}

/** Master-key rotation: values/s, and read p99 during the rotation vs without. */
async function rotation(store: StoreKind) {
  const N = Number(process.env.BENCH_ROTATION_VALUES ?? 100_000);
  const s = await scratch(store, "meshagent-bench-rotation-");
  const oldKey = randomBytes(32);
  const newKeyFile = join(s.dataDir, "new.key");
  writeFileSync(newKeyFile, randomBytes(32).toString("hex"), { mode: 0o600 });
  const port = await freePort();
  const env: Record<string, string> = {
    MESHAGENT_DATA_DIR: s.dataDir,
    MESHAGENT_DATABASE_URL: s.url,
    MESHAGENT_MASTER_KEY: oldKey.toString("hex"),
    MESHAGENT_PORT: String(port),
    MESHAGENT_PUBLIC_URL: `http://127.0.0.1:${port}`,
    MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
    MESHAGENT_RATE_LIMIT: "0",
    MESHAGENT_LOG_LEVEL: "warn",
  };
  const ctx = await createContext(loadConfig(env), { listen: false });
  let open = true;
  let server: Awaited<ReturnType<typeof spawnServer>> | undefined;
  try {
    const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
    for (let i = 0; i < 20; i++) {
      await ctx.webhooks.create(b.project_id, { name: `hook-${i}`, url: "http://127.0.0.1:9/hook", events: ["api_key.deleted"] });
    }
    // The bulk: secrets rows when the secrets area declares its column sealed (AAD = its row id), else API keys.
    const secrets = domains.flatMap((d) => d.sealed ?? []).find((c) => c.table === "secrets");
    const t0 = Date.now();
    const now = Date.now();
    for (let i = 0; i < N; i += 1000) {
      const n = Math.min(1000, N - i);
      const db = ctx.store.db as any;
      if (secrets) {
        const rows = Array.from({ length: n }, (_, j) => {
          const id = newId();
          return {
            id,
            secret_id: id,
            project_id: b.project_id,
            room_id: null,
            scope: "",
            for_identity: "",
            delegated_to: "",
            name: `bulk-${i + j}`,
            type: "opaque",
            value_sealed: ctx.sealer.seal(randomBytes(32), secrets.aad?.({ id })),
            created_at: now,
            updated_at: now,
          };
        });
        await db.insertInto("secrets").values(rows).execute();
      } else {
        const rows = Array.from({ length: n }, (_, j) => {
          const secret = randomBytes(24).toString("base64url");
          return {
            id: newId(),
            project_id: b.project_id,
            name: `bulk-${i + j}`,
            description: "",
            secret_sealed: ctx.sealer.seal(secret),
            secret_hash: sha256Hex(secret),
            created_by: null,
            created_at: now,
          };
        });
        await db.insertInto("api_keys").values(rows).execute();
      }
    }
    const table = secrets ? "secrets" : "api_keys";
    console.log(`services rotation ${store}: loaded ${N} sealed ${table} values in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await ctx.close();
    open = false;

    server = await spawnServer(env);
    const path = `/accounts/projects/${b.project_id}/webhooks`;
    // Warm up, then the baseline: the same reads with no rotation running (8 s before it, 8 s after it).
    let end = Date.now() + 2000;
    await readLoad(server.url, b.api_key, path, () => Date.now() > end);
    end = Date.now() + 8000;
    const without = await readLoad(server.url, b.api_key, path, () => Date.now() > end);

    let done = false;
    const cli = new Promise<{ code: number; stdout: string; stderr: string; at: number }>((resolve) => {
      const args = ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "rotate-master-key", "--new-key-file", newKeyFile, "--json"];
      if (process.env.BENCH_ROTATION_BATCH) args.push("--batch-size", process.env.BENCH_ROTATION_BATCH);
      args.push(...(process.env.BENCH_ROTATION_ARGS?.split(" ").filter(Boolean) ?? []));
      execFile(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
        done = true;
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, at: Date.now() });
      });
    });
    const during = await readLoad(server.url, b.api_key, path, () => done);
    const r = await cli;
    if (r.code !== 0) throw new Error(`rotate-master-key failed: ${r.stdout}${r.stderr}`);
    // More of the baseline after the rotation (same reads, now under the new key), so a drift of the machine's load
    // during the run weighs on both sides.
    end = Date.now() + 8000;
    without.push(...(await readLoad(server.url, b.api_key, path, () => Date.now() > end)));
    const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
    // The reads of the re-sealing phase: the summary says how long it took, and it ended just before the exit.
    const from = r.at - summary.reseal_seconds * 1000;
    const inPhase = during.filter((x) => x.at >= from).map((x) => x.ms);
    const rate = summary.resealed / summary.reseal_seconds;
    console.log(`services rotation ${store}: ${summary.resealed} values in ${summary.reseal_seconds.toFixed(1)} s = ${rate.toFixed(0)} values/s`);
    const p99During = pct(inPhase, 99);
    const p99Without = pct(
      without.map((x) => x.ms),
      99,
    );
    const ratio = p99During / p99Without;
    console.log(
      `services rotation ${store}: read p99 during ${p99During.toFixed(1)} ms vs ${p99Without.toFixed(1)} ms without = ${ratio.toFixed(2)}x ` +
        `(goal <= 2x) ${ratio <= 2 ? "OK" : "MISSED"}  [${inPhase.length} vs ${without.length} reads of ${path.split("/").pop()} (20 sealed secrets each)]`,
    );
  } finally {
    await server?.kill("SIGTERM");
    if (open) await ctx.close();
    await s.drop();
  }
}

/**
 * crud: `get_service` and `list_services` (a project of 100 services) with API-key auth, against the bare Fastify
 * route (bench/bare-server.ts) returning the same JSON. Both servers are child processes loaded by autocannon, warmed
 * up first; BENCH_ROUNDS (default 5) alternating rounds, medians (goal >= 0.7x).
 */
async function crud(store: StoreKind) {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  // Alternating rounds (ours, bare, ours, …), medians: this machine is noisy.
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const s = await scratch(store, "meshagent-bench-services-");
  const port = await freePort();
  const env: Record<string, string> = {
    MESHAGENT_DATA_DIR: s.dataDir,
    MESHAGENT_DATABASE_URL: s.url,
    MESHAGENT_PORT: String(port),
    MESHAGENT_RATE_LIMIT: "0",
    MESHAGENT_LOG_LEVEL: "info",
  };
  const ctx = await createContext(loadConfig(env), { listen: false });
  const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
  let first = "";
  for (let i = 0; i < 100; i++) {
    const spec = await ctx.services.create(
      b.project_id,
      null,
      {
        version: "v1",
        kind: "Service",
        metadata: { name: `svc-${String(i).padStart(3, "0")}`, description: "a benchmark service", annotations: { "meshagent.service.id": `svc-${i}` } },
        ports: [{ num: 8080, type: "http", endpoints: [{ path: "/agent", meshagent: { identity: `bot-${i}` } }] }],
        container: { image: "registry.example.com/agent:1.0", environment: [{ name: "MODE", value: "bench" }], private: true },
      },
      null,
    );
    first ||= spec.id!;
  }
  await ctx.close();
  const ours = await startChild([join(ROOT, "src/main.ts"), "serve"], env, `http://127.0.0.1:${port}/healthz`);
  const headers = { authorization: `Bearer ${b.api_key}` };
  const P = `/accounts/projects/${b.project_id}`;
  // get_project (cached project row, the same auth and gate) is the reference: what any authenticated read costs here.
  const paths = { get_service: `${P}/services/${first}`, list_services: `${P}/services`, "get_project (reference)": P };
  const routes: Record<string, unknown> = {};
  routes["/accounts/projects/:project_id/services/:service_id"] = await (await fetch(`http://127.0.0.1:${port}${paths.get_service}`, { headers })).json();
  routes["/accounts/projects/:project_id/services"] = await (await fetch(`http://127.0.0.1:${port}${paths.list_services}`, { headers })).json();
  const barePort = await freePort();
  const bare = await startChild(
    [join(ROOT, "bench/bare-server.ts")],
    {
      MESHAGENT_PORT: String(barePort),
      BARE_ROUTES: JSON.stringify(routes),
      BARE_BODY: JSON.stringify(await (await fetch(`http://127.0.0.1:${port}${P}`, { headers })).json()),
      MESHAGENT_LOG_LEVEL: "info",
    },
    `http://127.0.0.1:${barePort}/healthz`,
  );
  try {
    // Warm both servers up (JIT, caches, the start-up sweeps) on every path before anything is measured.
    for (const path of Object.values(paths)) {
      await load(`http://127.0.0.1:${port}${path}`, { headers, seconds: 2 });
      await load(`http://127.0.0.1:${barePort}${path}`, { seconds: 2 });
    }
    for (const [op, path] of Object.entries(paths)) {
      const o: number[] = [];
      const r: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const x = await load(`http://127.0.0.1:${port}${path}`, { headers, seconds });
        if (x.non2xx) throw new Error(`${op} answered ${x.non2xx} non-2xx`);
        o.push(x.rps);
        r.push((await load(`http://127.0.0.1:${barePort}${path}`, { seconds })).rps);
      }
      const ratio = median(o) / median(r);
      console.log(
        `services ${op} ${store}: ${median(o).toFixed(0)} req/s vs bare Fastify ${median(r).toFixed(0)} req/s = ${ratio.toFixed(2)}x (goal >= 0.7x) ${ratio >= 0.7 ? "OK" : "MISSED"}`,
      );
    }
  } finally {
    ours.kill("SIGTERM");
    bare.kill("SIGTERM");
    await s.drop();
  }
}

const SECTIONS: Record<string, (store: StoreKind) => Promise<void>> = { crud, rotation };

async function main() {
  const args = process.argv.slice(2);
  const which = args[0] === "sqlite" || args[0] === "postgres" || args[0] === "both" ? args.shift()! : "both";
  const stores: StoreKind[] = which === "both" ? ["sqlite", "postgres"] : [which as StoreKind];
  const names = args.length ? args : Object.keys(SECTIONS);
  for (const n of names) if (!SECTIONS[n]) throw new Error(`unknown section ${n} (sections: ${Object.keys(SECTIONS).join(", ")})`);
  for (const store of stores) for (const n of names) await SECTIONS[n](store);
}

await main();
