/**
 * connect_room throughput against a bare Fastify route that signs an HS256 JWT of the same size with jose.
 *
 *   npx tsx bench/rooms-connect.ts [sqlite|postgres]        (default sqlite)
 *   MESHAGENT_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   (for postgres: a role that may CREATE DATABASE)
 *
 * Servers run as child processes: ours (the real server on a fresh store), and the baseline (Fastify, one POST route,
 * jose SignJWT with a pre-imported HMAC key, the same payload as a real connect_room token), plus, for information, the
 * same bare route signing with node:crypto's HMAC as our server does. autocannon drives each in turn, in two
 * alternating rounds: connect_room for a member with a grant (user token: membership, room and grant looked up in the
 * store, signed with the project key) and with an API key (signed with the key's secret).
 * Goal: >= 0.5x the jose baseline's requests per second.
 */
import autocannon from "autocannon";
import Fastify from "fastify";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { createHmac, randomBytes, webcrypto } from "node:crypto";
import { SignJWT } from "jose";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { freePort, spawnServer } from "../test/helpers/process.js";

const DURATION = 8;
const CONNECTIONS = 10;

/**
 * The baseline: `npx tsx bench/rooms-connect.ts --baseline <port> <payload.json> jose|hmac`. `jose` is the issue's
 * baseline (jose SignJWT, WebCrypto HMAC); `hmac` signs the same bytes with node:crypto's HMAC, as our server does.
 */
