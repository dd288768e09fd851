import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContext } from "../src/wiring.js";
import { PG_URL, startServer, type TestServer } from "./helpers/server.js";
import { ApiScope, ParticipantToken } from "./helpers/official.js";
import type { DomainEvent } from "../src/core/events.js";

/** What Python's `ApiScope.user_default().model_dump(mode="json")` sends: every default and every null. */
const PY_USER_DEFAULT = {
  livekit: { breakout_rooms: null },
  queues: { send: null, receive: null, list: true },
  messaging: { broadcast: true, list: true, send: true },
  dataset: { tables: null, list_tables: true },
  memory: { list: true, memories: null },
  sync: { paths: null },
  storage: { paths: null },
  containers: { logs: true, pull: null, run: null, registry: null, use_containers: true },
  developer: { logs: true },
  agents: {
    register_agent: true,
    register_public_toolkit: true,
    register_private_toolkit: true,
    call: true,
    use_agents: true,
    use_tools: true,
    allowed_toolkits: null,
  },
  llm: null,
  admin: null,
  secrets: { request_oauth_token: null },
  tunnels: null,
  services: { list: true },
};

describe("room grants", () => {
  let s: TestServer;
  let pid: string;
  let P: string;
  const events: DomainEvent[] = [];
  beforeAll(async () => {
    s = await startServer();
    pid = s.admin.projectId;
    P = `/accounts/projects/${pid}`;
    s.ctx.bus.on((e) => events.push(e));
  });
  afterAll(() => s.close());

  it("create, get, update, delete and every list with the official client", async () => {
    const c = s.client();
    const u = await s.user({});
    const room = await c.createRoom({ projectId: pid, name: "g-one" });
    const scope = new ApiScope({ queues: undefined });
    const q = ApiScope.fromJSON({ queues: { send: ["a"], list: false }, storage: { paths: [{ path: "docs/*", read_only: true }] } });
    await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: q });
    const g = await c.getRoomGrant(pid, room.id, u.userId);
    expect(g.room).toEqual({ id: room.id, name: "g-one", metadata: {}, annotations: {} });
    expect(g.userId).toBe(u.userId);
    expect(g.permissions.toJSON()).toEqual(q.toJSON());

    await c.updateRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: scope });
    expect((await c.getRoomGrant(pid, room.id, u.userId)).permissions.toJSON()).toEqual({});
    await c.updateRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full(), grantId: "anything" });
    expect((await c.getRoomGrant(pid, room.id, u.userId)).permissions.toJSON()).toEqual(ApiScope.full().toJSON());

    const all = await c.listRoomGrants(pid, { limit: 10, offset: 0, orderBy: "room_name" });
    expect(all.map((x: any) => [x.room.name, x.userId])).toContainEqual(["g-one", u.userId]);
    const byUser = await c.listRoomGrantsByUser(pid, u.userId, { limit: 10 });
    expect(byUser.map((x: any) => x.room.id)).toEqual([room.id]);
    const byRoom = await c.listRoomGrantsByRoom(pid, room.id, { limit: 10 });
    expect(byRoom.map((x: any) => x.userId)).toEqual([u.userId]);
    const byRoomName = await c.listRoomGrantsByRoom(pid, "g-one");
    expect(byRoomName.map((x: any) => x.userId)).toEqual([u.userId]);
    const rooms = await c.listUniqueRoomsWithGrants(pid, { limit: 10 });
    expect(rooms).toContainEqual({ room: { id: room.id, name: "g-one", metadata: {}, annotations: {} }, count: 1 });
    const users = await c.listUniqueUsersWithGrantsPage(pid, { limit: 10 });
    expect(users.users).toContainEqual({ userId: u.userId, count: 1, email: u.email, firstName: expect.any(String), lastName: expect.any(String) });
    expect(users.total).toBe(users.users.length);

    await c.deleteRoomGrant(pid, room.id, u.userId);
    await expect(c.getRoomGrant(pid, room.id, u.userId)).rejects.toThrow(/404/);
    await expect(c.deleteRoomGrant(pid, room.id, u.userId)).rejects.toThrow(/404/);
  });

  it("Python shapes: the full dump with nulls is accepted and stored exactly; responses carry the required keys", async () => {
    const u = await s.user({});
    const room = await s.client().createRoom({ projectId: pid, name: "g-py" });
    const body = { room_id: room.id, user_id: u.userId, email: null, permissions: PY_USER_DEFAULT, invite_redirect_url: null };
    const r = await s.http("POST", `${P}/room-grants`, { json: body });
    expect(r.status).toBe(201);
    const g = await s.http("GET", `${P}/room-grants/${encodeURIComponent(room.id)}/${encodeURIComponent(u.userId)}`);
    expect(g.status).toBe(200);
    expect(g.json).toEqual({
      room: expect.objectContaining({ id: room.id, name: "g-py", metadata: {}, annotations: {} }),
      user_id: u.userId,
      permissions: PY_USER_DEFAULT,
    });
    expect(JSON.stringify(g.json.permissions)).toBe(JSON.stringify(PY_USER_DEFAULT));

    const up = await s.http("PUT", `${P}/room-grants/unused`, {
      json: { room_id: room.id, user_id: u.userId, permissions: { ...PY_USER_DEFAULT, llm: { models: ["openai/*"] } } },
    });
    expect(up.status).toBe(200);
    expect(up.json.permissions.llm).toEqual({ models: ["openai/*"] });

    const list = await s.http("GET", `${P}/room-grants?limit=50&offset=0&order_by=room_name`);
    expect(list.json.room_grants).toEqual(
      expect.arrayContaining([expect.objectContaining({ user_id: u.userId, room: expect.objectContaining({ metadata: {} }) })]),
    );
    expect(typeof list.json.total).toBe("number");
    const byUser = await s.http("GET", `${P}/room-grants/by-user/${u.userId}?limit=100&offset=0&order_by=room_name&filter=G-P`);
    expect(byUser.json).toEqual({ room_grants: [expect.objectContaining({ user_id: u.userId })], total: 1 });
    const byRoom = await s.http("GET", `${P}/room-grants/by-room/g-py?limit=50&offset=0`);
    expect(byRoom.json).toEqual({ room_grants: [expect.objectContaining({ user_id: u.userId })], total: 1 });
    const uniqRooms = await s.http("GET", `${P}/room-grants/by-room?limit=50&offset=0`);
    expect(uniqRooms.json.rooms).toContainEqual({ room: expect.objectContaining({ id: room.id, name: "g-py", metadata: {} }), count: 1 });
    const uniqUsers = await s.http("GET", `${P}/room-grants/by-user?limit=100&offset=0&filter=${encodeURIComponent(u.email.slice(0, 8).toUpperCase())}`);
    expect(uniqUsers.json).toEqual({
      users: [{ user_id: u.userId, count: 1, email: u.email, first_name: expect.any(String), last_name: expect.any(String) }],
      total: 1,
    });
    const del = await s.http("DELETE", `${P}/room-grants/${room.id}/${u.userId}`);
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ ok: true });
  });

  it("the literal by-room / by-user segments win over {room_id}/{user_id}", async () => {
    const u = await s.user({});
    const room = await s.client().createRoom({ projectId: pid, name: "by-user" });
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full() });
    // a room literally called "by-user": by-room/by-user lists that room's grants (not get_room_grant of room "by-room")
    const r = await s.http("GET", `${P}/room-grants/by-room/by-user`);
    expect(r.status).toBe(200);
    expect(r.json.room_grants.map((g: any) => g.user_id)).toEqual([u.userId]);
    const r2 = await s.http("GET", `${P}/room-grants/by-user/${u.userId}`);
    expect(r2.json.room_grants.map((g: any) => g.room.name)).toEqual(["by-user"]);
    // and get_room_grant by room name works for a room called by-user
    const r3 = await s.http("GET", `${P}/room-grants/${room.id}/${u.userId}`);
    expect(r3.json.user_id).toBe(u.userId);
  });

  it("by email: an unknown address becomes an invited member whose grant applies once they sign up", async () => {
    const room = await s.client().createRoom({ projectId: pid, name: "g-invite" });
    const email = `Invitee-${Date.now()}@Example.com`;
    await s.client().createRoomGrantByEmail({ projectId: pid, roomId: room.id, email, permissions: ApiScope.fromJSON({ messaging: {} }) });
    const user = await s.ctx.users.byEmail(email);
    expect(user).toMatchObject({ email, invited: 1, password_hash: null });
    const members = await s.http("GET", `${P}/users?filter=invitee`);
    expect(members.json.users).toEqual([expect.objectContaining({ id: user!.id, invited: true, role: "member" })]);
    const uniq = await s.http("GET", `${P}/room-grants/by-user?filter=invitee`);
    expect(uniq.json.users).toEqual([expect.objectContaining({ user_id: user!.id, email, count: 1 })]);
    // a second grant by the same email (any case) reuses the user
    const room2 = await s.client().createRoom({ projectId: pid, name: "g-invite-2" });
    const r = await s.http("POST", `${P}/room-grants`, {
      json: { room_id: "g-invite-2", user_id: null, email: email.toLowerCase(), permissions: {}, invite_redirect_url: "https://example.com/welcome" },
    });
    expect(r.status).toBe(201);
    expect(r.json.user_id).toBe(user!.id);
    expect((await s.http("GET", `${P}/room-grants/by-user/${user!.id}`)).json.total).toBe(2);
    // the person signs up (password set, token issued): the grant is theirs
    await s.ctx.users.setPassword(user!.id, "secret-pw");
    const token = await s.ctx.users.issueToken(user!.id, { kind: "pat", name: "signup" });
    const info = await s.client(token).connectRoom(pid, "g-invite");
    const pt = ParticipantToken.fromJson(JSON.parse(Buffer.from(info.jwt.split(".")[1], "base64url").toString()));
    expect(pt.getApiGrant()!.toJSON()).toEqual({ messaging: {} });
    expect(room2.id).toBeTruthy();
  });

  it("granting a user who is not a member makes them a member; removing a member removes their grants", async () => {
    const stranger = await s.user(null);
    const room = await s.client().createRoom({ projectId: pid, name: "g-stranger" });
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: stranger.userId, permissions: ApiScope.userDefault() });
    expect((await s.http("GET", `${P}/role`, { token: stranger.token })).json.role).toBe("member");
    expect((await s.http("POST", `${P}/rooms/g-stranger/connect`, { token: stranger.token, json: {} })).status).toBe(200);
    const inTx: DomainEvent[] = [];
    s.ctx.bus.subscribeTx(async (_q, e) => void inTx.push(e));
    await s.client().removeUserFromProject(pid, stranger.userId);
    expect((await s.http("GET", `${P}/room-grants/${room.id}/${stranger.userId}`)).status).toBe(404);
    // the outbox (a transactional subscriber) sees the grant go in the removal's transaction
    const seen = inTx.filter((e) => e.data.user_id === stranger.userId).map((e) => [e.type, e.data.change ?? null, e.data.room_name ?? null]);
    expect(seen).toHaveLength(2);
    expect(seen).toEqual(
      expect.arrayContaining([
        ["project.user.removed", null, null],
        ["grant.changed", "deleted", "g-stranger"],
      ]),
    );
  });

  it("permissions are validated as a full ApiScope: unknown sections and wrong types are 400", async () => {
    const u = await s.user({});
    const room = await s.client().createRoom({ projectId: pid, name: "g-valid" });
    const bad: [unknown, RegExp][] = [
      [{ bogus: {} }, /permissions\.bogus/],
      [{ queues: { send: "x" } }, /permissions\.queues\.send/],
      [{ messaging: { send: "yes" } }, /permissions\.messaging\.send/],
      [{ dataset: { tables: [{ write: true }] } }, /permissions\.dataset\.tables\[0\]\.name/],
      [{ database: { tables: [null] } }, /permissions\.database\.tables\[0\]/],
      [{ memory: { memories: [{ name: "m", permissions: { query: 1 } }] } }, /query/],
      [{ storage: { paths: [{ read_only: true }] } }, /paths\[0\]\.path/],
      [{ secrets: { request_oauth_token: [{ endpoint: "e" }] } }, /client_id/],
      [{ containers: { registry: { pull: [1] } } }, /registry\.pull/],
      [{ llm: [] }, /permissions\.llm/],
      [[], /permissions/],
      ["full", /permissions/],
      [null, /permissions/],
    ];
    for (const [permissions, msg] of bad) {
      const r = await s.http("POST", `${P}/room-grants`, { json: { room_id: room.id, user_id: u.userId, permissions } });
      expect(r.status, JSON.stringify(permissions)).toBe(400);
      expect(r.json.error.message).toMatch(msg);
    }
    // aliases, camelCase leftovers and unknown keys inside a section are accepted and stored exactly
    const odd = { datasets: { tables: [{ name: "t", write: true }] }, queues: { send: ["q"], extra: 1 }, tunnels: { ports: [] } };
    expect((await s.http("POST", `${P}/room-grants`, { json: { room_id: room.id, user_id: u.userId, permissions: odd } })).status).toBe(201);
    expect((await s.http("GET", `${P}/room-grants/${room.id}/${u.userId}`)).json.permissions).toEqual(odd);
    expect((await s.http("PUT", `${P}/room-grants/x`, { json: { room_id: room.id, user_id: u.userId, permissions: { nope: {} } } })).status).toBe(400);
  });

  it("bad input elsewhere is 4xx naming the problem", async () => {
    const u = await s.user({});
    const room = await s.client().createRoom({ projectId: pid, name: "g-bad" });
    const cases: [string, string, unknown, number, RegExp][] = [
      ["POST", `${P}/room-grants`, { user_id: u.userId, permissions: {} }, 400, /room_id/],
      ["POST", `${P}/room-grants`, { room_id: room.id, permissions: {} }, 400, /user_id or email/],
      ["POST", `${P}/room-grants`, { room_id: room.id, user_id: "nope", permissions: {} }, 400, /user_id/],
      ["POST", `${P}/room-grants`, { room_id: room.id, email: "not-an-email", permissions: {} }, 400, /email/],
      ["POST", `${P}/room-grants`, { room_id: room.id, user_id: "00000000-0000-4000-8000-000000000000", permissions: {} }, 404, /user/],
      ["POST", `${P}/room-grants`, { room_id: "no-such-room", user_id: u.userId, permissions: {} }, 404, /room/],
      ["PUT", `${P}/room-grants/x`, { room_id: room.id, user_id: u.userId, permissions: {} }, 404, /grant/],
      ["PUT", `${P}/room-grants/x`, { room_id: room.id, permissions: {} }, 400, /user_id/],
      ["GET", `${P}/room-grants?order_by=nope`, undefined, 400, /order_by/],
      ["GET", `${P}/room-grants?limit=x`, undefined, 400, /limit/],
      ["GET", `${P}/room-grants/by-room?offset=-2`, undefined, 400, /offset/],
      ["GET", `${P}/room-grants/by-room/no-such-room`, undefined, 404, /room/],
      ["GET", `${P}/room-grants/${room.id}/${u.userId}`, undefined, 404, /grant/],
      ["DELETE", `${P}/room-grants/no-such-room/${u.userId}`, undefined, 404, /room/],
    ];
    for (const [m, path, json, status, msg] of cases) {
      const r = await s.http(m, path, { json });
      expect(r.status, `${m} ${path}`).toBe(status);
      expect(r.json.error.message).toMatch(msg);
    }
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full() });
    const dup = await s.http("POST", `${P}/room-grants`, { json: { room_id: room.id, user_id: u.userId, permissions: {} } });
    expect(dup.status).toBe(409);
  });

  it("paging and totals on every list", async () => {
    const other = await s.otherProject();
    const c = s.client(other.apiKey);
    const op = other.projectId;
    const users = [];
    for (let i = 0; i < 3; i++) users.push(await s.user({}, op));
    const rooms = [];
    for (const n of ["pg-c", "pg-a", "pg-b", "pg-d"]) rooms.push(await c.createRoom({ projectId: op, name: n }));
    // user i gets a grant on rooms 0..i+1 → 2 + 3 + 4 = 9 grants
    for (let i = 0; i < 3; i++)
      for (let j = 0; j <= i + 1; j++) await c.createRoomGrant({ projectId: op, roomId: rooms[j].id, userId: users[i].userId, permissions: ApiScope.full() });
    const Q = `/accounts/projects/${op}`;
    const get = async (p: string) => (await s.http("GET", `${Q}${p}`, { token: other.apiKey })).json;
    const all = await get("/room-grants?limit=1000");
    expect(all.total).toBe(9);
    const names = all.room_grants.map((g: any) => g.room.name);
    expect(names).toEqual([...names].sort());
    const pages = [];
    for (let off = 0; off < 9; off += 4) pages.push(...(await get(`/room-grants?limit=4&offset=${off}`)).room_grants);
    expect(pages.map((g: any) => `${g.room.id}/${g.user_id}`)).toEqual(all.room_grants.map((g: any) => `${g.room.id}/${g.user_id}`));
    const created = await get("/room-grants?order_by=created_at&limit=2&offset=7");
    expect(created).toMatchObject({ total: 9 });
    expect(created.room_grants).toHaveLength(2);
    expect(await get(`/room-grants/by-user/${users[2].userId}?limit=2&offset=3`)).toMatchObject({ total: 4, room_grants: [{ room: { name: "pg-d" } }] });
    expect(await get(`/room-grants/by-room/pg-c?limit=1&offset=1`)).toMatchObject({ total: 3 });
    const byRoom = await get("/room-grants/by-room?limit=2&offset=1");
    expect(byRoom).toEqual({
      total: 4,
      rooms: [
        expect.objectContaining({ room: expect.objectContaining({ name: "pg-b" }), count: 2 }),
        expect.objectContaining({ room: expect.objectContaining({ name: "pg-c" }), count: 3 }),
      ],
    });
    const byUser = await get("/room-grants/by-user?limit=2&offset=0");
    expect(byUser.total).toBe(3);
    expect(byUser.users.map((u: any) => u.count).sort()).toHaveLength(2);
    const counts = Object.fromEntries((await get("/room-grants/by-user")).users.map((u: any) => [u.user_id, u.count]));
    expect(counts).toEqual({ [users[0].userId]: 2, [users[1].userId]: 3, [users[2].userId]: 4 });
  });

  it("emits grant.changed for create, update and delete", async () => {
    const u = await s.user({});
    const room = await s.client().createRoom({ projectId: pid, name: "g-events" });
    events.length = 0;
    const c = s.client();
    await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full() });
    await c.updateRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.userDefault() });
    await c.deleteRoomGrant(pid, room.id, u.userId);
    expect(events.filter((e) => e.type === "grant.changed").map((e) => e.data)).toEqual(
      ["created", "updated", "deleted"].map((change) => ({ change, room_id: room.id, room_name: "g-events", user_id: u.userId })),
    );
  });

  it("another project's key gets 404 on every grant route", async () => {
    const other = await s.otherProject();
    const u = await s.user({});
    const room = await s.client().createRoom({ projectId: pid, name: "g-private" });
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full() });
    const t = { token: other.apiKey };
    const calls: [string, string, unknown?][] = [
      ["POST", `${P}/room-grants`, { room_id: room.id, user_id: u.userId, permissions: {} }],
      ["PUT", `${P}/room-grants/x`, { room_id: room.id, user_id: u.userId, permissions: {} }],
      ["GET", `${P}/room-grants`],
      ["GET", `${P}/room-grants/by-room`],
      ["GET", `${P}/room-grants/by-user`],
      ["GET", `${P}/room-grants/by-room/g-private`],
      ["GET", `${P}/room-grants/by-user/${u.userId}`],
      ["GET", `${P}/room-grants/${room.id}/${u.userId}`],
      ["DELETE", `${P}/room-grants/${room.id}/${u.userId}`],
    ];
    for (const [m, p, json] of calls) expect((await s.http(m, p, { ...t, json })).status, `${m} ${p}`).toBe(404);
    // via its own project the room is unknown
    const own = `/accounts/projects/${other.projectId}`;
    expect((await s.http("POST", `${own}/room-grants`, { ...t, json: { room_id: room.id, user_id: u.userId, permissions: {} } })).status).toBe(404);
    expect((await s.http("GET", `${own}/room-grants/${room.id}/${u.userId}`, t)).status).toBe(404);
    expect((await s.http("DELETE", `${own}/room-grants/${room.id}/${u.userId}`, t)).status).toBe(404);
    expect((await s.http("GET", `${P}/room-grants/${room.id}/${u.userId}`)).status).toBe(200);
  });

  it("authorization matrix", async () => {
    const member = await s.user({});
    const dev = await s.user({ is_developer: true });
    const admin = await s.user({ is_admin: true });
    const other = await s.otherProject();
    const room = await s.client().createRoom({ projectId: pid, name: "g-authz" });
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: member.userId, permissions: ApiScope.full() });
    const target = await s.user({});
    await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: target.userId, permissions: ApiScope.full() });
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
    const fresh = async () => {
      const u = await s.user({});
      await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full() });
      return u.userId;
    };
    const cases: { name: string; expect: Record<string, number>; req: () => Promise<[string, string, unknown?]> }[] = [
      {
        name: "create_room_grant",
        expect: manage(201),
        req: async () => ["POST", `${P}/room-grants`, { room_id: room.id, user_id: (await s.user({})).userId, permissions: {} }],
      },
      {
        name: "update_room_grant",
        expect: manage(200),
        req: async () => ["PUT", `${P}/room-grants/unused`, { room_id: room.id, user_id: target.userId, permissions: {} }],
      },
      { name: "delete_room_grant", expect: manage(200), req: async () => ["DELETE", `${P}/room-grants/${room.id}/${await fresh()}`] },
      { name: "get_room_grant (other user)", expect: manage(200), req: async () => ["GET", `${P}/room-grants/${room.id}/${target.userId}`] },
      { name: "get_room_grant (own)", expect: { ...manage(200), member: 200 }, req: async () => ["GET", `${P}/room-grants/${room.id}/${member.userId}`] },
      { name: "list_room_grants", expect: manage(200), req: async () => ["GET", `${P}/room-grants`] },
      {
        name: "list_room_grants_by_user (own)",
        expect: { ...manage(200), member: 200 },
        req: async () => ["GET", `${P}/room-grants/by-user/${member.userId}`],
      },
      { name: "list_room_grants_by_user (other)", expect: manage(200), req: async () => ["GET", `${P}/room-grants/by-user/${target.userId}`] },
      { name: "list_room_grants_by_room", expect: manage(200), req: async () => ["GET", `${P}/room-grants/by-room/g-authz`] },
      { name: "list_unique_rooms_with_grants", expect: manage(200), req: async () => ["GET", `${P}/room-grants/by-room`] },
      { name: "list_unique_users_with_grants", expect: manage(200), req: async () => ["GET", `${P}/room-grants/by-user`] },
    ];
    const failures: string[] = [];
    for (const c of cases)
      for (const [w, token] of Object.entries(who)) {
        const [method, path, json] = await c.req();
        const r = await s.http(method, path, { token, json });
        if (r.status !== c.expect[w]) failures.push(`${c.name} as ${w}: ${r.status} (want ${c.expect[w]}) ${r.text.slice(0, 100)}`);
      }
    expect(failures).toEqual([]);
  });

  describe("connect_room's cached room and grant lookups follow every change at once", () => {
    const scopeOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString()).grants[2].scope;
    const connect = (room: string, token: string) => s.http("POST", `${P}/rooms/${room}/connect`, { token, json: {} });

    it("grant created, updated, deleted; room renamed and deleted; member removed and added back", async () => {
      const c = s.client();
      const u = await s.user({});
      const room = await c.createRoom({ projectId: pid, name: "cache-a" });
      expect((await connect("cache-a", u.token)).status).toBe(403); // cached: room found, no grant
      await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.fromJSON({ queues: { send: ["a"] } }) });
      let r = await connect("cache-a", u.token);
      expect(r.status).toBe(200);
      expect(scopeOf(r.json.jwt).queues.send).toEqual(["a"]);
      await c.updateRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.fromJSON({ queues: { send: ["b"] } }) });
      r = await connect("cache-a", u.token);
      expect(scopeOf(r.json.jwt).queues.send).toEqual(["b"]);
      await c.deleteRoomGrant(pid, room.id, u.userId);
      expect((await connect("cache-a", u.token)).status).toBe(403);

      await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.fromJSON({ queues: {} }) });
      expect((await connect("cache-a", u.token)).status).toBe(200);
      expect((await connect("cache-a", s.admin.apiKey)).status).toBe(200); // API keys: the room alone is cached
      await c.updateRoom(pid, room.id, "cache-b");
      expect((await connect("cache-a", u.token)).status).toBe(404);
      expect((await connect("cache-a", s.admin.apiKey)).status).toBe(404);
      r = await connect("cache-b", u.token);
      expect(r.status).toBe(200);
      expect(r.json.room_name).toBe("cache-b");

      // removal takes the grant along; being added back (no grant) must not resurrect the cached one
      await c.removeUserFromProject(pid, u.userId);
      expect((await connect("cache-b", u.token)).status).toBe(404);
      await c.addUserToProject(pid, u.userId, {});
      expect((await connect("cache-b", u.token)).status).toBe(403);

      await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.fromJSON({ queues: {} }) });
      expect((await connect("cache-b", u.token)).status).toBe(200);
      expect((await connect("cache-b", s.admin.apiKey)).status).toBe(200);
      await c.deleteRoom(pid, room.id);
      expect((await connect("cache-b", u.token)).status).toBe(404);
      expect((await connect("cache-b", s.admin.apiKey)).status).toBe(404);
      await c.createRoom({ projectId: pid, name: "cache-b" }); // same name, new room, no grant
      expect((await connect("cache-b", u.token)).status).toBe(403);
    });

    it.runIf(PG_URL)("a grant revoked through one process stops connect_room at once in another (Postgres)", async () => {
      const other = await createContext(s.config); // a second server process' services: own caches, own LISTEN
      try {
        const u = await s.user({});
        const room = await s.client().createRoom({ projectId: pid, name: "cache-x" });
        await s.client().createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.fromJSON({ queues: {} }) });
        expect((await other.grants.connectLookup(pid, "cache-x", u.userId)).scope).toEqual({ queues: {} }); // now cached there
        await s.client().deleteRoomGrant(pid, room.id, u.userId);
        let revoked = false;
        for (let i = 0; i < 100 && !revoked; i++) {
          revoked = (await other.grants.connectLookup(pid, "cache-x", u.userId)).scope === null;
          if (!revoked) await new Promise((r) => setTimeout(r, 20));
        }
        expect(revoked).toBe(true);
      } finally {
        await other.close();
      }
    });
  });
});
