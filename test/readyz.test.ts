import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { startServer, type TestServer } from "./helpers/server.js";

/** GET /readyz: 200 when the store answers, migrations are applied and the background loops run; 503 naming why not. */
describe("readiness (/readyz)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it("is ready on a started server, with no credentials", async () => {
    const r = await s.http("GET", "/readyz", { token: null });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ready: true, checks: { store: true, migrations: true, webhook_dispatcher: true, scheduler: true } });
    expect((await s.http("GET", "/healthz", { token: null })).json).toEqual({ ok: true });
  });

  it("is not ready while the webhook dispatcher is stopped, or with a migration not applied", async () => {
    await s.ctx.webhookDispatcher.stop();
    try {
      const r = await s.http("GET", "/readyz", { token: null });
      expect(r.status).toBe(503);
      expect(r.json).toMatchObject({ ready: false, checks: { webhook_dispatcher: false, store: true }, failed: ["webhook_dispatcher is not running"] });
    } finally {
      await s.ctx.webhookDispatcher.start();
    }
    const db = s.ctx.store.db;
    const last = await sql<{ name: string; timestamp: string }>`SELECT name, timestamp FROM kysely_migration ORDER BY name DESC LIMIT 1`.execute(db);
    const row = last.rows[0];
    await sql`DELETE FROM kysely_migration WHERE name = ${row.name}`.execute(db);
    try {
      const r = await s.http("GET", "/readyz", { token: null });
      expect(r.status).toBe(503);
      expect(r.json.checks.migrations).toBe(false);
      expect(r.json.failed[0]).toContain(row.name);
    } finally {
      await sql`INSERT INTO kysely_migration (name, timestamp) VALUES (${row.name}, ${row.timestamp})`.execute(db);
    }
    expect((await s.http("GET", "/readyz", { token: null })).status).toBe(200);
  });
});
