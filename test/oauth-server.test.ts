import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { authorize, browser, CLI_CLIENT_ID, CLI_REDIRECT, CLI_SCOPES, pkce, token } from "./helpers/oauth.js";

describe("the OAuth 2.0 authorization server (/oauth/*)", () => {
  let s: TestServer;
  const logs: string[] = [];
  beforeAll(async () => {
    s = await startServer({ logStream: { write: (l) => void logs.push(l) }, env: { MESHAGENT_LOG_LEVEL: "info" } });
  });
  afterAll(() => s.close());
  const person = async (flags: Parameters<TestServer["user"]>[0] = { is_admin: true }) => {
    const u = await s.user(flags);
    const password = "a fine passphrase";
    await s.ctx.users.setPassword(u.userId, password);
    return { ...u, password };
  };

  it("the official CLI's login (§11 steps 1–5): code + PKCE, token, profile, refresh", async () => {
    const p = await person();
    const { verifier, challenge } = pkce();
    const a = await authorize(s.url, p, { challenge });
    expect(a.code).toBeTruthy();
    expect(a.state).toBe(a.sent);
    // the official client is not asked for consent: the sign-in page, then the callback
    expect(a.pages.join("")).not.toContain("Allow ");
    const t = await token(s.url, {
      grant_type: "authorization_code",
      code: a.code!,
      redirect_uri: CLI_REDIRECT,
      client_id: CLI_CLIENT_ID,
      code_verifier: verifier,
    });
    expect(t.status, t.text).toBe(200);
    expect(t.json).toMatchObject({ access_token: expect.any(String), token_type: "Bearer", expires_in: 3600, refresh_token: expect.any(String) });
    expect(t.json.scope.split(" ").sort()).toEqual(CLI_SCOPES.split(" ").sort());
    const me = await s.http("GET", "/accounts/profiles/me", { token: t.json.access_token });
    expect([me.status, me.json?.id]).toEqual([200, p.userId]);
    // the official client with the access token
    const projects = (await s.client(t.json.access_token).listProjects()) as { projects: { id: string }[] };
    expect(projects.projects.map((x) => x.id)).toContain(s.admin.projectId);
    const r = await token(s.url, { grant_type: "refresh_token", refresh_token: t.json.refresh_token, client_id: CLI_CLIENT_ID });
    expect(r.status, r.text).toBe(200);
    expect(r.json.refresh_token).not.toBe(t.json.refresh_token);
    expect((await s.http("GET", "/accounts/profiles/me", { token: r.json.access_token })).status).toBe(200);
  });

  const cliLogin = async (p: { email: string; password: string }, scope?: string) => {
    const { verifier, challenge } = pkce();
    const a = await authorize(s.url, p, { challenge, ...(scope ? { scope } : {}) });
    const t = await token(s.url, {
      grant_type: "authorization_code",
      code: a.code!,
      redirect_uri: CLI_REDIRECT,
      client_id: CLI_CLIENT_ID,
      code_verifier: verifier,
    });
    expect(t.status, t.text).toBe(200);
    return { ...t.json, code: a.code!, verifier } as { access_token: string; refresh_token: string; scope: string; code: string; verifier: string };
  };
  const meWith = (tk: string) => s.http("GET", "/accounts/profiles/me", { token: tk });

  it("refuses a wrong verifier, a mismatched redirect and a replayed code (the replay ends what the code gave)", async () => {
    const p = await person();
    const { verifier, challenge } = pkce();
    const a = await authorize(s.url, p, { challenge });
    const base = { grant_type: "authorization_code", code: a.code!, client_id: CLI_CLIENT_ID };
    const wrong = await token(s.url, { ...base, redirect_uri: CLI_REDIRECT, code_verifier: pkce().verifier });
    expect([wrong.status, wrong.json.error]).toEqual([400, "invalid_grant"]);
    // a code is spent by its first exchange, even a failed one: get another
    const { verifier: v2, challenge: c2 } = pkce();
    const a2 = await authorize(s.url, p, { challenge: c2 });
    const mismatch = await token(s.url, { ...base, code: a2.code!, redirect_uri: "http://localhost:8765/other", code_verifier: v2 });
    expect([mismatch.status, mismatch.json.error]).toEqual([400, "invalid_grant"]);
    const { verifier: v3, challenge: c3 } = pkce();
    const a3 = await authorize(s.url, p, { challenge: c3 });
    const ok = await token(s.url, { ...base, code: a3.code!, redirect_uri: CLI_REDIRECT, code_verifier: v3 });
    expect(ok.status).toBe(200);
    const replay = await token(s.url, { ...base, code: a3.code!, redirect_uri: CLI_REDIRECT, code_verifier: v3 });
    expect([replay.status, replay.json.error]).toEqual([400, "invalid_grant"]);
    expect((await meWith(ok.json.access_token)).status).toBe(401);
    // no PKCE at all: refused at the authorization endpoint
    const b = browser(s.url);
    const q = new URLSearchParams({ response_type: "code", client_id: CLI_CLIENT_ID, redirect_uri: CLI_REDIRECT, scope: "profile", state: "x" });
    const noPkce = await b.go("GET", `/oauth/authorize?${q}`);
    expect(noPkce.location).toMatch(/error=invalid_request/);
    void verifier;
  });

  it("rotates refresh tokens; a reused one is refused and ends the whole family", async () => {
    const p = await person();
    const t = await cliLogin(p);
    const r1 = await token(s.url, { grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: CLI_CLIENT_ID });
    expect(r1.status).toBe(200);
    expect((await meWith(r1.json.access_token)).status).toBe(200);
    const reuse = await token(s.url, { grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: CLI_CLIENT_ID });
    expect([reuse.status, reuse.json.error]).toEqual([400, "invalid_grant"]);
    // the thief's reuse ends the family: the newest tokens are dead too, at once
    expect((await meWith(r1.json.access_token)).status).toBe(401);
    const r2 = await token(s.url, { grant_type: "refresh_token", refresh_token: r1.json.refresh_token, client_id: CLI_CLIENT_ID });
    expect(r2.status).toBe(400);
  });

  it("revocation (RFC 7009) and introspection (RFC 7662)", async () => {
    const p = await person();
    const t = await cliLogin(p);
    const intro = await fetch(`${s.url}/oauth/introspect`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t.access_token, client_id: CLI_CLIENT_ID }).toString(),
    });
    const ij = (await intro.json()) as any;
    expect(ij).toMatchObject({ active: true, client_id: CLI_CLIENT_ID, sub: p.userId, token_type: "Bearer" });
    expect(await meWith(t.access_token).then((r) => r.status)).toBe(200);
    const rev = await fetch(`${s.url}/oauth/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t.access_token, client_id: CLI_CLIENT_ID }).toString(),
    });
    expect(rev.status).toBe(200);
    expect((await meWith(t.access_token)).status).toBe(401);
    // revoking the refresh token ends the grant's tokens
    const t2 = await cliLogin(p);
    await fetch(`${s.url}/oauth/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t2.refresh_token, token_type_hint: "refresh_token", client_id: CLI_CLIENT_ID }).toString(),
    });
    expect((await token(s.url, { grant_type: "refresh_token", refresh_token: t2.refresh_token, client_id: CLI_CLIENT_ID })).status).toBe(400);
  });

  it("discovery: RFC 8414 metadata and OpenID Connect's", async () => {
    const m = await s.http("GET", "/.well-known/oauth-authorization-server", { token: null });
    expect(m.status).toBe(200);
    expect(m.json).toMatchObject({
      issuer: s.url,
      authorization_endpoint: `${s.url}/oauth/authorize`,
      token_endpoint: `${s.url}/oauth/token`,
      revocation_endpoint: `${s.url}/oauth/revoke`,
      introspection_endpoint: `${s.url}/oauth/introspect`,
      device_authorization_endpoint: `${s.url}/oauth/device/auth`,
      code_challenge_methods_supported: ["S256"],
    });
    expect(m.json.grant_types_supported).toEqual(
      expect.arrayContaining(["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"]),
    );
    expect((await s.http("GET", "/.well-known/openid-configuration", { token: null })).json.jwks_uri).toBe(`${s.url}/oauth/jwks`);
  });

  it("the device flow (RFC 8628): the code entered in a browser, the device polls for its token", async () => {
    const p = await person();
    const d = await fetch(`${s.url}/oauth/device/auth`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: CLI_CLIENT_ID, scope: "profile project/*" }).toString(),
    }).then((r) => r.json() as Promise<any>);
    expect(d).toMatchObject({
      device_code: expect.any(String),
      user_code: expect.stringMatching(/^[A-Z]{4}-[A-Z]{4}$/),
      verification_uri: `${s.url}/oauth/device`,
    });
    const poll = () => token(s.url, { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: d.device_code, client_id: CLI_CLIENT_ID });
    expect((await poll()).json.error).toBe("authorization_pending");
    const b = browser(s.url);
    let r = await b.go("GET", "/oauth/device");
    expect(r.text).toMatch(/<label for="user_code">/);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(r.text)![1];
    r = await b.go("POST", "/oauth/device", { xsrf, user_code: d.user_code.toLowerCase() });
    expect(r.text).toContain(d.user_code);
    const xsrf2 = /name="xsrf" value="([^"]+)"/.exec(r.text)![1];
    r = await b.go("POST", "/oauth/device", { xsrf: xsrf2, user_code: /name="user_code" value="([^"]+)"/.exec(r.text)![1], confirm: "yes" });
    for (let i = 0; i < 8 && r.location; i++) {
      r = await b.go("GET", r.location);
      const login = /action="(\/oauth\/interaction\/[^"]+\/login)"/.exec(r.text);
      if (login) r = await b.go("POST", login[1], { email: p.email, password: p.password });
    }
    expect(r.status).toBe(200);
    expect(r.text).toContain("is signed in");
    const t = await poll();
    expect(t.status, t.text).toBe(200);
    expect(t.json.scope.split(" ").sort()).toEqual(["profile", "project/*"]);
    expect((await meWith(t.json.access_token)).json.id).toBe(p.userId);
    expect((await poll()).status).toBe(400); // spent
  });

  it("scopes are honoured: a token without the scope a route needs is refused (403 insufficient_scope)", async () => {
    const p = await person({ is_admin: true });
    const t = await cliLogin(p, "profile");
    expect((await meWith(t.access_token)).status).toBe(200);
    const rooms = await s.http("GET", `/accounts/projects/${s.admin.projectId}/rooms`, { token: t.access_token });
    expect([rooms.status, rooms.json.error.code]).toEqual([403, "insufficient_scope"]);
    expect(rooms.json.error.message).toContain("project/*");
    // project/* and room/*, but not admin: this project admin acts as a member
    const m = await cliLogin(p, "profile project/* room/*");
    expect((await s.http("GET", `/accounts/projects/${s.admin.projectId}/rooms`, { token: m.access_token })).status).toBe(200);
    const keys = await s.http("GET", `/accounts/projects/${s.admin.projectId}/api-keys`, { token: m.access_token });
    expect([keys.status, keys.json.error.code]).toEqual([403, "insufficient_scope"]);
    const create = await s.http("POST", `/accounts/projects/${s.admin.projectId}/rooms`, { token: m.access_token, json: { name: "no-scope-room" } });
    expect([create.status, create.json.error.message]).toEqual([403, expect.stringContaining("create_rooms")]);
    // a narrowed project scope: that project only
    const other = await s.otherProject();
    await s.ctx.projects.addUser(other.projectId, { user_id: p.userId, is_admin: true });
    const n = await cliLogin(p, `project/${other.projectId} room/* admin`);
    expect((await s.http("GET", `/accounts/projects/${other.projectId}/api-keys`, { token: n.access_token })).status).toBe(200);
    expect((await s.http("GET", `/accounts/projects/${s.admin.projectId}/api-keys`, { token: n.access_token })).status).toBe(403);
  });

  it("a project's client: consent (allow, deny), secrets by basic or post, tokens confined to its project, deleted with the client", async () => {
    const p = await person({ is_admin: true });
    const redirect = "https://app.example.com/cb";
    const mk = (metadata: Record<string, string>) =>
      s.http("POST", `/accounts/projects/${s.admin.projectId}/oauth/clients`, {
        json: {
          grant_types: ["authorization_code", "refresh_token"],
          response_types: ["code"],
          redirect_uris: [redirect],
          scope: "profile project/* room/*",
          metadata,
        },
      });
    const c = (await mk({ client_name: "Team dashboard" })).json;
    const { verifier, challenge } = pkce();
    const denied = await authorize(s.url, p, { clientId: c.client_id, redirectUri: redirect, scope: "profile project/*", challenge, consent: "deny" });
    expect(denied.error).toBe("access_denied");
    expect(denied.pages.join("")).toContain("Allow Team dashboard?");
    const a = await authorize(s.url, p, { clientId: c.client_id, redirectUri: redirect, scope: "profile project/* admin", challenge });
    expect(a.code).toBeTruthy();
    const basic = "Basic " + Buffer.from(`${encodeURIComponent(c.client_id)}:${encodeURIComponent(c.client_secret)}`).toString("base64");
    const noSecret = await token(s.url, {
      grant_type: "authorization_code",
      code: a.code!,
      redirect_uri: redirect,
      code_verifier: verifier,
      client_id: c.client_id,
    });
    expect([noSecret.status, noSecret.json.error]).toEqual([401, "invalid_client"]);
    const a2 = await authorize(s.url, p, { clientId: c.client_id, redirectUri: redirect, scope: "profile project/*", challenge });
    const t = await token(
      s.url,
      { grant_type: "authorization_code", code: a2.code!, redirect_uri: redirect, code_verifier: verifier },
      { authorization: basic },
    );
    expect(t.status, t.text).toBe(200);
    // `admin` is not among the client's scopes: not given
    expect(t.json.scope.split(" ").sort()).toEqual(["profile", "project/*"]);
    expect((await s.http("GET", `/accounts/projects/${s.admin.projectId}`, { token: t.json.access_token })).status).toBe(200);
    const other = await s.otherProject();
    await s.ctx.projects.addUser(other.projectId, { user_id: p.userId });
    expect((await s.http("GET", `/accounts/projects/${other.projectId}`, { token: t.json.access_token })).status).toBe(404);
    // client_secret_post, for a client registered so
    const cp = (await mk({ token_endpoint_auth_method: "client_secret_post" })).json;
    const a3 = await authorize(s.url, p, { clientId: cp.client_id, redirectUri: redirect, scope: "profile", challenge });
    const tp = await token(s.url, {
      grant_type: "authorization_code",
      code: a3.code!,
      redirect_uri: redirect,
      code_verifier: verifier,
      client_id: cp.client_id,
      client_secret: cp.client_secret,
    });
    expect(tp.status, tp.text).toBe(200);
    // deleting the client revokes its tokens at once
    expect((await s.http("DELETE", `/accounts/projects/${s.admin.projectId}/oauth/clients/${c.client_id}`)).status).toBe(204);
    await expect.poll(async () => (await meWith(t.json.access_token)).status).toBe(401);
    expect((await token(s.url, { grant_type: "refresh_token", refresh_token: t.json.refresh_token }, { authorization: basic })).status).toBe(401);
  });

  it("grants are in the user's token list; revoking one ends its tokens; a disabled user's tokens stop", async () => {
    const p = await person();
    const t = await cliLogin(p);
    const list = await s.http("GET", "/accounts/profiles/me/tokens", { token: t.access_token });
    const g = list.json.tokens.find((x: any) => x.kind === "oauth");
    expect(g).toMatchObject({ id: expect.stringMatching(/^oauth:/), client_id: CLI_CLIENT_ID, current: true });
    expect(JSON.stringify(list.json)).not.toContain(t.access_token);
    expect((await s.http("DELETE", `/accounts/profiles/me/tokens/${g.id}`, { token: p.token })).status).toBe(204);
    expect((await meWith(t.access_token)).status).toBe(401);
    expect((await token(s.url, { grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: CLI_CLIENT_ID })).status).toBe(400);
    const t2 = await cliLogin(p);
    expect((await s.http("PUT", `/admin/users/${p.userId}`, { token: s.admin.userToken, json: { disabled: true } })).status).toBe(200);
    expect((await meWith(t2.access_token)).status).toBe(401);
    expect((await token(s.url, { grant_type: "refresh_token", refresh_token: t2.refresh_token, client_id: CLI_CLIENT_ID })).status).toBe(400);
  });

  it("the protocol endpoints ignore Idempotency-Key (the provider answers them itself): a repeated key still gets an answer", async () => {
    const send = () =>
      fetch(`${s.url}/oauth/revoke`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": "same-key", authorization: `Bearer ${s.admin.apiKey}` },
        body: "",
        signal: AbortSignal.timeout(5000),
      });
    for (let i = 0; i < 3; i++) {
      const r = await send();
      expect(r.status).toBe(400);
      expect(((await r.json()) as any).error).toBe("invalid_request");
    }
  });

  it("no password, code or token in the logs", async () => {
    const p = await person();
    const t = await cliLogin(p);
    const all = logs.join("");
    for (const secret of [p.password, t.access_token, t.refresh_token, t.code, t.verifier]) expect(all).not.toContain(secret);
  });
});
