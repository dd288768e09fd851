import pg from "pg";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { Meshagent } from "./official.js";
import { loadConfig, type Config } from "../../src/config.js";
import { createContext } from "../../src/wiring.js";
import { buildApp } from "../../src/app.js";
import { bootstrap } from "../../src/bootstrap.js";
import type { AppContext } from "../../src/context.js";
import type { Clock } from "../../src/core/clock.js";

/** The Postgres suite runs when MESHAGENT_TEST_DATABASE_URL is set; each test file gets its own fresh database. */
export const PG_URL = process.env.MESHAGENT_TEST_DATABASE_URL;
export const dialectName = PG_URL ? "postgres" : "sqlite";

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function freshDatabase(dataDir: string): Promise<TestDatabase> {
  if (!PG_URL) return { url: `sqlite://${join(dataDir, "meshagent.db")}`, drop: async () => {} };
  const name = `mt_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A database made earlier by freshDatabase (a restart on the same data); drop() drops it on PostgreSQL. */
export function existingDatabase(url: string): TestDatabase {
  if (!PG_URL || !/^postgres(ql)?:/.test(url)) return { url, drop: async () => {} };
  const name = new URL(url).pathname.slice(1);
  return {
    url,
    async drop() {
      if (!/^mt_[0-9a-f]+$/.test(name)) return; // only databases this harness created
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface TestServer {
  url: string;
  /** The database this server uses (pass it as `databaseUrl` to start another server on the same data). */
  databaseUrl: string;
  app: FastifyInstance;
  ctx: AppContext;
  config: Config;
  dataDir: string;
  /** The bootstrapped admin: owner of `projectId`, with an API key and a user token. */
  admin: { userId: string; email: string; projectId: string; apiKey: string; userToken: string };
  /** The official client with the given bearer (default: the admin's API key). */
  client(token?: string): InstanceType<typeof Meshagent>;
  /** Raw HTTP against the server. */
  http(
    method: string,
    path: string,
    opts?: { token?: string | null; json?: unknown; body?: string | Buffer; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; text: string; json: any }>;
  /** A new user with a token, added to the project with the given flags (or to no project when flags is null). */
  user(
    flags?: { is_admin?: boolean; is_developer?: boolean; can_create_rooms?: boolean } | null,
    projectId?: string,
  ): Promise<{ userId: string; email: string; token: string }>;
  /** Another project with its own admin user and API key. */
  otherProject(): Promise<{ projectId: string; apiKey: string; userToken: string; userId: string }>;
  close(): Promise<void>;
}

/**
 * Options: `env` (MESHAGENT_* variables; MESHAGENT_SMTP_PORT=0 starts SMTP on a random port, see ctx.mail.port),
 * `clock`, `keepData` (use this data directory and leave it on close), `keepDatabase` (don't drop the database
 * on close) and `databaseUrl` (reuse an existing database instead of a fresh one: a restart on the same data).
 */
export async function startServer(
  opts: {
    env?: Record<string, string>;
    clock?: Clock;
    keepData?: string;
    keepDatabase?: boolean;
    databaseUrl?: string;
    /** The server logs (at MESHAGENT_LOG_LEVEL) to this stream instead of not at all. */
    logStream?: { write(line: string): void };
  } = {},
): Promise<TestServer> {
  const dataDir = opts.keepData ?? mkdtempSync(join(tmpdir(), "meshagent-test-"));
  const db: TestDatabase = opts.databaseUrl ? existingDatabase(opts.databaseUrl) : await freshDatabase(dataDir);
  const config = loadConfig({
    MESHAGENT_DATA_DIR: dataDir,
    MESHAGENT_DATABASE_URL: db.url,
    MESHAGENT_PORT: "0",
    MESHAGENT_LOG_LEVEL: "warn",
    // No container runtime unless a test asks for one (MESHAGENT_DOCKER_HOST): services created by other tests never start containers.
    MESHAGENT_DOCKER_HOST: "none",
    ...opts.env,
  });
  const ctx = await createContext(config, { clock: opts.clock, logStream: opts.logStream });
  const app = await buildApp(ctx, opts.logStream ? { logStream: opts.logStream } : { logger: false });
  await app.listen({ port: 0, host: "127.0.0.1" });
  await ctx.webhookDispatcher.start();
  await ctx.mail.start();
  // The scheduler engine runs like in `serve` (MESHAGENT_SCHEDULER_ENABLED=false leaves it to explicit ctx.schedulerEngine.tick()).
  ctx.schedulerEngine.start();
  ctx.invitations.start();
  if (config.billing.enabled) ctx.billingEngine.start();
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  const url = `http://127.0.0.1:${port}`;
  (config as { publicUrl: string }).publicUrl = url;
  const b = await bootstrap(ctx, { email: `admin-${randomBytes(3).toString("hex")}@example.com`, project: "default" });
  const admin = { userId: b.user_id, email: b.email, projectId: b.project_id, apiKey: b.api_key, userToken: b.user_token };
  let n = 0;

  const http: TestServer["http"] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    const token = o.token === undefined ? admin.apiKey : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Buffer | undefined = o.body;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers["content-type"] ??= "application/json";
    }
    const res = await fetch(url + path, { method, headers, body: body as BodyInit | undefined });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };

  const server: TestServer = {
    url,
    databaseUrl: db.url,
    app,
    ctx,
    config,
    dataDir,
    admin,
    client: (token = admin.apiKey) => new Meshagent({ baseUrl: url, token }),
    http,
    async user(flags = {}, projectId = admin.projectId) {
      const email = `user${++n}-${randomBytes(3).toString("hex")}@example.com`;
      const u = await ctx.users.create({ email, first_name: `First${n}`, last_name: `Last${n}` });
      const token = await ctx.users.issueToken(u.id, { kind: "pat", name: "test" });
      if (flags) await ctx.projects.addUser(projectId, { user_id: u.id, ...flags });
      return { userId: u.id, email, token };
    },
    async otherProject() {
      const o = await bootstrap(ctx, { email: `other-${randomBytes(3).toString("hex")}@example.com`, project: "other" });
      return { projectId: o.project_id, apiKey: o.api_key, userToken: o.user_token, userId: o.user_id };
    },
    async close() {
      await app.close();
      await (ctx as AppContext & { close(): Promise<void> }).close();
      if (!opts.keepDatabase) await db.drop();
      if (!opts.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}
