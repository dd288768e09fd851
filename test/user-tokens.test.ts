import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";

describe("tokens a user holds (/accounts/profiles/me/tokens)", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());
  const me = (token: string | null) => s.http("GET", "/accounts/profiles/me", { token });

  it("list (the one in use marked), create a personal access token (its value once), use it, revoke it at once", async () => {
    const u = await s.user({});
    const list = await s.http("GET", "/accounts/profiles/me/tokens", { token: u.token });
    expect(list.status).toBe(200);
    expect(list.json.tokens).toEqual([expect.objectContaining({ kind: "pat", current: true })]);
    expect(JSON.stringify(list.json)).not.toContain(u.token);

    const c = await s.http("POST", "/accounts/profiles/me/tokens", { token: u.token, json: { name: "ci script", expires_in: 3600 } });
    expect(c.status).toBe(201);
    expect(c.json).toMatchObject({
      id: expect.any(String),
      kind: "pat",
      name: "ci script",
      token: expect.stringMatching(/^mpat_/),
      expires_at: expect.any(String),
    });
    expect(Date.parse(c.json.expires_at) - Date.parse(c.json.created_at)).toBe(3600_000);
    expect((await me(c.json.token)).json.id).toBe(u.userId);
    const after = await s.http("GET", "/accounts/profiles/me/tokens", { token: c.json.token });
    expect(after.json.tokens.map((t: any) => [t.name, t.current])).toEqual([
      ["ci script", true],
      [expect.any(String), false],
    ]);
    expect(JSON.stringify(after.json)).not.toContain(c.json.token);
    expect(after.json.tokens.every((t: any) => !("token" in t) && !("token_hash" in t))).toBe(true);

    const d = await s.http("DELETE", `/accounts/profiles/me/tokens/${c.json.id}`, { token: u.token });
    expect([d.status, d.text]).toEqual([204, ""]);
    expect((await me(c.json.token)).status).toBe(401);
    expect((await s.http("DELETE", `/accounts/profiles/me/tokens/${c.json.id}`, { token: u.token })).status).toBe(404);
    // revoking the token in use signs out
    const self = list.json.tokens[0].id;
    expect((await s.http("DELETE", `/accounts/profiles/me/tokens/${self}`, { token: u.token })).status).toBe(204);
    expect((await me(u.token)).status).toBe(401);
  });

  it("another user's token cannot be seen or revoked (404); API keys are refused (403); bad input is a 400", async () => {
    const a = await s.user({});
    const b = await s.user({});
    const bt = (await s.http("GET", "/accounts/profiles/me/tokens", { token: b.token })).json.tokens[0].id;
    expect((await s.http("DELETE", `/accounts/profiles/me/tokens/${bt}`, { token: a.token })).status).toBe(404);
    expect((await me(b.token)).status).toBe(200);
    expect((await s.http("GET", "/accounts/profiles/me/tokens", { token: a.token })).json.tokens.map((t: any) => t.id)).not.toContain(bt);
    expect((await s.http("GET", "/accounts/profiles/me/tokens")).status).toBe(403);
    expect((await s.http("GET", "/accounts/profiles/me/tokens", { token: null })).status).toBe(401);
    const bad = async (json: unknown) => (await s.http("POST", "/accounts/profiles/me/tokens", { token: a.token, json })).status;
    expect(await bad({ name: "" })).toBe(400);
    expect(await bad({ name: "   " })).toBe(400);
    expect(await bad({ name: "x", expires_in: 5 })).toBe(400);
    expect(await bad({})).toBe(400);
  });
});