async function baselineServer(port: number, payloadFile: string, mode: string) {
  const { payload, secret, room, project, url } = JSON.parse(readFileSync(payloadFile, "utf8"));
  const key = await webcrypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
  const sign =
    mode === "hmac"
      ? async (p: object) => {
          const input = `${header}.${Buffer.from(JSON.stringify(p)).toString("base64url")}`;
          return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
        }
      : (p: object) => new SignJWT({ ...p }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(key);
  const app = Fastify({ logger: false });
  app.get("/healthz", async () => ({ ok: true }));
  app.post("/connect", async () => {
    const jwt = await sign({ ...payload, exp: Math.floor(Date.now() / 1000) + 21600 });
    return { jwt, room_name: room, project_id: project, room_url: url };
  });
  await app.listen({ port, host: "127.0.0.1" });
}

async function spawnBaseline(payloadFile: string, mode: "jose" | "hmac"): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  // Node with tsx's loader directly (not the tsx CLI, which would run the server as a grandchild that outlives a kill).
  const tsx = join(import.meta.dirname, "../node_modules/tsx/dist");
  const child = spawn(
    process.execPath,
    [
      "--require",
      join(tsx, "preflight.cjs"),
      "--import",
      pathToFileURL(join(tsx, "loader.mjs")).href,
      import.meta.filename,
      "--baseline",
      String(port),
      payloadFile,
      mode,
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child };
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error("baseline did not start");
}

const progress = (msg: string) => process.stderr.write(`[rooms-connect] ${msg}\n`);

async function cannon(url: string, token?: string): Promise<number> {
  progress(`autocannon ${url.replace(/^http:\/\/[^/]+/, "")}${token ? " (" + token.slice(0, 5) + "…)" : ""}`);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await autocannon({ url, method: "POST", body: "{}", headers, connections: CONNECTIONS, duration: DURATION });
  if (r.non2xx || r.errors) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return r.requests.average;
}

async function main(dialect: "sqlite" | "postgres") {
  const dataDir = mkdtempSync(join(tmpdir(), "meshagent-bench-connect-"));
  let dbUrl = `sqlite://${join(dataDir, "meshagent.db")}`;
  let drop = async () => {};
  if (dialect === "postgres") {
    const admin = process.env.MESHAGENT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
    const name = `bench_connect_${randomBytes(5).toString("hex")}`;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    const u = new URL(admin);
    u.pathname = `/${name}`;
    dbUrl = u.toString();
    drop = async () => {
      const d = new pg.Client({ connectionString: admin });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    };
  }
  // Rate limits off unless MESHAGENT_RATE_LIMIT is set: the benchmark measures throughput, not the limiter.
  const env = {
    MESHAGENT_DATA_DIR: dataDir,
    MESHAGENT_DATABASE_URL: dbUrl,
    MESHAGENT_LOG_LEVEL: "warn",
    MESHAGENT_RATE_LIMIT: process.env.MESHAGENT_RATE_LIMIT ?? "0",
  };
  const children: { kill(): Promise<unknown> | void }[] = [];
  try {
    // Project, room, a plain member with a grant on it.
    const ctx = await createContext(loadConfig(env), { listen: false });
    const b = await bootstrap(ctx, { email: "bench@example.com", project: "bench" });
    const { room } = await ctx.rooms.create(b.project_id, { name: "bench-room" });
    const member = await ctx.users.create({ email: "member@example.com" });
    await ctx.projects.addUser(b.project_id, { user_id: member.id });
    const memberToken = await ctx.users.issueToken(member.id, { kind: "pat", name: "bench" });
    const scope = { messaging: {}, queues: { send: ["inbox"] }, storage: { paths: [{ path: "shared/", read_only: true }] } };
    await ctx.grants.create(b.project_id, { room_id: room.id, user_id: member.id, permissions: scope });
    await ctx.close();

    progress("starting servers");
    const ours = await spawnServer(env);
    // a graceful stop (the server closes its store)
    children.push({ kill: () => ours.kill("SIGTERM") });
    const path = `${ours.url}/accounts/projects/${b.project_id}/rooms/bench-room/connect`;
    const sample = async (token: string) => {
      const r = await fetch(path, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
      if (r.status !== 200) throw new Error(`connect_room ${r.status} ${await r.text()}`);
      return (await r.json()) as { jwt: string; room_name: string; project_id: string; room_url: string };
    };
    const memberInfo = await sample(memberToken);
    const keyInfo = await sample(b.api_key);
    // The baseline signs the payload of the larger of our two tokens, so its JWT is at least as large as ours.
    const larger = keyInfo.jwt.length >= memberInfo.jwt.length ? keyInfo : memberInfo;
    const payload = JSON.parse(Buffer.from(larger.jwt.split(".")[1], "base64url").toString());
    delete payload.exp;
    const payloadFile = join(dataDir, "payload.json");
    writeFileSync(
      payloadFile,
      JSON.stringify({ payload, secret: randomBytes(32).toString("base64url"), room: "bench-room", project: b.project_id, url: memberInfo.room_url }),
    );
    const base = await spawnBaseline(payloadFile, "jose");
    children.push({ kill: () => void base.child.kill("SIGKILL") });
    const base2 = await spawnBaseline(payloadFile, "hmac");
    children.push({ kill: () => void base2.child.kill("SIGKILL") });
    const baseJwt = (
      (await (await fetch(`${base.url}/connect`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).json()) as { jwt: string }
    ).jwt;

    progress("warming up");
    // warm up every path, then two alternating rounds
    for (const [u, t] of [[`${base.url}/connect`], [`${base2.url}/connect`], [path, memberToken], [path, b.api_key]] as [string, string?][])
      await autocannon({
        url: u,
        method: "POST",
        body: "{}",
        headers: { "content-type": "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}) },
        connections: CONNECTIONS,
        duration: 2,
      });
    const rps = { base: [] as number[], base2: [] as number[], member: [] as number[], key: [] as number[] };
    for (let round = 0; round < 2; round++) {
      rps.base.push(await cannon(`${base.url}/connect`));
      rps.base2.push(await cannon(`${base2.url}/connect`));
      rps.member.push(await cannon(path, memberToken));
      rps.key.push(await cannon(path, b.api_key));
    }
    const avg = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    const [bl, bl2, mem, key] = [avg(rps.base), avg(rps.base2), avg(rps.member), avg(rps.key)];
    console.log(
      `rooms-connect ${dialect}: JWT sizes: ours member ${memberInfo.jwt.length} B, ours api-key ${keyInfo.jwt.length} B, baseline ${baseJwt.length} B`,
    );
    console.log(`rooms-connect ${dialect}: baseline (bare Fastify + jose HS256) ${bl.toFixed(0)} req/s`);
    console.log(
      `rooms-connect ${dialect}: connect_room, member with a grant   ${mem.toFixed(0)} req/s = ${(mem / bl).toFixed(2)}x baseline (goal >= 0.5x) ${mem >= 0.5 * bl ? "OK" : "MISSED"}`,
    );
    console.log(
      `rooms-connect ${dialect}: connect_room, API key              ${key.toFixed(0)} req/s = ${(key / bl).toFixed(2)}x baseline (goal >= 0.5x) ${key >= 0.5 * bl ? "OK" : "MISSED"}`,
    );
    console.log(
      `rooms-connect ${dialect}: (info) against a bare route signing with node:crypto HMAC like ours (${bl2.toFixed(0)} req/s): ` +
        `member ${(mem / bl2).toFixed(2)}x, API key ${(key / bl2).toFixed(2)}x`,
    );
  } finally {
    for (const c of children) await c.kill();
    await drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--baseline") await baselineServer(Number(process.argv[3]), process.argv[4], process.argv[5] ?? "jose");
else {
  await main((process.argv[2] as "sqlite" | "postgres") ?? "sqlite");
  process.exit(0);
}
