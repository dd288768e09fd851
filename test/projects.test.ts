import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { ParticipantToken } from "./helpers/official.js";

describe("projects, users and profiles through the official client", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it("creates, lists and gets projects as a user", async () => {
    const c = s.client(s.admin.userToken);
    const created: any = await c.createProject("second", { region: "eu" });
    expect(created).toMatchObject({ name: "second", owner_user_id: s.admin.userId, settings: { region: "eu" }, enabled: true });
    expect(typeof created.id).toBe("string");
    expect(typeof created.project_key).toBe("string");
    const list: any = await c.listProjects();
    expect(list.projects.map((p: any) => p.id)).toEqual(expect.arrayContaining([s.admin.projectId, created.id]));
    for (const p of list.projects) expect(p).toHaveProperty("project_key");
    const got: any = await c.getProject(created.id);
    expect(got).toEqual(created);
  });

  it("settings, status and role", async () => {
    const c = s.client();
    expect(await c.updateProjectSettings(s.admin.projectId, { a: 1, nested: { b: [1, 2] } })).toEqual({ a: 1, nested: { b: [1, 2] } });
    expect(((await c.getProject(s.admin.projectId)) as any).settings).toEqual({ a: 1, nested: { b: [1, 2] } });
    expect(await c.getStatus(s.admin.projectId)).toBe(true);
    expect(await c.getProjectRole(s.admin.projectId)).toBe("admin");
  });

  it("adds, updates, lists and removes project users", async () => {
    const c = s.client();
    const u = await s.user(null);
    expect(await c.addUserToProject(s.admin.projectId, u.userId, { isDeveloper: true })).toMatchObject({ ok: true });
    expect(await s.client(u.token).getProjectRole(s.admin.projectId)).toBe("developer");
    const page = await c.getUsersInProjectPage(s.admin.projectId, { count: 100, offset: 0, filter: u.email.slice(0, 8) });
    expect(page.total).toBe(1);
    expect(page.users[0]).toMatchObject({ id: u.userId, email: u.email, is_developer: true, is_admin: false, role: "developer" });
    const all: any = await c.getUsersInProject(s.admin.projectId);
    expect(all.total).toBe(all.users.length);
    expect(all.users.map((x: any) => x.id)).toEqual(expect.arrayContaining([s.admin.userId, u.userId]));
    // update_project_user is not in the TS client: raw HTTP as the Python client sends it
    const up = await s.http("PUT", `/accounts/projects/${s.admin.projectId}/users/${u.userId}`, {
      json: { is_admin: false, is_developer: false, can_create_rooms: true, can_use_llm_proxy: true },
    });
    expect(up.status).toBe(200);
    expect(up.json).toEqual({ ok: true });
    const role = await s.http("GET", `/accounts/projects/${s.admin.projectId}/role`, { token: u.token });
    expect(role.json).toEqual({ role: "member", can_create_rooms: true, can_use_llm_proxy: true });
    expect(await c.removeUserFromProject(s.admin.projectId, u.userId)).toEqual({ ok: true });
    await expect(s.client(u.token).getProject(s.admin.projectId)).rejects.toThrow(/404/);
  });

  it("profiles: me, co-members, update", async () => {
    const c = s.client(s.admin.userToken);
    const me: any = await c.getUserProfile("me");
    expect(me).toEqual({ id: s.admin.userId, email: s.admin.email });
    expect(await c.updateUserProfile("me", "Ada", "Lovelace")).toEqual({ ok: true });
    expect(await c.getUserProfile(s.admin.userId)).toEqual({ id: s.admin.userId, email: s.admin.email, first_name: "Ada", last_name: "Lovelace" });
    const member = await s.user({});
    expect(await s.client(member.token).getUserProfile(s.admin.userId)).toMatchObject({ first_name: "Ada" });
    const stranger = await s.user(null);
    await expect(s.client(stranger.token).getUserProfile(s.admin.userId)).rejects.toThrow(/404/);
    await expect(s.client(member.token).updateUserProfile(s.admin.userId, "x", "y")).rejects.toThrow(/403/);
  });

  it("api keys: create once with value, list without, delete stops it at once", async () => {
    const c = s.client();
    const k: any = await c.createApiKey(s.admin.projectId, "ci", "for ci");
    expect(k).toMatchObject({ name: "ci", description: "for ci" });
    expect(k.value).toMatch(/^ma-[A-Za-z0-9_.]{22}-[A-Za-z0-9_.]{22}-.+/);
    // the official client parses our keys: the key id and project id are the UUIDs we return
    const { parseApiKey } = await import("./helpers/official.js").then((m) => m.default as any);
    const parsed = parseApiKey(k.value);
    expect(parsed.id).toBe(k.id);
    expect(parsed.projectId).toBe(s.admin.projectId);
    const list: any = await c.listApiKeys(s.admin.projectId);
    const entry = list.keys.find((x: any) => x.id === k.id);
    expect(entry).toMatchObject({ id: k.id, name: "ci", description: "for ci", created_by: expect.stringContaining("api_key:") });
    expect(JSON.stringify(list)).not.toContain(k.value.split("-").slice(3).join("-"));
    const withKey = s.client(k.value);
    expect(await withKey.getStatus(s.admin.projectId)).toBe(true);
    await c.deleteApiKey(s.admin.projectId, k.id);
    await expect(withKey.getStatus(s.admin.projectId)).rejects.toThrow(/401/);
    await expect(c.deleteApiKey(s.admin.projectId, k.id)).rejects.toThrow(/404/);
  });

  it("the API key secret signs participant tokens the official client builds", async () => {
    const k: any = await s.client().createApiKey(s.admin.projectId, "signer", "");
    const t = new ParticipantToken({ name: "bob" });
    t.addRoomGrant("room-a");
    const jwt = await t.toJwt({ apiKey: k.value });
    const secret = await s.ctx.apiKeys.secretOf(k.id);
    const decoded = await ParticipantToken.fromJwt(jwt, { token: secret!.secret });
    expect(decoded.name).toBe("bob");
    expect(decoded.projectId).toBe(s.admin.projectId);
    expect(decoded.apiKeyId).toBe(k.id);
  });

  it("pricing is public", async () => {
    const p: any = await s.client("junk").getPricing();
    expect(p.currency).toBe("usd");
    expect(p.prices.length).toBeGreaterThan(0);
    for (const x of p.prices) expect(x).toMatchObject({ id: expect.any(String), unit: expect.any(String), unit_price: expect.any(Number) });
  });
});

