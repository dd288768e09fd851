import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { readdirSync, readFileSync } from "node:fs";
import { join as pathJoin } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_URL, startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, mintToken, official, roomWsUrl, until, within, type OfficialRoom, type Scope } from "./helpers/room-client.js";

const { RoomClient, WebSocketClientProtocol, RoomServerException, SecretsGrant, OAuthEndpoint, MessagingGrant, AdminGrant } = official as any;

const ROOM = "vault";
const AUTHZ = "https://auth.example.com/oauth/authorize";
const CLIENT_ID = "client-1";
const te = new TextEncoder();
const td = new TextDecoder();

/** A fake OAuth provider's token endpoint: authorization codes it knows (with their PKCE challenge), and refresh tokens. */
function fakeProvider() {
  const codes = new Map<string, { challenge: string | null; token: string }>();
  const refresh = new Map<string, string>();
  const seen: Record<string, string>[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      seen.push(form);
      const answer = (status: number, j: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(j));
      };
      if (form.client_id !== CLIENT_ID) return answer(401, { error: "invalid_client" });
      if (form.grant_type === "authorization_code") {
        const c = codes.get(form.code);
        if (!c || form.redirect_uri !== "https://app.example.com/callback") return answer(400, { error: "invalid_grant", error_description: "unknown code" });
        const verified =
          c.challenge === null ||
          createHash("sha256")
            .update(form.code_verifier ?? "")
            .digest("base64url") === c.challenge;
        if (!verified) return answer(400, { error: "invalid_grant", error_description: "PKCE verification failed" });
        codes.delete(form.code);
        const r = `refresh-${randomBytes(6).toString("hex")}`;
        refresh.set(r, c.token);
        return answer(200, { access_token: c.token, token_type: "Bearer", expires_in: 3600, refresh_token: r });
      }
      if (form.grant_type === "refresh_token") {
        const t = refresh.get(form.refresh_token);
        if (!t) return answer(400, { error: "invalid_grant" });
        return answer(200, { access_token: `${t}-refreshed`, token_type: "Bearer", expires_in: 3600 });
      }
      answer(400, { error: "unsupported_grant_type" });
    });
  });
  return { server, codes, refresh, seen };
}

