import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, generateKeyPair, decodeProtectedHeader } from "jose";
import { randomUUID } from "node:crypto";
import { PG_URL, startServer, type TestServer } from "./helpers/server.js";
import { createContext } from "../src/wiring.js";
import { ApiScope, ParticipantToken } from "./helpers/official.js";
import { ManualClock } from "../src/core/clock.js";
import { parseApiKey } from "../src/api-keys/format.js";
import { roomUrl } from "../src/rooms/service.js";

const FULL = ApiScope.full().toJSON();
const b64json = (seg: string) => JSON.parse(Buffer.from(seg, "base64url").toString("utf8"));

describe("connect_room tokens and the participant-token verifier", () => {
  let s: TestServer;
  let pid: string;
  let P: string;
  const clock = new ManualClock(Date.now());
  const secretOf = (key: string) => parseApiKey(key)!.secret;
  /** The project's own signing key (server-minted tokens for users), read the way the server does. */
  async function projectSecret(projectId: string) {
    const row = await s.ctx.store.db.selectFrom("project_signing_keys").selectAll().where("project_id", "=", projectId).executeTakeFirstOrThrow();
    expect(/^v2:[0-9a-f]{16}:/.test(row.secret_sealed)).toBe(true);
    return { kid: row.id, secret: s.ctx.sealer.open(row.secret_sealed) };
  }
  const validate = (token: unknown, headers: Record<string, string> = {}) =>
    s.http("POST", "/api/participant-token/validate", { token: null, json: { token }, headers });

  beforeAll(async () => {
    s = await startServer({ clock });
    pid = s.admin.projectId;
    P = `/accounts/projects/${pid}`;
    await s.client().createRoom({ projectId: pid, name: "lobby" });
    await s.client().createRoom({ projectId: pid, name: "backstage" });
  });
  afterAll(() => s.close());

  it("API key: the official client gets {jwt, room_name, project_id, room_url}; ParticipantToken.fromJwt decodes it with the key's secret", async () => {
    const info = await s.client().connectRoom(pid, "lobby");
    expect(info).toEqual({ jwt: expect.any(String), roomName: "lobby", projectId: pid, roomUrl: `${s.url.replace("http:", "ws:")}/rooms/lobby` });
    const keyId = parseApiKey(s.admin.apiKey)!.keyId;
    const pt = await ParticipantToken.fromJwt(info.jwt, { token: secretOf(s.admin.apiKey) });
    expect(pt.projectId).toBe(pid);
    expect(pt.apiKeyId).toBe(keyId);
    expect(pt.version).toBe("0.39.9");
    expect(pt.grantScope("room")).toBe("lobby");
    expect(pt.role).toBe("user");
    expect(pt.getApiGrant()!.toJSON()).toEqual(FULL);
    expect(pt.extra).toEqual({ exp: Math.floor(clock.now() / 1000) + 6 * 3600 });
    const [h, p] = info.jwt.split(".");
    expect(b64json(h)).toEqual({ alg: "HS256", typ: "JWT" });
    expect(Object.keys(b64json(p))).toEqual(["name", "grants", "sub", "kid", "version", "exp"]);
    expect(b64json(p).grants.map((g: any) => g.name)).toEqual(["room", "role", "api"]);
    // byte for byte what jose signs for the same payload and key
    const again = await new SignJWT(b64json(p)).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(secretOf(s.admin.apiKey)));
    expect(info.jwt).toBe(again);
  });

  it("raw HTTP (Python): body {} → the four required string keys", async () => {
    const r = await s.http("POST", `${P}/rooms/lobby/connect`, { json: {} });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(["jwt", "project_id", "room_name", "room_url"]);
    expect(r.json.room_url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/rooms\/lobby$/);
    // body-less POSTs work too, even labelled JSON
    expect((await s.http("POST", `${P}/rooms/lobby/connect`, { headers: { "content-type": "application/json" } })).status).toBe(200);
    expect((await s.http("POST", `${P}/rooms/lobby/connect`)).status).toBe(200);
    expect((await s.http("POST", `${P}/rooms/lobby/connect`, { body: "{oops", headers: { "content-type": "application/json" } })).status).toBe(400);
    expect(roomUrl("https://meshagent.example.com/", "lobby")).toBe("wss://meshagent.example.com/rooms/lobby");
  });

  it("a member gets their grant's scope, signed with the project's signing key (its own kid); admins get the full scope", async () => {
    const m = await s.user({});
    const room = await s.client().getRoom(pid, "lobby");
    const scope = ApiScope.fromJSON({
      messaging: { broadcast: false },
      storage: { paths: [{ path: "shared/", read_only: true }] },
      llm: { models: ["openai/gpt-*"] },
    });
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: m.userId, permissions: scope });
    const info = await s.client(m.token).connectRoom(pid, "lobby");
    const { kid, secret } = await projectSecret(pid);
    const pt = await ParticipantToken.fromJwt(info.jwt, { token: secret });
    expect(pt.apiKeyId).toBe(kid);
    expect(kid).not.toBe(parseApiKey(s.admin.apiKey)!.keyId);
    expect(pt.name).toBe(m.email);
    expect(pt.getApiGrant()!.toJSON()).toEqual(scope.toJSON());
    await expect(ParticipantToken.fromJwt(info.jwt, { token: secretOf(s.admin.apiKey) })).rejects.toThrow();
    // the Python-style full dump in a grant becomes the compact form in the JWT
    const m2 = await s.user({});
    await s.http("POST", `${P}/room-grants`, {
      json: {
        room_id: room.id,
        user_id: m2.userId,
        permissions: {
          queues: { send: null, receive: null, list: true },
          llm: null,
          dataset: { tables: [{ name: "t", namespace: null, write: false, read: true, alter: false }], list_tables: true },
        },
      },
    });
    const jwt2 = (await s.http("POST", `${P}/rooms/lobby/connect`, { token: m2.token, json: {} })).json.jwt;
    expect(b64json(jwt2.split(".")[1]).grants[2].scope).toEqual({ queues: {}, dataset: { tables: [{ name: "t" }] } });

    const admin = await s.user({ is_admin: true });
    const a = await s.client(admin.token).connectRoom(pid, "backstage");
    const apt = await ParticipantToken.fromJwt(a.jwt, { token: secret });
    expect(apt.getApiGrant()!.toJSON()).toEqual(FULL);
    expect(apt.grantScope("room")).toBe("backstage");
    const dev = await s.user({ is_developer: true });
    expect((await ParticipantToken.fromJwt((await s.client(dev.token).connectRoom(pid, "backstage")).jwt, { token: secret })).getApiGrant()!.toJSON()).toEqual(
      FULL,
    );
  });

  it("the verifier accepts our tokens and tokens the official client signs with toJwt({ apiKey })", async () => {
    const ours = (await s.client().connectRoom(pid, "lobby")).jwt;
    const r = await validate(ours, { authorization: "Bearer junk" });
    expect(r.status).toBe(200);
    expect(r.json).toEqual(b64json(ours.split(".")[1]));

    const t = new ParticipantToken({ name: "agent-7", extra: { purpose: "test" } });
    t.addRoomGrant("lobby");
    t.addRoleGrant("agent");
    t.addApiGrant(ApiScope.agentDefault());
    const signed = await t.toJwt({ apiKey: s.admin.apiKey });
    const v = await validate(signed);
    expect(v.status).toBe(200);
    expect(v.json).toMatchObject({ name: "agent-7", purpose: "test", sub: pid, kid: parseApiKey(s.admin.apiKey)!.keyId });
    expect(ParticipantToken.fromJson(v.json).getApiGrant()!.toJSON()).toEqual(ApiScope.agentDefault().toJSON());
    // a user token's (project signing key) too
    const m = await s.user({ is_developer: true });
    expect((await validate((await s.client(m.token).connectRoom(pid, "lobby")).jwt)).status).toBe(200);
  });

  it("the verifier refuses wrong and unknown kid, another project's sub, expiry, alg none / RS256, tampering", async () => {
    const keyA = s.admin.apiKey;
    const keyB: any = await s.client().createApiKey(pid, "second", "");
    const idA = parseApiKey(keyA)!.keyId;
    const idB = parseApiKey(keyB.value)!.keyId;
    const other = await s.otherProject();
    const enc = (x: string) => new TextEncoder().encode(x);
    const now = Math.floor(clock.now() / 1000);
    const base = { name: "x", grants: [{ name: "room", scope: "lobby" }], sub: pid, kid: idA, version: "0.39.9" };
    const sign = (payload: object, secret: string) => new SignJWT({ ...payload }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(enc(secret));

    expect((await validate(await sign(base, secretOf(keyA)))).status).toBe(200);
    const cases: [string, string][] = [
      ["wrong kid (another key's id)", await sign({ ...base, kid: idB }, secretOf(keyA))],
      ["unknown kid", await sign({ ...base, kid: randomUUID() }, secretOf(keyA))],
      ["no kid", await sign({ ...base, kid: undefined }, secretOf(keyA))],
      ["sub of another project", await sign({ ...base, sub: other.projectId }, secretOf(keyA))],
      ["another project's key claiming our sub", await sign({ ...base, kid: parseApiKey(other.apiKey)!.keyId }, secretOf(other.apiKey))],
      ["expired", await sign({ ...base, exp: now - 1 }, secretOf(keyA))],
      [
        "official client, expired",
        await (() => {
          const t = new ParticipantToken({ name: "late" });
          t.addApiGrant(ApiScope.full());
          return t.toJwt({ apiKey: keyA, expiration: new Date(clock.now() - 1000) });
        })(),
      ],
      [
        "alg none",
        `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify(base)).toString("base64url")}.`,
      ],
      ["no name", await sign({ ...base, name: undefined }, secretOf(keyA))],
    ];
    const { privateKey } = await generateKeyPair("RS256");
    cases.push(["RS256", await new SignJWT(base).setProtectedHeader({ alg: "RS256", typ: "JWT" }).sign(privateKey)]);
    cases.push(["HS512", await new SignJWT(base).setProtectedHeader({ alg: "HS512", typ: "JWT" }).sign(enc(secretOf(keyA)))]);
    const good = await sign(base, secretOf(keyA));
    const [h, , sig] = good.split(".");
    cases.push(["tampered payload", `${h}.${Buffer.from(JSON.stringify({ ...base, name: "admin" })).toString("base64url")}.${sig}`]);
    cases.push(["tampered grants", `${h}.${Buffer.from(JSON.stringify({ ...base, grants: [{ name: "api", scope: FULL }] })).toString("base64url")}.${sig}`]);
    cases.push(["garbage", "not.a.jwt"]);
    cases.push(["empty signature", `${h}.${good.split(".")[1]}.`]);
    const accepted: string[] = [];
    for (const [why, token] of cases) {
      const r = await validate(token);
      if (r.status !== 401) accepted.push(`${why}: ${r.status}`);
      else expect(r.json.error.code).toBe("unauthorized");
    }
    expect(accepted).toEqual([]);
    expect(decodeProtectedHeader(cases.find(([w]) => w === "RS256")![1]).alg).toBe("RS256");
    const missing = await s.http("POST", "/api/participant-token/validate", { token: null, json: {} });
    expect(missing.status).toBe(400);
    expect(missing.json.error.message).toMatch(/token/);
    expect((await s.http("POST", "/api/participant-token/validate", { token: null, json: { token: 5 } })).status).toBe(400);
  });

  it("exp follows MESHAGENT_TOKEN_TTL and the injectable clock; a token stops verifying once expired", async () => {
    const jwt = (await s.client().connectRoom(pid, "lobby")).jwt;
    const exp = b64json(jwt.split(".")[1]).exp;
    expect(exp).toBe(Math.floor(clock.now() / 1000) + 21600);
    expect((await validate(jwt)).status).toBe(200);
    clock.advance(21599 * 1000);
    expect((await validate(jwt)).status).toBe(200);
    expect((await s.http("GET", P, { token: jwt })).status).toBe(200);
    clock.advance(1000);
    const r = await validate(jwt);
    expect(r.status).toBe(401);
    expect(r.json.error.message).toMatch(/expired/);
    expect((await s.http("GET", P, { token: jwt })).status).toBe(401);
  });

  it("deleting an API key revokes the tokens signed with it at once (cached verification keys are evicted)", async () => {
    const k: any = await s.client().createApiKey(pid, "doomed", "");
    const jwt = (await s.client(k.value).connectRoom(pid, "lobby")).jwt;
    const t = new ParticipantToken({ name: "svc" });
    t.addApiGrant(ApiScope.agentDefault());
    const own = await t.toJwt({ apiKey: k.value });
    expect((await validate(jwt)).status).toBe(200);
    expect((await validate(own)).status).toBe(200);
    await s.client().deleteApiKey(pid, k.id);
    expect((await validate(jwt)).status).toBe(401);
    expect((await validate(own)).status).toBe(401);
  });

  it.runIf(PG_URL)("a key deleted through one process stops its tokens verifying at once in another (Postgres)", async () => {
    const other = await createContext(s.config); // a second server process' services: own caches, own LISTEN
    try {
      const k: any = await s.client().createApiKey(pid, "shared-key", "");
      const t = new ParticipantToken({ name: "svc" });
      t.addApiGrant(ApiScope.agentDefault());
      const jwt = await t.toJwt({ apiKey: k.value });
      expect((await other.tokens.verify(jwt)).name).toBe("svc"); // now cached there
      await s.client().deleteApiKey(pid, k.id);
      let refused = false;
      for (let i = 0; i < 100 && !refused; i++) {
        refused = await other.tokens.verify(jwt).then(
          () => false,
          () => true,
        );
        if (!refused) await new Promise((r) => setTimeout(r, 20));
      }
      expect(refused).toBe(true);
    } finally {
      await other.close();
    }
  });

  it("a participant JWT as bearer has narrow rights: its project as a member, its own room only", async () => {
    const m = await s.user({});
    const room = await s.client().getRoom(pid, "lobby");
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: m.userId, permissions: ApiScope.userDefault() });
    const fromConnect = (await s.client(m.token).connectRoom(pid, "lobby")).jwt;
    const t = new ParticipantToken({ name: "svc" });
    t.addRoomGrant("lobby");
    t.addApiGrant(ApiScope.full());
    const fromClient = await t.toJwt({ apiKey: s.admin.apiKey });
    const other = await s.otherProject();
    for (const jwt of [fromConnect, fromClient]) {
      const as = { token: jwt };
      expect((await s.http("GET", P, as)).status).toBe(200);
      expect((await s.http("GET", `${P}/role`, as)).json).toEqual({ role: "member", can_create_rooms: false, can_use_llm_proxy: false });
      expect((await s.http("GET", "/accounts/projects", as)).json.projects.map((p: any) => p.id)).toEqual([pid]);
      expect((await s.http("GET", `${P}/rooms/lobby`, as)).status).toBe(200);
      expect((await s.http("GET", `${P}/rooms/backstage`, as)).status).toBe(403);
      expect((await s.http("GET", `${P}/rooms`, as)).json).toEqual({ rooms: [expect.objectContaining({ name: "lobby" })], total: 1 });
      expect((await s.http("POST", `${P}/rooms`, { ...as, json: { name: "by-participant" } })).status).toBe(403);
      expect((await s.http("POST", `${P}/rooms/lobby/connect`, { ...as, json: {} })).status).toBe(403);
      expect((await s.http("PUT", `${P}/rooms/${room.id}`, { ...as, json: { name: "lobby" } })).status).toBe(403);
      expect((await s.http("DELETE", `${P}/rooms/${room.id}`, as)).status).toBe(403);
      expect((await s.http("GET", `${P}/room-grants`, as)).status).toBe(403);
      expect((await s.http("GET", `${P}/room-grants/${room.id}/${m.userId}`, as)).status).toBe(403);
      expect((await s.http("GET", `${P}/shares`, as)).status).toBe(403);
      expect((await s.http("GET", `${P}/api-keys`, as)).status).toBe(403);
      expect((await s.http("GET", `${P}/users`, as)).status).toBe(403);
      expect((await s.http("POST", "/accounts/projects", { ...as, json: { name: "x" } })).status).toBe(403);
      expect((await s.http("GET", "/accounts/profiles/me", as)).status).toBe(403);
      expect((await s.http("GET", `/accounts/projects/${other.projectId}`, as)).status).toBe(404);
    }
    // a tampered participant bearer is simply invalid
    const [h, p, sig] = fromConnect.split(".");
    expect((await s.http("GET", P, { token: `${h}.${p}x.${sig}` })).status).toBe(401);
  });
});

describe("MESHAGENT_TOKEN_TTL", () => {
  it("sets the lifetime; 0 means tokens without exp", async () => {
    for (const [ttl, want] of [
      ["60", 60],
      ["0", undefined],
    ] as const) {
      const s = await startServer({ env: { MESHAGENT_TOKEN_TTL: ttl } });
      try {
        await s.client().createRoom({ projectId: s.admin.projectId, name: "ttl" });
        const jwt = (await s.client().connectRoom(s.admin.projectId, "ttl")).jwt;
        const payload = b64json(jwt.split(".")[1]);
        if (want === undefined) expect(payload.exp).toBeUndefined();
        else expect(payload.exp - Math.floor(Date.now() / 1000)).toBeGreaterThanOrEqual(want - 2);
        expect((await s.http("POST", "/api/participant-token/validate", { token: null, json: { token: jwt } })).status).toBe(200);
      } finally {
        await s.close();
      }
    }
  });
});
