import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";

describe("bad input gets a 4xx naming the problem, never a 500", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_BODY_LIMIT: "65536" } });
  });
  afterAll(() => s.close());

  const cases: [string, string, { json?: unknown; body?: string; token?: string; headers?: Record<string, string> }, number, RegExp][] = [
    ["POST", "/accounts/projects", { json: { name: 5 } }, 400, /name/],
    ["POST", "/accounts/projects", { json: {} }, 400, /name/],
    ["POST", "/accounts/projects", { json: { name: "" } }, 400, /name/],
    ["POST", "/accounts/projects", { json: { name: "x", settings: [1, 2] } }, 400, /settings/],
    ["POST", "/accounts/projects", { json: { name: "x".repeat(201) } }, 400, /name/],
    ["POST", "/accounts/projects", { body: "{not json", headers: { "content-type": "application/json" } }, 400, /JSON|json/],
    [
      "POST",
      "/accounts/projects",
      { body: "name=x", headers: { "content-type": "application/x-www-form-urlencoded" } },
      415,
      /Content-Type: application\/json/,
    ],
    ["GET", "/accounts/projects/not-a-uuid", {}, 400, /project_id/],
    ["GET", "/accounts/projects/not-a-uuid/status", {}, 400, /project_id/],
    ["PUT", "/accounts/projects/123/settings", { json: {} }, 400, /project_id/],
    ["PUT", "/accounts/projects/{P}/settings", { json: [1] }, 400, /object/],
    ["PUT", "/accounts/projects/{P}/settings", { body: "42", headers: { "content-type": "application/json" } }, 400, /object/],
    ["POST", "/accounts/projects/{P}/users", { json: { project_id: "x", user_id: 7 } }, 400, /user_id/],
    ["POST", "/accounts/projects/{P}/users", { json: { project_id: "x" } }, 400, /user_id/],
    ["POST", "/accounts/projects/{P}/users", { json: { user_id: "11111111-1111-4111-8111-111111111111" } }, 404, /user/],
    ["POST", "/accounts/projects/{P}/users", { json: { user_id: "nope" } }, 404, /user/],
    ["POST", "/accounts/projects/{P}/users", { json: { email: "not-an-email" } }, 400, /email/],
    ["POST", "/accounts/projects/{P}/users", { json: { user_id: "{U}", is_admin: "yes" } }, 400, /is_admin/],
    ["PUT", "/accounts/projects/{P}/users/nope", { json: { is_admin: true } }, 404, /member/],
    ["PUT", "/accounts/projects/{P}/users/{U}", { json: { is_admin: 1 } }, 400, /is_admin/],
    ["DELETE", "/accounts/projects/{P}/users/nope", {}, 404, /member/],
    ["GET", "/accounts/projects/{P}/users?count=abc", {}, 400, /count/],
    ["GET", "/accounts/projects/{P}/users?offset=-1", {}, 400, /offset/],
    ["POST", "/accounts/projects/{P}/api-keys", { json: { description: "d" } }, 400, /name/],
    ["POST", "/accounts/projects/{P}/api-keys", { json: { name: ["a"] } }, 400, /name/],
    ["DELETE", "/accounts/projects/{P}/api-keys/not-a-uuid", {}, 404, /api key/],
    ["PUT", "/accounts/profiles/me", { json: { first_name: 3 }, token: "{T}" }, 400, /first_name/],
    ["GET", "/accounts/profiles/11111111-1111-4111-8111-111111111111", { token: "{T}" }, 404, /user/],
    ["POST", "/accounts/projects", { json: { name: "big", settings: { blob: "x".repeat(70_000) } }, token: "{T}" }, 413, /larger/],
  ];

  for (const [method, path, opts, status, msg] of cases) {
    it(`${method} ${path} ${JSON.stringify(opts.json ?? opts.body ?? "").slice(0, 60)} → ${status}`, async () => {
      const u = await s.user({});
      const fill = (x: string) => x.replace("{P}", s.admin.projectId).replace("{U}", u.userId);
      const json = opts.json === undefined ? undefined : JSON.parse(fill(JSON.stringify(opts.json)));
      const token =
        opts.token === "{T}"
          ? s.admin.userToken
          : (opts.token ?? (path.startsWith("/accounts/projects") && method === "POST" && path === "/accounts/projects" ? s.admin.userToken : undefined));
      const r = await s.http(method, fill(path), { json, body: opts.body, headers: opts.headers, token });
      expect(r.status, r.text).toBe(status);
      expect(r.json.error.code).toMatch(/^[a-z_]+$/);
      expect(r.json.error.message).toMatch(msg);
    });
  }

  it("the server still answers after all of that", async () => {
    expect((await s.http("GET", "/healthz")).json).toEqual({ ok: true });
  });
});
