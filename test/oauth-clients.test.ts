import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { startServer, type TestServer } from "./helpers/server.js";
import type { DomainEvent } from "../src/core/events.js";

describe("OAuth clients (P/oauth/clients)", () => {
  let s: TestServer;
  let pid: string;
  let P: string;
  const events: DomainEvent[] = [];
  const logs: string[] = [];
  const body = (extra: Record<string, unknown> = {}) => ({
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: ["http://localhost:8765/callback", "https://app.example.com/cb"],
    scope: "profile project/* room/*",
    ...extra,
  });
  beforeAll(async () => {
    s = await startServer({ logStream: { write: (l) => void logs.push(l) }, env: { MESHAGENT_LOG_LEVEL: "info" } });
    pid = s.admin.projectId;
    P = `/accounts/projects/${pid}`;
    s.ctx.bus.on((e) => events.push(e));
  });
  afterAll(() => s.close());

  it("create, list, get, update, delete with the official client; the secret is shown once and sealed at rest", async () => {
    const c = s.client();
    const created: any = await c.createOAuthClient(pid, {
      grantTypes: ["authorization_code", "refresh_token"],
      responseTypes: ["code"],
      redirectUris: ["http://127.0.0.1:9000/cb"],
      scope: "profile room/*",
      metadata: { name: "my app" },
    });
    expect(created).toMatchObject({
      clientId: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
      clientSecret: expect.stringMatching(/^.{40,}$/),
      grantTypes: ["authorization_code", "refresh_token"],
      responseTypes: ["code"],
      redirectUris: ["http://127.0.0.1:9000/cb"],
      scope: "profile room/*",
      projectId: pid,
      metadata: { name: "my app" },
    });
    const got: any = await c.getOAuthClient(pid, created.clientId);
    expect(got).toEqual({ ...created, clientSecret: "" });
    expect((await c.listOAuthClients(pid)).map((x: any) => x.clientId)).toContain(created.clientId);
    await c.updateOAuthClient(pid, created.clientId, { scope: "profile", metadata: { name: "renamed" } });
    expect(await c.getOAuthClient(pid, created.clientId)).toMatchObject({
      scope: "profile",
      metadata: { name: "renamed" },
      redirectUris: ["http://127.0.0.1:9000/cb"],
    });

    // Sealed at rest, never in logs, the audit log or events.
    const row: any = await s.ctx.store.db.selectFrom("oauth_clients").selectAll().where("client_id", "=", created.clientId).executeTakeFirstOrThrow();
    expect(row.secret_sealed).not.toContain(created.clientSecret);
    const everything = JSON.stringify((await sql`SELECT * FROM oauth_clients`.execute(s.ctx.store.db)).rows);
    expect(everything).not.toContain(created.clientSecret);
    expect(JSON.stringify((await sql`SELECT * FROM audit_log`.execute(s.ctx.store.db)).rows)).not.toContain(created.clientSecret);
    expect(logs.join("")).not.toContain(created.clientSecret);
    expect(JSON.stringify(events)).not.toContain(created.clientSecret);
    expect(s.ctx.sealer.open(row.secret_sealed, `oauth_client:${created.clientId}`)).toBe(created.clientSecret);

    await c.deleteOAuthClient(pid, created.clientId);
    await expect(c.getOAuthClient(pid, created.clientId)).rejects.toThrow(/404|not found/);
    expect(events.filter((e) => e.type.startsWith("oauth_client.")).map((e) => [e.type, (e.data as any).client_id])).toEqual([
      ["oauth_client.created", created.clientId],
      ["oauth_client.deleted", created.clientId],
    ]);
  });

  it("Python shapes over HTTP: every key present (client_secret and official included), 201 / 200 {ok} / 204", async () => {
    const r = await s.http("POST", `${P}/oauth/clients`, { json: { ...body(), metadata: {}, official: false } });
    expect(r.status).toBe(201);
    const keys = ["client_id", "client_secret", "grant_types", "response_types", "redirect_uris", "scope", "project_id", "metadata", "official"];
    expect(Object.keys(r.json).sort()).toEqual([...keys].sort());
    expect(r.json.official).toBe(false);
    const g = await s.http("GET", `${P}/oauth/clients/${r.json.client_id}`);
    expect(g.status).toBe(200);
    expect(Object.keys(g.json).sort()).toEqual([...keys].sort());
    expect(g.json.client_secret).toBe("");
    // metadata null (Python's update sends only non-None keys; a null is the same as absent)
    const u = await s.http("PUT", `${P}/oauth/clients/${r.json.client_id}`, { json: { scope: "profile", metadata: null } });
    expect([u.status, u.json]).toEqual([200, { ok: true }]);
    const d = await s.http("DELETE", `${P}/oauth/clients/${r.json.client_id}`);
    expect([d.status, d.text]).toEqual([204, ""]);
    expect((await s.http("DELETE", `${P}/oauth/clients/${r.json.client_id}`)).status).toBe(404);
  });

  it("list: count, offset, filter and total", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await s.http("POST", `${P}/oauth/clients`, { json: body({ metadata: { name: `paging-${i}` } }) })).json.client_id);
    const all = await s.http("GET", `${P}/oauth/clients?filter=paging-`);
    expect(all.json.total).toBe(5);
    expect(all.json.clients.map((c: any) => c.client_id)).toEqual(ids);
    const page = await s.http("GET", `${P}/oauth/clients?filter=PAGING-&count=2&offset=2`);
    expect(page.json.total).toBe(5);
    expect(page.json.clients.map((c: any) => c.client_id)).toEqual(ids.slice(2, 4));
    expect((await s.http("GET", `${P}/oauth/clients?filter=${ids[3]}`)).json.clients.map((c: any) => c.client_id)).toEqual([ids[3]]);
    expect((await s.http("GET", `${P}/oauth/clients?filter=${encodeURIComponent("%_")}`)).json.total).toBe(0);
    const blank = await s.http("GET", `${P}/oauth/clients?filter=%20`);
    expect(blank.json.total).toBeGreaterThanOrEqual(5);
    expect((await s.http("GET", `${P}/oauth/clients?count=-1`)).status).toBe(400);
  });

  it("bad input is a 400 naming the problem; official cannot be set by a project", async () => {
    const bad = async (json: unknown, re: RegExp, status = 400) => {
      const r = await s.http("POST", `${P}/oauth/clients`, { json });
      expect(r.status, JSON.stringify(r.json)).toBe(status);
      expect(r.json.error.message).toMatch(re);
    };
    await bad(body({ redirect_uris: ["http://example.com/cb"] }), /https, or http on a loopback host/);
    await bad(body({ redirect_uris: ["https://example.com/cb#frag"] }), /fragment/);
    await bad(body({ redirect_uris: ["not a url"] }), /absolute URL/);
    await bad(body({ redirect_uris: ["https://u:p@example.com/"] }), /credentials/);
    await bad(body({ redirect_uris: [] }), /at least one redirect URI/);
    await bad(body({ grant_types: ["password"] }), /grant_types\[0\]: "password" is not one of/);
    await bad(body({ grant_types: [] }), /at least one/);
    await bad(body({ response_types: [] }), /needs response_types/);
    await bad(body({ grant_types: ["client_credentials"] }), /client_credentials is not offered here/);
    await bad(body({ grant_types: ["refresh_token"] }), /needs the authorization_code grant/);
    await bad(body({ scope: 'bad"scope' }), /not a valid scope token/);
    await bad(body({ metadata: { n: 1 } }), /metadata/);
    await bad({ scope: "x" }, /grant_types is required/);
    await bad(body({ official: true }), /only a server administrator may mark a client official/, 403);
    // A server administrator (the bootstrap user) may.
    const off = await s.http("POST", `${P}/oauth/clients`, { token: s.admin.userToken, json: body({ official: true }) });
    expect([off.status, off.json.official]).toEqual([201, true]);
    const un = await s.http("PUT", `${P}/oauth/clients/${off.json.client_id}`, { token: s.admin.userToken, json: { official: false } });
    expect(un.status).toBe(200);
    expect((await s.http("GET", `${P}/oauth/clients/${off.json.client_id}`)).json.official).toBe(false);
    const ok = await s.http("POST", `${P}/oauth/clients`, { json: { grant_types: ["urn:ietf:params:oauth:grant-type:device_code"], scope: "" } });
    expect(ok.status).toBe(201);
    expect(ok.json).toMatchObject({ response_types: [], redirect_uris: [] });
    const u = await s.http("PUT", `${P}/oauth/clients/${ok.json.client_id}`, { json: { grant_types: ["authorization_code"] } });
    expect(u.status).toBe(400);
    expect((await s.http("PUT", `${P}/oauth/clients/${ok.json.client_id}`, { json: { official: true } })).status).toBe(403);
    expect((await s.http("PUT", `${P}/oauth/clients/nope`, { json: { scope: "x" } })).status).toBe(404);
  });

  it("another project's key gets 404; clients are invisible across projects; members are refused", async () => {
    const other = await s.otherProject();
    const mine = (await s.http("POST", `${P}/oauth/clients`, { json: body() })).json.client_id;
    const t = { token: other.apiKey };
    expect((await s.http("GET", `${P}/oauth/clients`, t)).status).toBe(404);
    expect((await s.http("GET", `${P}/oauth/clients/${mine}`, t)).status).toBe(404);
    const own = `/accounts/projects/${other.projectId}`;
    expect((await s.http("GET", `${own}/oauth/clients/${mine}`, t)).status).toBe(404);
    expect((await s.http("PUT", `${own}/oauth/clients/${mine}`, { ...t, json: { scope: "x" } })).status).toBe(404);
    expect((await s.http("DELETE", `${own}/oauth/clients/${mine}`, t)).status).toBe(404);
    expect((await s.http("GET", `${own}/oauth/clients`, t)).json).toEqual({ clients: [], total: 0 });
    const dev = await s.user({ is_developer: true });
    expect((await s.http("GET", `${P}/oauth/clients`, { token: dev.token })).status).toBe(403);
    const admin = await s.user({ is_admin: true });
    expect((await s.http("GET", `${P}/oauth/clients/${mine}`, { token: admin.token })).status).toBe(200);
    expect((await s.http("GET", `${P}/oauth/clients/${mine}`)).status).toBe(200);
  });
});