describe("room secrets toolkit with the official SecretsClient 0.39.9", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  const logLines: string[] = [];
  const planted: string[] = [];
  const plant = (tag: string) => {
    const v = `${tag}-${randomBytes(12).toString("hex")}`;
    planted.push(v);
    return v;
  };
  const provider = fakeProvider();
  let tokenEndpoint = "";
  const oauth = () => ({ client_id: CLIENT_ID, authorization_endpoint: AUTHZ, token_endpoint: tokenEndpoint, scopes: ["read"] });

  /** The official RoomClient as `name`, with optional request handlers (the constructor options SecretsClient takes). */
  async function join(
    name: string,
    opts: { api?: Scope | null; secretRequestHandler?: (r: any) => unknown; oauthTokenRequestHandler?: (r: any) => unknown } = {},
  ) {
    const token = await mintToken(s.admin.apiKey, ROOM, { name, role: "user", api: opts.api === undefined ? ApiScope.userDefault() : opts.api });
    const room: OfficialRoom = new RoomClient({
      protocolFactory: WebSocketClientProtocol.createFactory({ url: roomWsUrl(s, ROOM), token }),
      reconnectTimeout: 0,
      secretRequestHandler: opts.secretRequestHandler,
      oauthTokenRequestHandler: opts.oauthTokenRequestHandler,
    });
    await within(room.start(), 10_000, "RoomClient.start");
    rooms.push(room);
    return room;
  }
  const fail = (p: Promise<unknown>) =>
    within(
      p.then(
        () => undefined,
        (e: unknown) => e as any,
      ),
      15_000,
      "the call",
    );

  beforeAll(async () => {
    await new Promise<void>((r) => provider.server.listen(0, "127.0.0.1", r));
    const a = provider.server.address();
    tokenEndpoint = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}/token`;
    s = await startServer({
      env: { MESHAGENT_OAUTH_ALLOW_PRIVATE: "true", MESHAGENT_SECRET_REQUEST_TIMEOUT: "2", MESHAGENT_LOG_LEVEL: "debug" },
      logStream: { write: (l: string) => void logLines.push(l) },
    });
    await s.client().createRoom({ projectId: s.admin.projectId, name: ROOM } as any);
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
    await new Promise((r) => provider.server.close(r));
  });

  it("set, get, list, exists, delete: a participant sees its own identity's secrets and those delegated to it", async () => {
    const alice = await join("alice");
    const bob = await join("bob");
    const key = plant("alice-key");
    await alice.secrets.setSecret({ secretId: "api-key", mimeType: "text/plain", data: te.encode(key) });
    const got = await alice.secrets.getSecret({ secretId: "api-key" });
    expect(got).toBeInstanceOf(official.FileContent);
    expect(td.decode(got!.data)).toBe(key);
    expect(got!.name).toBe("api-key"); // name defaults to the id
    expect(got!.mimeType).toBe("text/plain");
    expect(await alice.secrets.exists({ secretId: "api-key" })).toBe(true);

    // another identity does not see it
    expect(await bob.secrets.getSecret({ secretId: "api-key" })).toBeNull();
    expect(await bob.secrets.exists({ secretId: "api-key" })).toBe(false);
    expect(await bob.secrets.listSecrets()).toEqual([]);

    // replace: same key, new value and name (type kept)
    const key2 = plant("alice-key2");
    await alice.secrets.setSecret({ secretId: "api-key", name: "API key", data: te.encode(key2) });
    const again = await alice.secrets.getSecret({ secretId: "api-key" });
    expect([td.decode(again!.data), again!.name, again!.mimeType]).toEqual([key2, "API key", "text/plain"]);
    // by name (and type)
    expect(td.decode((await alice.secrets.getSecret({ name: "API key", type: "text/plain" }))!.data)).toBe(key2);
    expect(await alice.secrets.getSecret({ name: "API key", type: "application/json" })).toBeNull();

    // delegated to bob: bob lists it and reads it; alice addresses it with delegatedTo
    const shared = plant("shared");
    await alice.secrets.setSecret({ secretId: "shared", type: "text/plain", delegatedTo: "bob", data: te.encode(shared) });
    expect(await bob.secrets.listSecrets()).toEqual([{ id: "shared", name: "shared", type: "text/plain", delegatedTo: "bob" }]);
    expect(await bob.secrets.getSecret({ secretId: "shared" })).toBeNull(); // not his own: he asks for the delegated one
    expect(td.decode((await bob.secrets.getSecret({ secretId: "shared", delegatedTo: "bob" }))!.data)).toBe(shared);
    expect(await bob.secrets.exists({ secretId: "shared", delegatedTo: "bob" })).toBe(true);
    expect(await alice.secrets.exists({ secretId: "shared" })).toBe(false); // not an undelegated one
    expect(await alice.secrets.exists({ secretId: "shared", delegatedTo: "bob" })).toBe(true);
    expect(td.decode((await alice.secrets.getSecret({ secretId: "shared", delegatedTo: "bob" }))!.data)).toBe(shared);
    const list = await alice.secrets.listSecrets();
    expect(list.map((x: any) => [x.id, x.delegatedTo ?? null])).toEqual([
      ["api-key", null],
      ["shared", "bob"],
    ]);

    // the REST side sees the same room secrets (one store)
    const rest = await s.http("GET", `/accounts/projects/${s.admin.projectId}/rooms/${ROOM}/secrets?for_identity=alice`);
    expect(rest.json.secrets.map((x: any) => x.id).sort()).toEqual(["api-key", "shared"]);

    // bob cannot delete alice's secret except the one delegated to him (he gives it up)
    expect((await fail(bob.secrets.deleteSecret({ secretId: "api-key" }))).code).toBe(1003);
    await bob.secrets.deleteSecret({ secretId: "shared", delegatedTo: "bob" });
    expect(await bob.secrets.listSecrets()).toEqual([]);
    await alice.secrets.deleteSecret({ secretId: "api-key" });
    expect(await alice.secrets.getSecret({ secretId: "api-key" })).toBeNull();
    const missing = await fail(alice.secrets.deleteSecret({ secretId: "api-key" }));
    expect(missing).toBeInstanceOf(RoomServerException);
    expect(missing.code).toBe(1003);
  });

  it("for_identity: another identity's secrets need the admin grant", async () => {
    const user = await join("user-no-admin");
    const admin = await join("room-admin", { api: ApiScope.full() });
    const v = plant("for-carol");
    const denied = await fail(user.secrets.setSecret({ secretId: "x", forIdentity: "carol", data: te.encode(v) }));
    expect(denied.code).toBe(1001);
    await admin.secrets.setSecret({ secretId: "carol-token", forIdentity: "carol", data: te.encode(v) });
    expect(await admin.secrets.exists({ secretId: "carol-token", forIdentity: "carol" })).toBe(true);
    expect((await fail(user.secrets.exists({ secretId: "carol-token", forIdentity: "carol" }))).code).toBe(1001);
    const carol = await join("carol");
    expect(td.decode((await carol.secrets.getSecret({ secretId: "carol-token" }))!.data)).toBe(v);
    expect(await admin.secrets.exists({ secretId: "carol-token" })).toBe(false); // its own identity has none
  });

  it("request_secret: one participant asks another, which provides it; the answer is kept delegated to the requester", async () => {
    const value = plant("provided");
    const asked: any[] = [];
    const bob: OfficialRoom = await join("provider-bob", {
      secretRequestHandler: async (r: any) => {
        asked.push(r);
        await bob.secrets.provideSecret({ requestId: r.requestId, data: te.encode(value) });
      },
    });
    const agent = await join("agent-alice");
    const data = await within(agent.secrets.requestSecret({ fromParticipantId: bob.localParticipant!.id, url: "secret://github", type: "text/plain" }));
    expect(td.decode(data)).toBe(value);
    expect(asked).toEqual([{ requestId: expect.any(String), url: "secret://github", type: "text/plain", delegateTo: null }]);
    // kept as bob's secret, delegated to the requester
    expect(await bob.secrets.listSecrets()).toEqual([expect.objectContaining({ name: "secret://github", type: "text/plain", delegatedTo: "agent-alice" })]);
    expect(td.decode((await agent.secrets.getSecret({ name: "secret://github", delegatedTo: "agent-alice" }))!.data)).toBe(value);
    // delete_requested_secret drops the kept copy
    await agent.secrets.deleteRequestedSecret({ url: "secret://github", type: "text/plain" });
    expect(await agent.secrets.getSecret({ name: "secret://github", delegatedTo: "agent-alice" })).toBeNull();
    expect(await bob.secrets.listSecrets()).toEqual([]);
    // a request answered twice: the second answer finds no pending request
    const dup = await fail(bob.secrets.provideSecret({ requestId: asked[0].requestId, data: te.encode("x") }));
    expect(dup.code).toBe(1003);
    // delegate_to reaches the handler
    await within(agent.secrets.requestSecret({ fromParticipantId: bob.localParticipant!.id, url: "secret://x", type: "text/plain", delegateTo: "someone" }));
    expect(asked[1].delegateTo).toBe("someone");
  });

  it("request_secret ends with an error, never a hang: target refuses, is absent, leaves, or does not answer in time", async () => {
    const refuser: OfficialRoom = await join("refuser", {
      secretRequestHandler: (r: any) => refuser.secrets.rejectSecret({ requestId: r.requestId, error: "not today" }),
    });
    const leaver = await join("leaver", { secretRequestHandler: () => setTimeout(() => leaver.dispose(), 100) });
    const silent = await join("silent"); // no handler: the official client drops the request without an answer
    const agent = await join("asker");
    const ask = (id: string, timeout?: number) => fail(agent.secrets.requestSecret({ fromParticipantId: id, url: "secret://a", type: "text/plain", timeout }));

    const refused = await ask(refuser.localParticipant!.id);
    expect(refused).toBeInstanceOf(RoomServerException);
    expect(refused.message).toMatch(/refused the secret request: not today/);

    const absent = await ask("no-such-participant");
    expect(absent.message).toMatch(/not in the room/);
    expect(absent.code).toBe(1003);

    const left = await ask(leaver.localParticipant!.id);
    expect(left.message).toMatch(/left the room before answering/);

    const warn = console.error;
    console.error = () => {}; // the official client logs the request it has no handler for
    try {
      let t = Date.now();
      const timedOut = await ask(silent.localParticipant!.id, 0.3); // the client's timeout
      expect(timedOut.code).toBe(1009);
      expect(timedOut.message).toMatch(/did not answer the secret request within 0.3 s/);
      expect(Date.now() - t).toBeLessThan(1900);
      t = Date.now();
      const capped = await ask(silent.localParticipant!.id); // the client's default 300 s, capped by MESHAGENT_SECRET_REQUEST_TIMEOUT=2
      expect(capped.code).toBe(1009);
      expect(capped.message).toMatch(/within 2 s/);
      expect(Date.now() - t).toBeGreaterThanOrEqual(1900);
    } finally {
      console.error = warn;
    }
    // a participant cannot answer a request addressed to someone else
    let requestId = "";
    const target = await join("target", { secretRequestHandler: (r: any) => void (requestId = r.requestId) });
    const pending = ask(target.localParticipant!.id);
    await until(() => requestId !== "", 5000, "request delivered");
    expect((await fail(agent.secrets.provideSecret({ requestId, data: te.encode("forged") }))).code).toBe(1003);
    await target.secrets.provideSecret({ requestId, data: te.encode("real") });
    expect(await pending).toBeUndefined(); // fail() resolves undefined on success
  });

  it("request_oauth_token: the target authorizes, the server exchanges the code (PKCE) and keeps the token; reused, then read offline", async () => {
    const asked: any[] = [];
    const access = plant("access");
    const user: OfficialRoom = await join("oauth-user", {
      oauthTokenRequestHandler: async (r: any) => {
        asked.push(r);
        provider.codes.set("code-1", { challenge: r.challenge, token: access });
        await user.secrets.provideOAuthAuthorization({ requestId: r.requestId, code: "code-1" });
      },
    });
    const agent = await join("oauth-agent");
    const req = () =>
      within(
        agent.secrets.requestOAuthToken({ oauth: oauth(), fromParticipantId: user.localParticipant!.id, redirectUri: "https://app.example.com/callback" }),
      );
    expect(await req()).toBe(access);
    expect(asked).toEqual([
      {
        requestId: expect.any(String),
        authorizationEndpoint: AUTHZ,
        tokenEndpoint,
        challenge: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        scopes: ["read"],
        clientId: CLIENT_ID,
      },
    ]);
    const exchange = provider.seen.find((f) => f.grant_type === "authorization_code")!;
    expect(exchange).toMatchObject({ code: "code-1", client_id: CLIENT_ID, redirect_uri: "https://app.example.com/callback" });
    expect(exchange.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // a second request reuses the kept token: the user is not asked again
    expect(await req()).toBe(access);
    expect(asked).toHaveLength(1);
    // offline: the user's token, delegated to the agent
    expect(await agent.secrets.getOfflineOAuthToken({ oauth: oauth(), delegatedBy: "oauth-user" })).toBe(access);
    expect((await fail(agent.secrets.getOfflineOAuthToken({ oauth: oauth() }))).code).toBe(1003); // it has none of its own
    expect((await user.secrets.listSecrets()).map((x: any) => [x.type, x.delegatedTo])).toEqual([
      ["application/vnd.meshagent.oauth-token+json", "oauth-agent"],
    ]);
    // someone else cannot read it: nothing was delegated to it, and another delegation is not its to read
    const other = await join("oauth-other");
    expect((await fail(other.secrets.getOfflineOAuthToken({ oauth: oauth(), delegatedBy: "oauth-user" }))).code).toBe(1003);
    expect((await fail(other.secrets.getOfflineOAuthToken({ oauth: oauth(), delegatedBy: "oauth-user", delegatedTo: "oauth-agent" }))).code).toBe(1001);
    const none = await fail(other.secrets.getOfflineOAuthToken({ oauth: oauth() }));
    expect(none.code).toBe(1003);
    expect(none.message).toMatch(/no stored OAuth token for client "client-1"/);
    // a token delegated to the agent is not handed to a third participant naming it in delegate_to: the user is asked
    const third = await join("oauth-third");
    await within(
      third.secrets.requestOAuthToken({
        oauth: oauth(),
        fromParticipantId: user.localParticipant!.id,
        redirectUri: "https://app.example.com/callback",
        delegateTo: "oauth-agent",
      }),
    );
    expect(asked).toHaveLength(2);
  });

  it("get_offline_oauth_token: a token the client stored itself, refreshed when expired; the provider's refusal and a bad code are errors", async () => {
    const me = await join("self-stored");
    const id = "oauth." + createHash("sha256").update(`${AUTHZ}\n${CLIENT_ID}`).digest("hex").slice(0, 32);
    const plain = plant("plain-token");
    await me.secrets.setSecret({ secretId: id, type: "text/plain", data: te.encode(plain) });
    expect(await me.secrets.getOfflineOAuthToken({ oauth: oauth() })).toBe(plain);
    const base = plant("base");
    provider.refresh.set("r-1", base);
    const old = plant("expired");
    await me.secrets.setSecret({
      secretId: id,
      data: te.encode(JSON.stringify({ access_token: old, refresh_token: "r-1", expires_at: Math.floor(Date.now() / 1000) - 60 })),
    });
    planted.push(`${base}-refreshed`);
    expect(await me.secrets.getOfflineOAuthToken({ oauth: oauth() })).toBe(`${base}-refreshed`);
    // the refreshed token was kept (and still refreshable)
    const kept = JSON.parse(td.decode((await me.secrets.getSecret({ secretId: id }))!.data));
    expect(kept).toMatchObject({ access_token: `${base}-refreshed`, refresh_token: "r-1", expires_at: expect.any(Number) });
    // expired and not refreshable
    await me.secrets.setSecret({ secretId: id, data: te.encode(JSON.stringify({ access_token: old, expires_at: 1 })) });
    const expired = await fail(me.secrets.getOfflineOAuthToken({ oauth: oauth() }));
    expect(expired.code).toBe(1006);
    expect(expired.message).toMatch(/expired/);

    const refuser: OfficialRoom = await join("oauth-refuser", {
      oauthTokenRequestHandler: (r: any) => refuser.secrets.rejectOAuthAuthorization({ requestId: r.requestId, error: "access_denied" }),
    });
    const refused = await fail(
      me.secrets.requestOAuthToken({ oauth: oauth(), fromParticipantId: refuser.localParticipant!.id, redirectUri: "https://app.example.com/callback" }),
    );
    expect(refused.message).toMatch(/refused the OAuth authorization: access_denied/);

    let providerError: any;
    const badCode: OfficialRoom = await join("oauth-badcode", {
      oauthTokenRequestHandler: (r: any) =>
        badCode.secrets.provideOAuthAuthorization({ requestId: r.requestId, code: "unknown" }).catch((e: unknown) => void (providerError = e)),
    });
    const bad = await fail(
      me.secrets.requestOAuthToken({ oauth: oauth(), fromParticipantId: badCode.localParticipant!.id, redirectUri: "https://app.example.com/callback" }),
    );
    expect(bad.message).toMatch(/token endpoint answered 400: invalid_grant \(unknown code\)/);
    await until(() => providerError !== undefined, 5000, "the provider's answer");
    expect(providerError.message).toMatch(/invalid_grant/);
  });

  it("ApiScope: no api grant or no secrets section refuses the toolkit; request_oauth_token's allow-list is enforced", async () => {
    const none = await join("no-api", { api: null });
    expect((await fail(none.secrets.listSecrets())).code).toBe(1001);
    const noSecrets = await join("no-secrets", { api: new ApiScope({ messaging: new MessagingGrant() }) });
    for (const p of [
      noSecrets.secrets.listSecrets(),
      noSecrets.secrets.getSecret({ secretId: "x" }),
      noSecrets.secrets.setSecret({ secretId: "x", data: te.encode("v") }),
      noSecrets.secrets.exists({ secretId: "x" }),
      noSecrets.secrets.deleteSecret({ secretId: "x" }),
      noSecrets.secrets.requestSecret({ fromParticipantId: "x", url: "u", type: "t" }),
      noSecrets.secrets.provideSecret({ requestId: "r", data: te.encode("v") }),
      noSecrets.secrets.requestOAuthToken({ oauth: oauth(), fromParticipantId: "x", redirectUri: "https://app.example.com/callback" }),
      noSecrets.secrets.getOfflineOAuthToken({ oauth: oauth() }),
    ]) {
      const e = await fail(p);
      expect(e.code).toBe(1001);
      expect(e.message).toMatch(/no secrets section/);
    }
    const listed = (endpoint: string, clientId: string) =>
      new ApiScope({ secrets: new SecretsGrant({ requestOauthToken: [new OAuthEndpoint({ endpoint, clientId })] }) });
    const ok = await join("allow-listed", { api: listed("https://auth.example.com/oauth/*", CLIENT_ID) });
    const exact = await join("allow-exact", { api: listed(AUTHZ, CLIENT_ID) });
    const wrongEndpoint = await join("wrong-endpoint", { api: listed("https://other.example.com/*", CLIENT_ID) });
    const wrongClient = await join("wrong-client", { api: listed("https://auth.example.com/*", "someone-else") });
    const oauthCall = (r: OfficialRoom) =>
      fail(r.secrets.requestOAuthToken({ oauth: oauth(), fromParticipantId: "nobody", redirectUri: "https://app.example.com/callback" }));
    expect((await oauthCall(ok)).code).toBe(1003); // allowed: it gets as far as the (absent) participant
    expect((await oauthCall(exact)).code).toBe(1003);
    expect((await oauthCall(wrongEndpoint)).code).toBe(1001);
    expect((await oauthCall(wrongClient)).code).toBe(1001);
    expect((await fail(wrongClient.secrets.getOfflineOAuthToken({ oauth: oauth() }))).code).toBe(1001);
    expect((await fail(ok.secrets.getOfflineOAuthToken({ oauth: oauth() }))).code).toBe(1003);
    // the allow-list only concerns OAuth: plain secrets work with that grant
    await ok.secrets.setSecret({ secretId: "plain", data: te.encode(plant("plain")) });
    expect(await ok.secrets.exists({ secretId: "plain" })).toBe(true);
    // admin grant present: for_identity allowed
    const admin = await join("with-admin", { api: new ApiScope({ secrets: new SecretsGrant(), admin: new AdminGrant() }) });
    await admin.secrets.setSecret({ secretId: "for-other", forIdentity: "allow-listed", data: te.encode(plant("other")) });
    expect(await ok.secrets.exists({ secretId: "for-other" })).toBe(true);
  });

  it("values are sealed: no secret or token is in the database (secrets, session events, anywhere) or in a log line", async () => {
    await s.ctx.sessions.flush();
    expect(planted.length).toBeGreaterThan(10);
    const rows = await s.ctx.store.db.selectFrom("secrets").selectAll().execute();
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) expect(r.value_sealed).toMatch(/^v2:/);
    const needles = planted.flatMap((v) => [v, Buffer.from(v).toString("base64")]);
    let haystack: string;
    if (PG_URL) {
      const c = new pg.Client({ connectionString: s.databaseUrl });
      await c.connect();
      try {
        const tables = await c.query(`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`);
        const parts: string[] = [];
        for (const t of tables.rows) parts.push(JSON.stringify((await c.query(`select t::text as row from "${t.table_name}" t`)).rows));
        haystack = parts.join("\n");
      } finally {
        await c.end();
      }
    } else {
      haystack = readdirSync(s.dataDir)
        .filter((f) => /\.(db|sqlite)(-wal|-journal)?$/.test(f) || f.endsWith("-wal"))
        .map((f) => readFileSync(pathJoin(s.dataDir, f)).toString("latin1"))
        .join("\n");
      expect(haystack.length).toBeGreaterThan(10_000);
    }
    const logs = logLines.join("\n");
    for (const n of needles) {
      expect(haystack.includes(n), `database holds ${n.slice(0, 12)}…`).toBe(false);
      expect(logs.includes(n), `a log line holds ${n.slice(0, 12)}…`).toBe(false);
    }
  });
});