describe("Python-client wire rules (raw HTTP)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());
  const P = () => `/accounts/projects/${s.admin.projectId}`;

  it("accepts null for every optional field", async () => {
    const r = await s.http("POST", "/accounts/projects", { token: s.admin.userToken, json: { name: "py", settings: null } });
    expect(r.status).toBe(201);
    expect(r.json.settings).toEqual({});
    const u = await s.user(null);
    const add = await s.http("POST", `${P()}/users`, {
      json: { project_id: s.admin.projectId, user_id: u.userId, is_admin: null, is_developer: null, can_create_rooms: true, can_use_llm_proxy: null },
    });
    expect(add.status).toBe(200);
    expect(add.json.ok).toBe(true);
    const k = await s.http("POST", `${P()}/api-keys`, { json: { name: "n", description: null } });
    expect(k.status).toBe(201);
    expect(k.json.description).toBe("");
    const prof = await s.http("PUT", "/accounts/profiles/me", { token: s.admin.userToken, json: { first_name: null, last_name: "L" } });
    expect(prof.json).toEqual({ ok: true });
  });

  it("answers JSON bodies (never 204) where the client reads one", async () => {
    const u = await s.user({});
    const checks = [
      await s.http("DELETE", `${P()}/users/${u.userId}`),
      await s.http("PUT", `${P()}/settings`, { json: {} }),
      await s.http("GET", `${P()}/status`),
      await s.http("PUT", "/accounts/profiles/me", { token: s.admin.userToken, json: { first_name: "a", last_name: "b" } }),
    ];
    for (const r of checks) {
      expect(r.status).toBeLessThan(300);
      expect(r.status).not.toBe(204);
      expect(r.headers.get("content-type")).toMatch(/application\/json/);
      expect(typeof r.json).toBe("object");
    }
    expect(checks[2].json).toEqual({ enabled: true });
  });

  it("shapes: projects list, profile, users page, api keys list, role values", async () => {
    const l = await s.http("GET", "/accounts/projects", { token: s.admin.userToken });
    expect(Array.isArray(l.json.projects)).toBe(true);
    for (const p of l.json.projects) expect(p).toMatchObject({ id: expect.any(String), name: expect.any(String), project_key: expect.any(String) });
    const me = await s.http("GET", "/accounts/profiles/me", { token: s.admin.userToken });
    expect(me.json).toMatchObject({ id: s.admin.userId, email: s.admin.email });
    const users = await s.http("GET", `${P()}/users?count=1&offset=0`);
    expect(users.json.users).toHaveLength(1);
    expect(users.json.total).toBeGreaterThanOrEqual(1);
    const keys = await s.http("GET", `${P()}/api-keys`);
    expect(Array.isArray(keys.json.keys)).toBe(true);
    for (const k of keys.json.keys) expect(k).not.toHaveProperty("value");
    const dev = await s.user({ is_developer: true });
    const r = await s.http("GET", `${P()}/role`, { token: dev.token });
    expect(["member", "admin", "developer"]).toContain(r.json.role);
    expect(r.json).toEqual({ role: "developer", can_create_rooms: true, can_use_llm_proxy: false });
    // Python sends "Bearer None" when it has no token
    expect((await s.http("GET", `${P()}/status`, { token: "None" })).status).toBe(401);
  });

  it("paging of users: count/offset/filter with total", async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await s.user({}));
    const filter = "user";
    const all = await s.http("GET", `${P()}/users?count=1000&filter=${filter}`);
    const total = all.json.total;
    expect(total).toBe(all.json.users.length);
    const seen: string[] = [];
    for (let off = 0; off < total; off += 2) {
      const pg = await s.http("GET", `${P()}/users?count=2&offset=${off}&filter=${filter}`);
      expect(pg.json.total).toBe(total);
      seen.push(...pg.json.users.map((u: any) => u.id));
    }
    expect(seen).toEqual(all.json.users.map((u: any) => u.id));
    expect(new Set(seen).size).toBe(seen.length);
    const none = await s.http("GET", `${P()}/users?filter=${encodeURIComponent("%_nobody")}`);
    expect(none.json).toEqual({ users: [], total: 0 });
  });
});
