import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshDatabase, PG_URL, type TestDatabase } from "./helpers/server.js";
import { freePort, spawnServer, type ServerProcess } from "./helpers/process.js";
import { Receiver, until } from "./helpers/receiver.js";
import { Meshagent } from "./helpers/official.js";
import { loadConfig } from "../src/config.js";
import { createContext } from "../src/wiring.js";
import { bootstrap } from "../src/bootstrap.js";
import { inTx } from "../src/store/db.js";

/** Processes, restarts and kill -9: the outbox keeps every event until a receiver acknowledged it. */
describe("webhook durability across processes", () => {
  let dataDir: string;
  let db: TestDatabase;
  let env: Record<string, string>;
  let admin: { projectId: string; apiKey: string };
  const procs: ServerProcess[] = [];

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "meshagent-whdur-"));
    db = await freshDatabase(dataDir);
    env = {
      MESHAGENT_DATA_DIR: dataDir,
      MESHAGENT_DATABASE_URL: db.url,
      MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
      MESHAGENT_WEBHOOK_POLL_MS: "50",
    };
    const ctx = await createContext(loadConfig(env), { listen: false });
    const b = await bootstrap(ctx, { email: "hooks@example.com", project: "hooks" });
    admin = { projectId: b.project_id, apiKey: b.api_key };
    await ctx.close();
  });
  afterAll(async () => {
    for (const p of procs) await p.kill("SIGKILL");
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const spawn = async (extra: Record<string, string> = {}) => {
    const p = await spawnServer({ ...env, ...extra });
    procs.push(p);
    return p;
  };
  const client = (p: ServerProcess) => new Meshagent({ baseUrl: p.url, token: admin.apiKey });
  const deliveriesOf = async (p: ServerProcess, webhookId: string) => {
    const r = await fetch(`${p.url}/accounts/projects/${admin.projectId}/webhooks/${webhookId}/deliveries`, {
      headers: { authorization: `Bearer ${admin.apiKey}` },
    });
    return ((await r.json()) as any).deliveries as any[];
  };

  it("receiver down: the row is kept across a restart and delivered once the receiver is back", async () => {
    const port = await freePort(); // nothing listens here yet
    const srv = await spawn();
    const w: any = await client(srv).createWebhook(admin.projectId, { name: "down", url: `http://127.0.0.1:${port}/webhook`, events: ["api_key.created"] });
    const key: any = await client(srv).createApiKey(admin.projectId, "while-down", "");
    const first = await until(async () => (await deliveriesOf(srv, w.id)).find((d) => d.attempts >= 1), "a failed attempt");
    expect(first).toMatchObject({ status: "pending", last_status_code: null });
    expect(first.history[0].error).toMatch(/ECONNREFUSED|connect/);
    expect(await srv.kill("SIGTERM")).toBe(0);

    const r = await Receiver.start(port);
    try {
      const srv2 = await spawn();
      await r.waitFor(1, 20_000); // the first retry is due 5–6.25 s after the failed attempt
      expect(JSON.parse(r.requests[0].body)).toEqual({ event: "api_key.created", data: { id: key.id, name: "while-down" } });
      expect(r.requests[0].headers["webhook-id"]).toBe(first.id);
      const d = await until(async () => (await deliveriesOf(srv2, w.id)).find((x) => x.status === "delivered"), "delivered");
      expect(d.id).toBe(first.id);
      expect(d.attempts).toBe(2);
      await srv2.kill("SIGTERM");
      await client(srv2)
        .deleteWebhook(admin.projectId, w.id)
        .catch(() => {});
    } finally {
      await r.close();
    }
  });

  it("kill -9 of the dispatcher mid-flight: delivered again after restart, with the same id to dedupe", async () => {
    const r = await Receiver.start();
    r.responder = (_q, n) => (n === 0 ? "hang" : { status: 200, body: "ok" });
    // A short lease, so that on Postgres the killed process's claim is retried quickly (SQLite releases at start).
    const short = { MESHAGENT_WEBHOOK_TIMEOUT_MS: "5000", MESHAGENT_WEBHOOK_LEASE_MS: "6000" };
    try {
      const srv = await spawn(short);
      const w: any = await client(srv).createWebhook(admin.projectId, { name: "killed", url: r.url, events: ["api_key.created"] });
      await client(srv).createApiKey(admin.projectId, "mid-flight", "");
      await r.waitFor(1);
      expect(await srv.kill("SIGKILL")).toBe(null); // while the receiver holds the request open
      const srv2 = await spawn(short);
      await r.waitFor(2, 20_000);
      expect(r.requests[1].headers["webhook-id"]).toBe(r.requests[0].headers["webhook-id"]);
      expect(r.requests[1].body).toBe(r.requests[0].body);
      const d = await until(async () => (await deliveriesOf(srv2, w.id)).find((x) => x.status === "delivered"), "delivered");
      expect(d.id).toBe(r.requests[0].headers["webhook-id"]);
      await client(srv2).deleteWebhook(admin.projectId, w.id);
      await srv2.kill("SIGTERM");
    } finally {
      await r.close();
    }
  });

  // With the default 15 s timeout: a receiver slower than the timeout gets a retry (at-least-once), not a duplicate claim.
  it.runIf(PG_URL)("two Postgres-backed processes deliver 1000 events exactly once between them", async () => {
    const r = await Receiver.start();
    r.responder = () => ({ status: 200, delayMs: 2 });
    const ctx = await createContext(loadConfig(env));
    try {
      const other = await spawn();
      const w = await ctx.webhooks.create(admin.projectId, { name: "shared", url: r.url, events: ["room.updated"] });
      await ctx.webhookDispatcher.start();
      const after = await inTx(ctx.store.db, async (tx) => {
        const fns: (() => void)[] = [];
        for (let i = 0; i < 1000; i++)
          fns.push(await ctx.bus.publish(tx, { type: "room.updated", project_id: admin.projectId, data: { id: String(i), room_name: `r${i}` } }));
        return () => fns.forEach((f) => f());
      });
      after();
      await r.waitFor(1000, 60_000);
      await until(
        async () => {
          const n = await ctx.store.db
            .selectFrom("webhook_deliveries")
            .select((e) => e.fn.countAll<number>().as("n"))
            .where("webhook_id", "=", w.id)
            .where("status", "=", "delivered")
            .executeTakeFirstOrThrow();
          return Number(n.n) === 1000;
        },
        "1000 delivered rows",
        30_000,
      );
      await new Promise((res) => setTimeout(res, 500)); // a late duplicate would show up here
      const attempts = await ctx.store.db
        .selectFrom("webhook_attempts as a")
        .innerJoin("webhook_deliveries as d", "d.id", "a.delivery_id")
        .where("d.webhook_id", "=", w.id)
        .select(["a.delivery_id", "a.worker", "a.started_at", "a.latency_ms", "a.status_code", "a.error"])
        .execute();
      // Every request the receiver got is a recorded attempt; a second attempt of one delivery happens only after a
      // recorded failure (a timeout on an overloaded machine), never because two processes claimed it at once.
      const failed = attempts.filter((a) => a.status_code !== 200);
      expect(r.requests.length).toBeLessThanOrEqual(attempts.length); // a timed-out request may never have arrived
      expect(r.requests.length).toBeGreaterThanOrEqual(1000);
      expect(attempts.length).toBe(1000 + failed.length);
      const byDelivery = new Map<string, typeof attempts>();
      for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a]);
      expect(byDelivery.size).toBe(1000);
      for (const list of byDelivery.values()) {
        expect(list.filter((a) => a.status_code === 200)).toHaveLength(1);
        list.sort((x, y) => x.started_at - y.started_at);
        for (let i = 1; i < list.length; i++) expect(list[i].started_at).toBeGreaterThanOrEqual(list[i - 1].started_at + list[i - 1].latency_ms);
      }
      expect(new Set(r.requests.map((q) => JSON.parse(q.body).data.id)).size).toBe(1000);
      const workers = new Set(attempts.map((a) => a.worker));
      expect(workers.size, [...workers].join(", ")).toBe(2); // both processes took a share
      if (failed.length === 0) expect(new Set(r.requests.map((q) => q.headers["webhook-id"])).size).toBe(1000);
      await other.kill("SIGTERM");
    } finally {
      await ctx.close();
      await r.close();
    }
  });
});
