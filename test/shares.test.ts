import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, ParticipantToken } from "./helpers/official.js";
import { ManualClock } from "../src/core/clock.js";
import type { DomainEvent } from "../src/core/events.js";

describe("shares", () => {
  let s: TestServer;
  let pid: string;
  let P: string;
  const clock = new ManualClock(Date.now());
  const events: DomainEvent[] = [];
  const connect = (id: string, token: string | null = null) => s.http("POST", `/shares/${id}/connect`, { token, json: {} });
  async function projectSecret() {
    const row = await s.ctx.store.db.selectFrom("project_signing_keys").selectAll().where("project_id", "=", pid).executeTakeFirstOrThrow();
    return s.ctx.sealer.open(row.secret_sealed);
  }
  beforeAll(async () => {
    s = await startServer({ clock });
    pid = s.admin.projectId;
    P = `/accounts/projects/${pid}`;
    s.ctx.bus.on((e) => events.push(e));
    await s.client().createRoom({ projectId: pid, name: "stage" });
    await s.client().createRoom({ projectId: pid, name: "green-room" });
  });
  afterAll(() => s.close());

  it("create, list, update, delete with the official client; settings are stored exactly as given", async () => {
    const c = s.client();
    const settings = { room: "stage", theme: { dark: true, accents: ["#fff", null] }, note: "hi", role: "user" };
    const created: any = await c.createShare(pid, settings);
    expect(created).toMatchObject({ id: expect.any(String), project_id: pid, settings });
    const list = await c.listShares(pid);
    expect(list).toContainEqual({ id: created.id, projectId: pid, settings });
    await c.updateShare(pid, created.id, { room: "green-room", max_uses: 3 });
    expect((await c.listShares(pid)).find((x: any) => x.id === created.id)!.settings).toEqual({ room: "green-room", max_uses: 3 });
    await c.deleteShare(pid, created.id);
    expect((await c.listShares(pid)).find((x: any) => x.id === created.id)).toBeUndefined();
    await expect(c.deleteShare(pid, created.id)).rejects.toThrow(/404/);
    const empty: any = await c.createShare(pid);
    expect(empty.settings).toEqual({});
  });

  it("Python shapes: create → dict with id; list → {shares}; update/delete answer JSON", async () => {
    const r = await s.http("POST", `${P}/shares`, { json: { settings: { room: "stage" } } });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ id: expect.any(String), project_id: pid, settings: { room: "stage" } });
    const nul = await s.http("POST", `${P}/shares`, { json: { settings: null } });
    expect(nul.json.settings).toEqual({});
    const l = await s.http("GET", `${P}/shares`);
    expect(l.json.shares).toEqual(expect.arrayContaining([expect.objectContaining({ id: r.json.id, project_id: pid, settings: { room: "stage" } })]));
    const u = await s.http("PUT", `${P}/shares/${r.json.id}`, { json: { settings: { room: "stage", x: 1 } } });
    expect(u.status).toBe(200);
    expect(u.json.settings).toEqual({ room: "stage", x: 1 });
    const d = await s.http("DELETE", `${P}/shares/${r.json.id}`);
    expect(d.json).toEqual({ ok: true });
  });

  it("connect_share needs no credentials, ignores a junk bearer and mints a token with the share's terms", async () => {
    const share: any = await s.client().createShare(pid, {
      room: "stage",
      role: "agent",
      name: "visitor",
      api: { messaging: { broadcast: false }, queues: { send: null, receive: null, list: true } },
      extra: [1, 2],
    });
    for (const token of [null, "junk", "Bearer-nonsense.x.y"]) {
      const r = await connect(share.id, token);
      expect(r.status, String(token)).toBe(200);
      expect(r.json).toEqual({
        jwt: expect.any(String),
        room_name: "stage",
        project_id: pid,
        settings: share.settings,
        room_url: `${s.url.replace("http:", "ws:")}/rooms/stage`,
      });
    }
    const r = await s.http("POST", `/shares/${share.id}/connect`, { token: null, headers: { "content-type": "application/json" } });
    expect(r.status).toBe(200);
    const pt = await ParticipantToken.fromJwt(r.json.jwt, { token: await projectSecret() });
    expect(pt.name).toBe("visitor");
    expect(pt.role).toBe("agent");
    expect(pt.grantScope("room")).toBe("stage");
    expect(pt.projectId).toBe(pid);
    expect(pt.getApiGrant()!.toJSON()).toEqual({ messaging: { broadcast: false }, queues: {} });
    expect((await s.http("POST", "/api/participant-token/validate", { token: null, json: { token: r.json.jwt } })).status).toBe(200);
    // defaults: name guest, role user, user_default scope
    const plain: any = await s.client().createShare(pid, { room: "stage" });
    const d = await ParticipantToken.fromJwt((await connect(plain.id)).json.jwt, { token: await projectSecret() });
    expect([d.name, d.role]).toEqual(["guest", "user"]);
    expect(d.getApiGrant()!.toJSON()).toEqual(ApiScope.userDefault().toJSON());
    // the connected participant can read its room with that token, nothing project-wide
    const jwt = (await connect(plain.id)).json.jwt;
    expect((await s.http("GET", `${P}/rooms/stage`, { token: jwt })).status).toBe(200);
    expect((await s.http("GET", `${P}/shares`, { token: jwt })).status).toBe(403);
  });

  it("a deleted share answers 404, an expired one 410, a used-up one 410", async () => {
    const del: any = await s.client().createShare(pid, { room: "stage" });
    await s.client().deleteShare(pid, del.id);
    expect((await connect(del.id)).status).toBe(404);
    expect((await connect("00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await connect("not-a-uuid")).status).toBe(404);

    const inAnHour = new Date(clock.now() + 3600_000).toISOString();
    const exp: any = await s.client().createShare(pid, { room: "stage", expires_at: inAnHour });
    const ok = await connect(exp.id);
    expect(ok.status).toBe(200);
    // the token never outlives the share
    expect(JSON.parse(Buffer.from(ok.json.jwt.split(".")[1], "base64url").toString()).exp).toBe(Math.floor(Date.parse(inAnHour) / 1000));
    clock.advance(3600_000);
    const late = await connect(exp.id);
    expect(late.status).toBe(410);
    expect(late.json.error.message).toMatch(/expired/);
    const past: any = await s.client().createShare(pid, { room: "stage", expires_at: Math.floor(clock.now() / 1000) - 5 });
    expect((await connect(past.id)).status).toBe(410);

    const twice: any = await s.client().createShare(pid, { room: "stage", max_uses: 2 });
    const results = await Promise.all([0, 1, 2, 3].map(() => connect(twice.id)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 410, 410]);
    expect((await s.client().listShares(pid)).find((x: any) => x.id === twice.id)).toBeTruthy();
    expect((await s.http("GET", `${P}/shares`)).json.shares.find((x: any) => x.id === twice.id).uses).toBe(2);
    // raising max_uses re-opens it; the count so far is kept
    await s.client().updateShare(pid, twice.id, { room: "stage", max_uses: 3 });
    expect((await connect(twice.id)).status).toBe(200);
    expect((await connect(twice.id)).status).toBe(410);
  });

  it("a share follows its room across a rename and dies with it; a share naming no room cannot connect", async () => {
    const room = await s.client().createRoom({ projectId: pid, name: "movable" });
    const share: any = await s.client().createShare(pid, { room: "movable" });
    await s.client().updateRoom(pid, room.id, "moved");
    const r = await connect(share.id);
    expect(r.json.room_name).toBe("moved");
    expect(r.json.settings).toEqual({ room: "movable" });
    await s.client().deleteRoom(pid, room.id);
    expect((await connect(share.id)).status).toBe(404);
    expect((await s.client().listShares(pid)).find((x: any) => x.id === share.id)).toBeUndefined();
    const roomless: any = await s.client().createShare(pid, { note: "later" });
    const nr = await connect(roomless.id);
    expect(nr.status).toBe(404);
    expect(nr.json.error.message).toMatch(/room/);
  });

  it("bad settings are 4xx naming the key", async () => {
    const cases: [unknown, number, RegExp][] = [
      [[1], 400, /settings/],
      ["x", 400, /settings/],
      [{ room: "no-such-room" }, 404, /room/],
      [{ room: 7 }, 400, /settings\.room/],
      [{ room: "stage", role: "king" }, 400, /settings\.role/],
      [{ room: "stage", api: { bogus: {} } }, 400, /settings\.api\.bogus/],
      [{ room: "stage", api: { queues: { send: 1 } } }, 400, /settings\.api\.queues\.send/],
      [{ room: "stage", expires_at: "someday" }, 400, /settings\.expires_at/],
      [{ room: "stage", max_uses: 0 }, 400, /settings\.max_uses/],
      [{ room: "stage", max_uses: 1.5 }, 400, /settings\.max_uses/],
      [{ room: "stage", token_ttl: -1 }, 400, /settings\.token_ttl/],
      [{ room: "stage", name: "" }, 400, /settings\.name/],
    ];
    for (const [settings, status, msg] of cases) {
      const r = await s.http("POST", `${P}/shares`, { json: { settings } });
      expect(r.status, JSON.stringify(settings)).toBe(status);
      expect(r.json.error.message).toMatch(msg);
    }
    const ok: any = await s.client().createShare(pid, { room: "stage" });
    expect((await s.http("PUT", `${P}/shares/${ok.id}`, { json: { settings: { room: "stage", role: 1 } } })).status).toBe(400);
    expect((await s.http("PUT", `${P}/shares/not-a-uuid`, { json: { settings: {} } })).status).toBe(404);
    expect((await s.http("DELETE", `${P}/shares/not-a-uuid`)).status).toBe(404);
    expect((await s.http("GET", `${P}/shares?limit=-1`)).status).toBe(400);
    expect((await s.http("POST", `/shares/${ok.id}/connect`, { token: null, body: "{", headers: { "content-type": "application/json" } })).status).toBe(400);
  });

  it("emits share.created / share.deleted", async () => {
    events.length = 0;
    const share: any = await s.client().createShare(pid, { room: "stage" });
    await s.client().updateShare(pid, share.id, {});
    await s.client().deleteShare(pid, share.id);
    expect(events.filter((e) => e.type.startsWith("share.")).map((e) => [e.type, e.data])).toEqual([
      ["share.created", { id: share.id, room_id: expect.any(String), room_name: "stage" }],
      ["share.deleted", { id: share.id }],
    ]);
  });

  it("another project's key gets 404; shares are invisible across projects", async () => {
    const other = await s.otherProject();
    const share: any = await s.client().createShare(pid, { room: "stage" });
    const t = { token: other.apiKey };
    expect((await s.http("GET", `${P}/shares`, t)).status).toBe(404);
    expect((await s.http("POST", `${P}/shares`, { ...t, json: { settings: {} } })).status).toBe(404);
    expect((await s.http("PUT", `${P}/shares/${share.id}`, { ...t, json: { settings: {} } })).status).toBe(404);
    expect((await s.http("DELETE", `${P}/shares/${share.id}`, t)).status).toBe(404);
    const own = `/accounts/projects/${other.projectId}`;
    expect((await s.http("PUT", `${own}/shares/${share.id}`, { ...t, json: { settings: {} } })).status).toBe(404);
    expect((await s.http("DELETE", `${own}/shares/${share.id}`, t)).status).toBe(404);
    expect((await s.http("GET", `${own}/shares`, t)).json.shares.map((x: any) => x.id)).not.toContain(share.id);
    expect((await s.http("POST", `${own}/shares`, { ...t, json: { settings: { room: "stage" } } })).status).toBe(404);
    expect((await connect(share.id)).status).toBe(200);
  });

  it("authorization matrix", async () => {
    const member = await s.user({ can_create_rooms: true });
    const dev = await s.user({ is_developer: true });
    const admin = await s.user({ is_admin: true });
    const other = await s.otherProject();
    const who: Record<string, string | null> = {
      none: null,
      garbage: "garbage",
      otherKey: other.apiKey,
      otherUser: other.userToken,
      member: member.token,
      developer: dev.token,
      admin: admin.token,
      apiKey: s.admin.apiKey,
    };
    const deny = { none: 401, garbage: 401, otherKey: 404, otherUser: 404 };
    const manage = (ok: number) => ({ ...deny, member: 403, developer: ok, admin: ok, apiKey: ok });
    const fresh = async () => ((await s.client().createShare(pid, { room: "stage" })) as any).id;
    const cases: { name: string; expect: Record<string, number>; req: () => Promise<[string, string, unknown?]> }[] = [
      { name: "create_share", expect: manage(201), req: async () => ["POST", `${P}/shares`, { settings: { room: "stage" } }] },
      { name: "list_shares", expect: manage(200), req: async () => ["GET", `${P}/shares`] },
      { name: "update_share", expect: manage(200), req: async () => ["PUT", `${P}/shares/${await fresh()}`, { settings: {} }] },
      { name: "delete_share", expect: manage(200), req: async () => ["DELETE", `${P}/shares/${await fresh()}`] },
      {
        name: "connect_share",
        expect: { none: 200, garbage: 200, otherKey: 200, otherUser: 200, member: 200, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["POST", `/shares/${await fresh()}/connect`, {}],
      },
    ];
    const failures: string[] = [];
    for (const c of cases)
      for (const [w, token] of Object.entries(who)) {
        const [method, path, json] = await c.req();
        const r = await s.http(method, path, { token, json });
        if (r.status !== c.expect[w]) failures.push(`${c.name} as ${w}: ${r.status} (want ${c.expect[w]})`);
      }
    expect(failures).toEqual([]);
  });
});
