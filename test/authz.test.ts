import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";

type Who = "none" | "garbage" | "deletedKey" | "otherKey" | "otherUser" | "member" | "developer" | "admin" | "apiKey";
const WHO: Who[] = ["none", "garbage", "deletedKey", "otherKey", "otherUser", "member", "developer", "admin", "apiKey"];

describe("authorization matrix", () => {
  let s: TestServer;
  const tokens: Partial<Record<Who, string | null>> = {};
  beforeAll(async () => {
    s = await startServer();
    const dead: any = await s.client().createApiKey(s.admin.projectId, "dead", "");
    await s.client().deleteApiKey(s.admin.projectId, dead.id);
    const other = await s.otherProject();
    tokens.none = null;
    tokens.garbage = "garbage-token";
    tokens.deletedKey = dead.value;
    tokens.otherKey = other.apiKey;
    tokens.otherUser = other.userToken;
    tokens.member = (await s.user({})).token;
    tokens.developer = (await s.user({ is_developer: true })).token;
    tokens.admin = (await s.user({ is_admin: true })).token;
    tokens.apiKey = s.admin.apiKey;
  });
  afterAll(() => s.close());

  const P = () => `/accounts/projects/${s.admin.projectId}`;
  const deny = { none: 401, garbage: 401, deletedKey: 401, otherKey: 404, otherUser: 404 } as const;
  const read = { ...deny, member: 200, developer: 200, admin: 200, apiKey: 200 };
  const devRead = { ...deny, member: 403, developer: 200, admin: 200, apiKey: 200 };
  const adminOnly = (ok: number) => ({ ...deny, member: 403, developer: 403, admin: ok, apiKey: ok });

  // Each case builds its request fresh per caller, so destructive calls get their own target.
  const cases: { name: string; expect: Record<Who, number>; req: () => Promise<[string, string, unknown?]> }[] = [
    { name: "get_project", expect: read, req: async () => ["GET", P()] },
    { name: "get_status", expect: read, req: async () => ["GET", `${P()}/status`] },
    { name: "get_project_role", expect: read, req: async () => ["GET", `${P()}/role`] },
    { name: "get_users_in_project", expect: devRead, req: async () => ["GET", `${P()}/users`] },
    { name: "update_project_settings", expect: adminOnly(200), req: async () => ["PUT", `${P()}/settings`, { x: 1 }] },
    {
      name: "add_user_to_project",
      expect: adminOnly(200),
      req: async () => ["POST", `${P()}/users`, { project_id: s.admin.projectId, user_id: (await s.user(null)).userId }],
    },
    {
      name: "update_project_user",
      expect: adminOnly(200),
      req: async () => ["PUT", `${P()}/users/${(await s.user({})).userId}`, { is_admin: false, is_developer: false, can_create_rooms: true, can_use_llm_proxy: false }],
    },
    { name: "remove_user_from_project", expect: adminOnly(200), req: async () => ["DELETE", `${P()}/users/${(await s.user({})).userId}`] },
    { name: "create_api_key", expect: adminOnly(201), req: async () => ["POST", `${P()}/api-keys`, { name: "k", description: "" }] },
    { name: "list_api_keys", expect: adminOnly(200), req: async () => ["GET", `${P()}/api-keys`] },
    {
      name: "delete_api_key",
      expect: adminOnly(200),
      req: async () => ["DELETE", `${P()}/api-keys/${((await s.client().createApiKey(s.admin.projectId, "x", "")) as any).id}`],
    },
    {
      name: "create_project",
      expect: { none: 401, garbage: 401, deletedKey: 401, otherKey: 403, otherUser: 201, member: 201, developer: 201, admin: 201, apiKey: 403 },
      req: async () => ["POST", "/accounts/projects", { name: "p" }],
    },
    {
      name: "list_projects",
      expect: { none: 401, garbage: 401, deletedKey: 401, otherKey: 200, otherUser: 200, member: 200, developer: 200, admin: 200, apiKey: 200 },
      req: async () => ["GET", "/accounts/projects"],
    },
    {
      name: "get_user_profile me",
      expect: { none: 401, garbage: 401, deletedKey: 401, otherKey: 403, otherUser: 200, member: 200, developer: 200, admin: 200, apiKey: 403 },
      req: async () => ["GET", "/accounts/profiles/me"],
    },
    {
      name: "update_user_profile me",
      expect: { none: 401, garbage: 401, deletedKey: 401, otherKey: 403, otherUser: 200, member: 200, developer: 200, admin: 200, apiKey: 403 },
      req: async () => ["PUT", "/accounts/profiles/me", { first_name: "a", last_name: "b" }],
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const got: Record<string, number> = {};
      for (const who of WHO) {
        const [method, path, json] = await c.req();
        const r = await s.http(method, path, { token: tokens[who] ?? null, json });
        got[who] = r.status;
        if (r.status >= 400) expect(r.json?.error, `${who} ${method} ${path}`).toMatchObject({ code: expect.any(String), message: expect.any(String) });
      }
      expect(got).toEqual(c.expect);
    });
  }

  it("a member may leave a project but not remove the owner", async () => {
    const m = await s.user({});
    expect((await s.http("DELETE", `${P()}/users/${m.userId}`, { token: m.token })).status).toBe(200);
    expect((await s.http("DELETE", `${P()}/users/${s.admin.userId}`)).status).toBe(403);
    const r = await s.http("PUT", `${P()}/users/${s.admin.userId}`, { json: { is_admin: false, is_developer: false, can_create_rooms: false, can_use_llm_proxy: false } });
    expect(r.status).toBe(403);
  });

  it("another project's key sees nothing of this project's members or keys", async () => {
    const other = await s.otherProject();
    const key: any = await s.client().createApiKey(s.admin.projectId, "mine", "");
    expect((await s.http("DELETE", `/accounts/projects/${other.projectId}/api-keys/${key.id}`, { token: other.apiKey })).status).toBe(404);
    expect((await s.http("DELETE", `${P()}/api-keys/${key.id}`, { token: other.apiKey })).status).toBe(404);
    expect(await s.client().getStatus(s.admin.projectId)).toBe(true);
  });
});
