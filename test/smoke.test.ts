import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";

describe("server basics", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it("answers healthz, openapi and docs", async () => {
    expect((await s.http("GET", "/healthz", { token: null })).json).toEqual({ ok: true });
    const o = await s.http("GET", "/openapi.json", { token: null });
    expect(o.status).toBe(200);
    expect(o.json.paths["/accounts/projects/{project_id}"]).toBeDefined();
    // shared schemas under their own names, and every reference resolves
    const names = Object.keys(o.json.components.schemas);
    expect(names).toEqual(expect.arrayContaining(["Room", "ProjectRoomGrant"]));
    expect(names.filter((n) => n.startsWith("def-"))).toEqual([]);
    const refs = [...o.text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(10);
    expect(refs.filter((r) => !names.includes(r))).toEqual([]);
    const d = await s.http("GET", "/docs", { token: null, headers: {} });
    expect([200, 302]).toContain(d.status);
  });

  it("echoes X-Request-Id and generates one when absent", async () => {
    const r = await s.http("GET", "/healthz", { token: null, headers: { "x-request-id": "abc-123" } });
    expect(r.headers.get("x-request-id")).toBe("abc-123");
    const r2 = await s.http("GET", "/healthz", { token: null });
    expect(r2.headers.get("x-request-id")).toMatch(/[0-9a-f-]{36}/);
  });

  it("answers unknown routes with the error model", async () => {
    const r = await s.http("GET", "/no/such/route");
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ error: { code: "not_found", message: expect.stringContaining("/no/such/route") } });
  });

  it("treats an empty JSON body as no body (the Python client sends a JSON content type on body-less calls)", async () => {
    const r = await s.http("POST", "/accounts/projects", { token: s.admin.userToken, body: "", headers: { "content-type": "application/json" } });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/body/);
    expect(r.json.error.message).not.toMatch(/cannot be empty/);
    const ok = await s.http("GET", `/accounts/projects/${s.admin.projectId}/status`, { headers: { "content-type": "application/json" } });
    expect(ok.json).toEqual({ enabled: true });
    const bad = await s.http("POST", "/accounts/projects", {
      token: s.admin.userToken,
      body: '{"__proto__":{"x":1},"name":"p"}',
      headers: { "content-type": "application/json" },
    });
    expect(bad.status).toBe(400);
  });
});
