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
});
