import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";

describe("server administrators (/admin)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());
  const as = (token: string | null) => ({
    get: (path: string) => s.http("GET", path, { token }),
    put: (path: string, json: unknown) => s.http("PUT", path, { token, json }),
  });

  it("the bootstrap user administers the server; project admins, API keys and participants do not", async () => {
    const root = as(s.admin.userToken);
    const list = await root.get("/admin/users");
    expect(list.status).toBe(200);
    expect(list.json.users.find((u: any) => u.id === s.admin.userId)).toMatchObject({ email: s.admin.email, is_server_admin: true, disabled: false });
    const padmin = await s.user({ is_admin: true });
    expect((await as(padmin.token).get("/admin/users")).status).toBe(403);
    expect((await as(s.admin.apiKey).get("/admin/users")).status).toBe(403);
    expect((await as(null).get("/admin/users")).status).toBe(401);
    expect((await as(padmin.token).put("/admin/settings", { signup_policy: "open" })).status).toBe(403);
  });

  it("list: count, offset, filter, total", async () => {
    const root = as(s.admin.userToken);
    const made = [];
    for (let i = 0; i < 3; i++) made.push(await s.user({}));
    const all = await root.get(`/admin/users?filter=${encodeURIComponent("@example.com")}`);
    expect(all.json.total).toBeGreaterThanOrEqual(4);
    const one = await root.get(`/admin/users?filter=${encodeURIComponent(made[1].email.toUpperCase())}`);
    expect(one.json).toMatchObject({ total: 1, users: [{ id: made[1].userId }] });
    const page = await root.get("/admin/users?count=2&offset=1");
    expect(page.json.users).toHaveLength(2);
    expect(page.json.total).toBe(all.json.total);
    expect((await root.get("/admin/users?offset=-1")).status).toBe(400);
  });

  it("a disabled user's tokens are refused at once; enabled again they work", async () => {
    const root = as(s.admin.userToken);
    const u = await s.user({});
    const me = () => s.http("GET", "/accounts/profiles/me", { token: u.token });
    expect((await me()).status).toBe(200); // cached from now on
    const d = await root.put(`/admin/users/${u.userId}`, { disabled: true });
    expect(d.json).toMatchObject({ id: u.userId, disabled: true, disabled_at: expect.any(String) });
    expect((await me()).status).toBe(401);
    expect((await s.http("GET", `/accounts/projects/${s.admin.projectId}`, { token: u.token })).status).toBe(401);
    const e = await root.put(`/admin/users/${u.userId}`, { disabled: false });
    expect(e.json.disabled).toBe(false);
    expect((await me()).status).toBe(200);
    expect((await root.put("/admin/users/nope", { disabled: true })).status).toBe(404);
  });

  it("the server keeps an enabled administrator: no disabling yourself, no demoting the last one", async () => {
    const root = as(s.admin.userToken);
    expect((await root.put(`/admin/users/${s.admin.userId}`, { disabled: true })).status).toBe(400);
    const demote = await root.put(`/admin/users/${s.admin.userId}`, { is_server_admin: false });
    expect(demote.status).toBe(409);
    expect(demote.json.error.message).toMatch(/last enabled administrator/);
    const other = await s.user({});
    expect((await root.put(`/admin/users/${other.userId}`, { is_server_admin: true })).json.is_server_admin).toBe(true);
    expect((await as(other.token).get("/admin/users")).status).toBe(200);
    // now the bootstrap user may step down, and the other may restore them
    expect((await root.put(`/admin/users/${s.admin.userId}`, { is_server_admin: false })).json.is_server_admin).toBe(false);
    expect((await root.get("/admin/users")).status).toBe(403);
    expect((await as(other.token).put(`/admin/users/${s.admin.userId}`, { is_server_admin: true })).status).toBe(200);
    expect((await root.get("/admin/users")).status).toBe(200);
  });

  it("settings: the sign-up policy (invite by default)", async () => {
    const root = as(s.admin.userToken);
    expect((await root.get("/admin/settings")).json).toEqual({ signup_policy: "invite" });
    expect((await root.put("/admin/settings", { signup_policy: "open" })).json).toEqual({ signup_policy: "open" });
    expect((await root.get("/admin/settings")).json).toEqual({ signup_policy: "open" });
    const bad = await root.put("/admin/settings", { signup_policy: "everyone" });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/one of open, invite, closed/);
    expect((await root.put("/admin/settings", {})).json).toEqual({ signup_policy: "open" });
  });

  it("instance-wide OAuth clients: the official CLI's from the start; create (public or with a secret), refuse bad input, delete", async () => {
    const post = (token: string, json: unknown) => s.http("POST", "/admin/oauth/clients", { token, json });
    const list = await as(s.admin.userToken).get("/admin/oauth/clients");
    expect(list.json.clients).toContainEqual(
      expect.objectContaining({
        client_id: "p8xy1ZUi73jJUJbNfTg92HUSDpCSZJcc",
        public: true,
        official: true,
        redirect_uris: ["http://localhost:8765/callback"],
      }),
    );
    const pub = await post(s.admin.userToken, { redirect_uris: ["http://127.0.0.1:9000/cb"], public: true, name: "Console" });
    expect(pub.status).toBe(201);
    expect(pub.json).toMatchObject({ public: true, official: true, metadata: { client_name: "Console" } });
    expect(pub.json.client_secret).toBeUndefined();
    const conf = await post(s.admin.userToken, { redirect_uris: ["https://ops.example.com/cb"], official: false });
    expect([conf.status, typeof conf.json.client_secret, conf.json.official]).toEqual([201, "string", false]);
    expect(JSON.stringify((await as(s.admin.userToken).get("/admin/oauth/clients")).json)).not.toContain(conf.json.client_secret);
    const badUri = await post(s.admin.userToken, { redirect_uris: ["http://example.com/cb"] });
    expect([badUri.status, badUri.json.error.message]).toEqual([400, expect.stringMatching(/https, or http on a loopback host/)]);
    expect((await post(s.admin.userToken, { redirect_uris: [], grant_types: ["authorization_code"] })).status).toBe(400);
    expect((await post(s.admin.userToken, { redirect_uris: ["https://a.example/cb"], grant_types: ["client_credentials"] })).status).toBe(400);
    // a project admin, another project's key, a user who is not a server admin: refused
    const other = await s.otherProject();
    const projectAdmin = await s.user({ is_admin: true });
    expect((await post(other.apiKey, { redirect_uris: ["https://a.example/cb"] })).status).toBe(403);
    expect((await post(projectAdmin.token, { redirect_uris: ["https://a.example/cb"] })).status).toBe(403);
    expect((await s.http("DELETE", `/admin/oauth/clients/${pub.json.client_id}`, { token: projectAdmin.token })).status).toBe(403);
    expect((await s.http("DELETE", `/admin/oauth/clients/${pub.json.client_id}`, { token: s.admin.userToken })).status).toBe(204);
    expect((await s.http("DELETE", `/admin/oauth/clients/${pub.json.client_id}`, { token: s.admin.userToken })).status).toBe(404);
  });
});
