// OAuth: (1) a bearer-authenticated get_project with an OAuth access token against the same with a project API key,
// in the same run (goal >= 0.8x); (2) the token endpoint's refresh grant (each refresh rotates the token, so each
// "family" refreshes one after another; 8 families in parallel) against an API-key get_project loaded the same way
// (8 connections, one request at a time each); (3) the cost of one password check (scrypt, deliberately slow).
//
//   npx tsx bench/oauth.ts       BENCH_SECONDS (default 5), BENCH_REFRESHES per family (default 150)
//
// The server is a child process (SQLite unless MESHAGENT_DATABASE_URL is set), logging at info to /dev/null. The
// tokens come from the official CLI's login flow (authorization code + PKCE), driven over HTTP as in the tests.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { load, median, ROOT, startChild, TSX_LOADER } from "./lib.js";
import { authorize, CLI_CLIENT_ID, CLI_REDIRECT, pkce, token } from "../test/helpers/oauth.js";
import { hashPassword, verifyPassword } from "../src/core/crypto.js";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const REFRESHES = Number(process.env.BENCH_REFRESHES ?? 150);
const FAMILIES = 8;
const PORT = 18191;
const base = `http://127.0.0.1:${PORT}`;
const progress = (m: string) => process.stderr.write(`[oauth] ${m}\n`);
const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-"));
const env = {
  MESHAGENT_DATA_DIR: dataDir,
  MESHAGENT_LOG_LEVEL: "info",
  MESHAGENT_PUBLIC_URL: base,
  ...(process.env.MESHAGENT_DATABASE_URL ? { MESHAGENT_DATABASE_URL: process.env.MESHAGENT_DATABASE_URL } : {}),
};
const password = "a bench passphrase";
const b = JSON.parse(
  execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--password", password], {
    env: { ...process.env, ...env },
    cwd: dataDir,
    encoding: "utf8",
  }),
);
const server = await startChild([join(ROOT, "src/main.ts"), "serve"], { ...env, MESHAGENT_PORT: String(PORT) }, `${base}/healthz`);

async function login() {
  const { verifier, challenge } = pkce();
  const a = await authorize(base, { email: b.email, password }, { challenge });
  const t = await token(base, {
    grant_type: "authorization_code",
    code: a.code!,
    redirect_uri: CLI_REDIRECT,
    client_id: CLI_CLIENT_ID,
    code_verifier: verifier,
  });
  if (t.status !== 200) throw new Error(`token: ${t.status} ${t.text}`);
  return t.json as { access_token: string; refresh_token: string };
}

const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  const store = process.env.MESHAGENT_DATABASE_URL ? "postgres" : "sqlite";
  const path = `${base}/accounts/projects/${b.project_id}`;
  const t = await login();
  progress("bearer check: OAuth access token vs API key");
  const oauthRuns: number[] = [];
  const keyRuns: number[] = [];
  for (let i = 0; i < 3; i++) {
    const o = await load(path, { headers: { authorization: `Bearer ${t.access_token}` }, seconds });
    const k = await load(path, { headers: { authorization: `Bearer ${b.api_key}` }, seconds });
    if (o.non2xx || k.non2xx) throw new Error(`non-2xx answers: oauth ${o.non2xx}, api key ${k.non2xx}`);
    oauthRuns.push(o.rps);
    keyRuns.push(k.rps);
  }
  const o = median(oauthRuns);
  const k = median(keyRuns);
  console.log(`get_project, OAuth access token (${store}): ${o.toFixed(0)} req/s median of 3`);
  console.log(`get_project, project API key   (${store}): ${k.toFixed(0)} req/s median of 3`);
  console.log(`ratio OAuth/API key: ${(o / k).toFixed(2)}x (goal >= 0.8x)`);

  progress(`refresh grant: ${FAMILIES} families x ${REFRESHES} rotations`);
  const families = await Promise.all(Array.from({ length: FAMILIES }, () => login()));
  const latencies: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    families.map(async (f) => {
      let rt = f.refresh_token;
      for (let i = 0; i < REFRESHES; i++) {
        const s = performance.now();
        const r = await token(base, { grant_type: "refresh_token", refresh_token: rt, client_id: CLI_CLIENT_ID });
        latencies.push(performance.now() - s);
        if (r.status !== 200) throw new Error(`refresh: ${r.status} ${r.text}`);
        rt = r.json.refresh_token;
      }
    }),
  );
  const refreshRps = (FAMILIES * REFRESHES) / ((performance.now() - t0) / 1000);
  const baseline = await load(path, { headers: { authorization: `Bearer ${b.api_key}` }, seconds, connections: FAMILIES });
  console.log(
    `token endpoint, refresh_token grant (rotating), ${FAMILIES} in parallel: ${refreshRps.toFixed(0)} req/s, p50 ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms`,
  );
  console.log(`get_project with an API key, ${FAMILIES} connections:              ${baseline.rps.toFixed(0)} req/s (the same run's baseline)`);
  console.log(`ratio refresh/get_project: ${(refreshRps / baseline.rps).toFixed(2)}x (a refresh writes: it rotates the token and issues a new access token)`);

  progress("password check");
  const hash = await hashPassword(password);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s = performance.now();
    if (!(await verifyPassword(password, hash))) throw new Error("verify failed");
    times.push(performance.now() - s);
  }
  console.log(
    `one password check: ${median(times).toFixed(1)} ms median of 20 (scrypt N=16384 r=8 p=1, 32-byte key, 16-byte salt; ${hash.split("$").slice(0, 4).join("$")})`,
  );
} finally {
  server.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}
