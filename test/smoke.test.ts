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
});
