import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope } from "./helpers/official.js";
import type { DomainEvent } from "../src/core/events.js";
import { pySpec } from "./helpers/scheduler.js";

describe("rooms", () => {
  let s: TestServer;
  let P: string;
  const events: DomainEvent[] = [];
  beforeAll(async () => {
    s = await startServer();
    P = `/accounts/projects/${s.admin.projectId}`;
    s.ctx.bus.on((e) => events.push(e));
  });
  afterAll(() => s.close());

  it("create_room, get_room, list_rooms, update_room, delete_room with the official client", async () => {
    const c = s.client();
    const pid = s.admin.projectId;
    const r = await c.createRoom({ projectId: pid, name: "alpha", metadata: { a: 1 }, annotations: { team: "x" } });
    expect(r).toEqual({ id: expect.any(String), name: "alpha", metadata: { a: 1 }, annotations: { team: "x" } });
    expect(await c.getRoom(pid, "alpha")).toEqual(r);
    const list = await c.listRooms(pid, { limit: 10, offset: 0, orderBy: "room_name" });
    expect(list.map((x: any) => x.name)).toContain("alpha");
    await c.updateRoom(pid, r.id, "alpha-2", { metadata: { b: 2 } });
    const after = await c.getRoom(pid, "alpha-2");
    expect(after).toEqual({ id: r.id, name: "alpha-2", metadata: { b: 2 }, annotations: { team: "x" } });
    await expect(c.getRoom(pid, "alpha")).rejects.toThrow(/404/);
    await c.deleteRoom(pid, r.id);
    await expect(c.getRoom(pid, "alpha-2")).rejects.toThrow(/404/);
  });

  it("metadata is always present, annotations default to {}; if_not_exists returns the existing room; duplicates are 409", async () => {
    const a = await s.http("POST", `${P}/rooms`, { json: { name: "beta", if_not_exists: false, metadata: null, annotations: null, permissions: null } });
    expect(a.status).toBe(201);
    expect(a.json).toMatchObject({ name: "beta", metadata: {}, annotations: {} });
    const again = await s.http("POST", `${P}/rooms`, { json: { name: "beta", if_not_exists: true, metadata: { ignored: true } } });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id: a.json.id, metadata: {} });
    const viaClient = await s.client().createRoom({ projectId: s.admin.projectId, name: "beta", ifNotExists: true });
    expect(viaClient.id).toBe(a.json.id);
    const dup = await s.http("POST", `${P}/rooms`, { json: { name: "beta" } });
    expect(dup.status).toBe(409);
    expect(dup.json.error.code).toBe("conflict");
    await expect(s.client().createRoom({ projectId: s.admin.projectId, name: "beta" })).rejects.toThrow(/409/);
  });

  it("Python shapes: list_rooms returns rooms and total; update/delete answer JSON bodies", async () => {
    const r = await s.http("POST", `${P}/rooms`, {
      json: { name: "py-room", if_not_exists: false, metadata: { k: "v" }, annotations: { a: "b" }, permissions: null },
    });
    const list = await s.http("GET", `${P}/rooms?limit=100&offset=0&order_by=room_name&filter=PY-R`);
    expect(list.status).toBe(200);
    expect(list.json).toEqual({
      rooms: [expect.objectContaining({ id: r.json.id, name: "py-room", metadata: { k: "v" }, annotations: { a: "b" } })],
      total: 1,
    });
    const up = await s.http("PUT", `${P}/rooms/${r.json.id}`, { json: { name: "py-room" } });
    expect(up.status).toBe(200);
    expect(up.json).toMatchObject({ name: "py-room", metadata: { k: "v" } });
    const up2 = await s.http("PUT", `${P}/rooms/${r.json.id}`, { json: { name: "py-room", metadata: null, annotations: null } });
    expect(up2.json.metadata).toEqual({ k: "v" });
    const del = await s.http("DELETE", `${P}/rooms/${r.json.id}`);
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ ok: true });
    expect((await s.http("DELETE", `${P}/rooms/${r.json.id}`)).status).toBe(404);
  });

  it("list_rooms honours limit, offset, both orders, filter and total", async () => {
    const other = await s.otherProject();
    const c = s.client(other.apiKey);
    const names = ["m-3", "m-1", "m-2", "x-9"];
    for (const n of names) await c.createRoom({ projectId: other.projectId, name: n });
    const byName = await s.http("GET", `/accounts/projects/${other.projectId}/rooms?order_by=room_name`, { token: other.apiKey });
    expect(byName.json.rooms.map((r: any) => r.name)).toEqual(["m-1", "m-2", "m-3", "x-9"]);
    expect(byName.json.total).toBe(4);
    const byCreated = await s.http("GET", `/accounts/projects/${other.projectId}/rooms?order_by=created_at&limit=2&offset=1`, { token: other.apiKey });
    expect(byCreated.json.rooms.map((r: any) => r.name)).toEqual(["m-1", "m-2"]);
    expect(byCreated.json.total).toBe(4);
    const filtered = await s.http("GET", `/accounts/projects/${other.projectId}/rooms?filter=m-&limit=1`, { token: other.apiKey });
    expect(filtered.json).toMatchObject({ total: 3, rooms: [{ name: "m-1" }] });
    const none = await s.http("GET", `/accounts/projects/${other.projectId}/rooms?limit=0`, { token: other.apiKey });
    expect(none.json).toEqual({ rooms: [], total: 4 });
    const like = await s.http("GET", `/accounts/projects/${other.projectId}/rooms?filter=%25`, { token: other.apiKey });
    expect(like.json.total).toBe(0);
  });

  it("renaming keeps the id; a rename onto an existing name is 409", async () => {
    const c = s.client();
    const a = await c.createRoom({ projectId: s.admin.projectId, name: "ren-a" });
    await c.createRoom({ projectId: s.admin.projectId, name: "ren-b" });
    const r = await s.http("PUT", `${P}/rooms/${a.id}`, { json: { name: "ren-b" } });
    expect(r.status).toBe(409);
    const u = await s.user({});
    await c.createRoomGrant({ projectId: s.admin.projectId, roomId: a.id, userId: u.userId, permissions: ApiScope.fromJSON({ messaging: {} }) });
    await c.updateRoom(s.admin.projectId, a.id, "ren-c");
    expect((await c.getRoom(s.admin.projectId, "ren-c")).id).toBe(a.id);
    // the grant stayed with the room: readable under the new name, and connect_room under the new name uses it
    const g = await c.getRoomGrant(s.admin.projectId, "ren-c", u.userId);
    expect([g.room.id, g.room.name, g.permissions.toJSON()]).toEqual([a.id, "ren-c", { messaging: {} }]);
    const info = await s.client(u.token).connectRoom(s.admin.projectId, "ren-c");
    expect(info.roomName).toBe("ren-c");
    expect((await s.http("POST", `${P}/rooms/ren-a/connect`, { token: u.token, json: {} })).status).toBe(404);
  });

  it("bad input is 400 naming the problem, never 500", async () => {
    const bad: [unknown, RegExp][] = [
      [{ name: "Upper" }, /name/],
      [{ name: "-lead" }, /name/],
      [{ name: "trail-" }, /name/],
      [{ name: "a".repeat(64) }, /name/],
      [{ name: "" }, /name/],
      [{ name: 5 }, /name/],
      [{}, /name/],
      [{ name: "ok-room", metadata: [1] }, /metadata/],
      [{ name: "ok-room", annotations: { a: 1 } }, /annotations/],
      [{ name: "ok-room", if_not_exists: "yes" }, /if_not_exists/],
      [{ name: "ok-room", permissions: { "not-a-uuid": {} } }, /permissions/],
      [{ name: "ok-room", permissions: { [s.admin.userId]: { bogus: {} } } }, /bogus/],
      [{ name: "ok-room", permissions: { [s.admin.userId]: { queues: { send: "q" } } } }, /queues\.send/],
    ];
    for (const [body, msg] of bad) {
      const r = await s.http("POST", `${P}/rooms`, { json: body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.message).toMatch(msg);
    }
    expect((await s.http("POST", `${P}/rooms`, { body: "{not json", headers: { "content-type": "application/json" } })).status).toBe(400);
    expect((await s.http("GET", `${P}/rooms?order_by=size`)).status).toBe(400);
    expect((await s.http("GET", `${P}/rooms?limit=-1`)).status).toBe(400);
    expect((await s.http("GET", `${P}/rooms?offset=abc`)).status).toBe(400);
    const room = await s.client().createRoom({ projectId: s.admin.projectId, name: "bad-upd" });
    expect((await s.http("PUT", `${P}/rooms/${room.id}`, { json: { name: "BAD" } })).status).toBe(400);
    expect((await s.http("PUT", `${P}/rooms/${room.id}`, { json: {} })).status).toBe(400);
    expect((await s.http("PUT", `${P}/rooms/${room.id}`, { json: { name: "bad-upd", annotations: { x: [] } } })).status).toBe(400);
    expect((await s.http("PUT", `${P}/rooms/not-a-uuid`, { json: { name: "zz" } })).status).toBe(404);
    expect((await s.http("GET", `${P}/rooms/NoSuch`)).status).toBe(404);
    // a bad user in permissions rolls the whole creation back
    const ghost = "00000000-0000-4000-8000-000000000000";
    const r = await s.http("POST", `${P}/rooms`, { json: { name: "ghost-room", permissions: { [ghost]: {} } } });
    expect(r.status).toBe(404);
    expect((await s.http("GET", `${P}/rooms/ghost-room`)).status).toBe(404);
  });

  it("another project's key gets 404 on every room route", async () => {
    const other = await s.otherProject();
    const room = await s.client().createRoom({ projectId: s.admin.projectId, name: "private-room" });
    const t = { token: other.apiKey };
    expect((await s.http("GET", `${P}/rooms`, t)).status).toBe(404);
    expect((await s.http("POST", `${P}/rooms`, { ...t, json: { name: "x" } })).status).toBe(404);
    expect((await s.http("GET", `${P}/rooms/private-room`, t)).status).toBe(404);
    expect((await s.http("PUT", `${P}/rooms/${room.id}`, { ...t, json: { name: "y" } })).status).toBe(404);
    expect((await s.http("DELETE", `${P}/rooms/${room.id}`, t)).status).toBe(404);
    expect((await s.http("POST", `${P}/rooms/private-room/connect`, { ...t, json: {} })).status).toBe(404);
    // and through its own project, the other project's room id is not found either
    const own = `/accounts/projects/${other.projectId}`;
    expect((await s.http("PUT", `${own}/rooms/${room.id}`, { ...t, json: { name: "y" } })).status).toBe(404);
    expect((await s.http("DELETE", `${own}/rooms/${room.id}`, t)).status).toBe(404);
    expect((await s.http("GET", `${own}/rooms/private-room`, t)).status).toBe(404);
  });

  it("emits room.created / room.updated / room.deleted on the bus after commit", async () => {
    events.length = 0;
    const c = s.client();
    const r = await c.createRoom({ projectId: s.admin.projectId, name: "ev-room" });
    await c.updateRoom(s.admin.projectId, r.id, "ev-room-2");
    await c.deleteRoom(s.admin.projectId, r.id);
    const mine = events.filter((e) => e.type.startsWith("room."));
    expect(mine).toEqual([
      { type: "room.created", project_id: s.admin.projectId, data: { id: r.id, room_name: "ev-room" } },
      { type: "room.updated", project_id: s.admin.projectId, data: { id: r.id, room_name: "ev-room-2", previous_room_name: "ev-room" } },
      { type: "room.deleted", project_id: s.admin.projectId, data: { id: r.id, room_name: "ev-room-2" } },
    ]);
  });

  it("events are published inside the transaction: a failing transactional subscriber undoes the change", async () => {
    let fail = true;
    s.ctx.bus.subscribeTx(async (_q, e) => {
      if (fail && e.type === "room.created" && e.data.room_name === "tx-room") throw new Error("outbox down");
    });
    const r = await s.http("POST", `${P}/rooms`, { json: { name: "tx-room" } });
    expect(r.status).toBe(500);
    expect((await s.http("GET", `${P}/rooms/tx-room`)).status).toBe(404);
    fail = false;
    expect((await s.http("POST", `${P}/rooms`, { json: { name: "tx-room" } })).status).toBe(201);
  });

  it("the room counter keeps total exact across creates, duplicates and deletes", async () => {
    const other = await s.otherProject();
    const c = s.client(other.apiKey);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await c.createRoom({ projectId: other.projectId, name: `cnt-${i}` })).id);
    await c.createRoom({ projectId: other.projectId, name: "cnt-0", ifNotExists: true });
    await expect(c.createRoom({ projectId: other.projectId, name: "cnt-1" })).rejects.toThrow();
    await c.deleteRoom(other.projectId, ids[0]);
    await Promise.all([
      s.http("DELETE", `/accounts/projects/${other.projectId}/rooms/${ids[1]}`, { token: other.apiKey }),
      s.http("DELETE", `/accounts/projects/${other.projectId}/rooms/${ids[1]}`, { token: other.apiKey }),
      ...[0, 1, 2].map(() => s.http("POST", `/accounts/projects/${other.projectId}/rooms`, { token: other.apiKey, json: { name: "cnt-race" } })),
    ]);
    const list = await s.http("GET", `/accounts/projects/${other.projectId}/rooms?limit=1000`, { token: other.apiKey });
    expect(list.json.total).toBe(list.json.rooms.length);
    expect(list.json.total).toBe(4);
  });

  it("authorization matrix", async () => {
    const member = await s.user({});
    const creator = await s.user({ can_create_rooms: true });
    const dev = await s.user({ is_developer: true });
    const admin = await s.user({ is_admin: true });
    const dead: any = await s.client().createApiKey(s.admin.projectId, "dead", "");
    await s.client().deleteApiKey(s.admin.projectId, dead.id);
    const other = await s.otherProject();
    const shared = await s.client().createRoom({ projectId: s.admin.projectId, name: "authz-room" });
    await s.client().createRoomGrant({ projectId: s.admin.projectId, roomId: shared.id, userId: member.userId, permissions: ApiScope.userDefault() });
    await s.client().createRoom({ projectId: s.admin.projectId, name: "authz-nogrant" });

    const who: Record<string, string | null> = {
      none: null,
      garbage: "garbage",
      deletedKey: dead.value,
      otherKey: other.apiKey,
      otherUser: other.userToken,
      member: member.token,
      creator: creator.token,
      developer: dev.token,
      admin: admin.token,
      apiKey: s.admin.apiKey,
    };
    const deny = { none: 401, garbage: 401, deletedKey: 401, otherKey: 404, otherUser: 404 };
    let n = 0;
    const fresh = async () => (await s.client().createRoom({ projectId: s.admin.projectId, name: `authz-${++n}` })).id;
    const cases: { name: string; expect: Record<string, number>; req: () => Promise<[string, string, unknown?]> }[] = [
      {
        name: "create_room",
        expect: { ...deny, member: 403, creator: 201, developer: 201, admin: 201, apiKey: 201 },
        req: async () => ["POST", `${P}/rooms`, { name: `authz-c-${++n}` }],
      },
      { name: "list_rooms", expect: { ...deny, member: 200, creator: 200, developer: 200, admin: 200, apiKey: 200 }, req: async () => ["GET", `${P}/rooms`] },
      {
        name: "get_room (granted)",
        expect: { ...deny, member: 200, creator: 403, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["GET", `${P}/rooms/authz-room`],
      },
      {
        name: "get_room (no grant)",
        expect: { ...deny, member: 403, creator: 403, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["GET", `${P}/rooms/authz-nogrant`],
      },
      {
        name: "update_room",
        expect: { ...deny, member: 403, creator: 403, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["PUT", `${P}/rooms/${await fresh()}`, { name: `authz-u-${++n}` }],
      },
      {
        name: "delete_room",
        expect: { ...deny, member: 403, creator: 403, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["DELETE", `${P}/rooms/${await fresh()}`],
      },
      {
        name: "connect_room (granted)",
        expect: { ...deny, member: 200, creator: 403, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["POST", `${P}/rooms/authz-room/connect`, {}],
      },
      {
        name: "connect_room (no grant)",
        expect: { ...deny, member: 403, creator: 403, developer: 200, admin: 200, apiKey: 200 },
        req: async () => ["POST", `${P}/rooms/authz-nogrant/connect`, {}],
      },
      {
        name: "connect_room (missing room)",
        expect: { ...deny, member: 404, creator: 404, developer: 404, admin: 404, apiKey: 404 },
        req: async () => ["POST", `${P}/rooms/no-such-room/connect`, {}],
      },
    ];
    const failures: string[] = [];
    for (const c of cases)
      for (const [w, token] of Object.entries(who)) {
        const [method, path, json] = await c.req();
        const r = await s.http(method, path, { token, json });
        if (r.status !== c.expect[w]) failures.push(`${c.name} as ${w}: ${r.status} (want ${c.expect[w]}) ${r.text.slice(0, 120)}`);
      }
    expect(failures).toEqual([]);
  });

  it("members see only rooms they hold a grant on; a member creating a room gets a grant on it", async () => {
    const m = await s.user({ can_create_rooms: true });
    const pid = s.admin.projectId;
    const mine = await s.client(m.token).createRoom({ projectId: pid, name: "member-made" });
    const g = await s.client().getRoomGrant(pid, mine.id, m.userId);
    expect(g.permissions.toJSON()).toEqual(ApiScope.userDefault().toJSON());
    const granted = await s.client().createRoom({ projectId: pid, name: "member-granted" });
    await s.client().createRoomGrant({ projectId: pid, roomId: granted.id, userId: m.userId, permissions: new ApiScope({}) });
    const list = await s.http("GET", `${P}/rooms?order_by=room_name`, { token: m.token });
    expect(list.json).toEqual({ rooms: [expect.objectContaining({ name: "member-granted" }), expect.objectContaining({ name: "member-made" })], total: 2 });
    const filtered = await s.http("GET", `${P}/rooms?filter=made`, { token: m.token });
    expect(filtered.json.total).toBe(1);
    // a member may not hand out grants to others through create_room
    const other = await s.user({});
    const r = await s.http("POST", `${P}/rooms`, { token: m.token, json: { name: "member-x", permissions: { [other.userId]: {} } } });
    expect(r.status).toBe(403);
  });
});

describe("room deletion cascade", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  async function count(table: "room_grants" | "shares" | "mailboxes" | "room_queues" | "scheduled_tasks", roomId: string) {
    const r = await s.ctx.store.db
      .selectFrom(table)
      .where("room_id", "=", roomId)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  it("removes grants, shares and what other areas registered, in one transaction; a failing hook rolls everything back", async () => {
    const pid = s.admin.projectId;
    const c = s.client();
    const u1 = await s.user({});
    const u2 = await s.user({});
    const room = await c.createRoom({ projectId: pid, name: "doomed", permissions: { [u1.userId]: ApiScope.userDefault() } });
    await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u2.userId, permissions: ApiScope.full() });
    const share: any = await c.createShare(pid, { room: "doomed" });
    const keep = await c.createRoom({ projectId: pid, name: "survivor" });
    await c.createRoomGrant({ projectId: pid, roomId: keep.id, userId: u1.userId, permissions: ApiScope.full() });
    // the other areas that exist: a mailbox (and its queue) and a scheduled task on the room
    await c.createMailbox({ projectId: pid, address: `doomed-${Date.now()}@mail.example.com`, room: "doomed", queue: "inbox", isPublic: false });
    const task = await s.http("POST", `/accounts/projects/${pid}/rooms/doomed/scheduled-tasks`, { json: { spec: pySpec({ name: "doomed-task" }) } });
    expect(task.status).toBeLessThan(300);
    const owned = ["room_grants", "shares", "mailboxes", "scheduled_tasks"] as const;
    for (const t of owned) expect(await count(t, room.id), t).toBeGreaterThan(0);
    expect(await count("room_grants", room.id)).toBe(2);
    expect(await count("shares", room.id)).toBe(1);

    // another area's rows, removed by its hook (here: a table of its own, created for the test)
    await s.ctx.store.db.schema.createTable("test_room_things").addColumn("room_id", "text").addColumn("v", "text").execute();
    await s.ctx.store.db
      .insertInto("test_room_things" as never)
      .values({ room_id: room.id, v: "x" } as never)
      .execute();
    let failHook = true;
    const seen: string[] = [];
    s.ctx.rooms.onDelete(async (tx, r) => {
      seen.push(r.name);
      await tx
        .deleteFrom("test_room_things" as never)
        .where("room_id" as never, "=", r.id as never)
        .execute();
      if (failHook) throw new Error("storage unavailable");
    });

    const failed = await s.http("DELETE", `/accounts/projects/${pid}/rooms/${room.id}`);
    expect(failed.status).toBe(500);
    expect((await c.getRoom(pid, "doomed")).id).toBe(room.id);
    expect(await count("room_grants", room.id)).toBe(2);
    expect(await count("shares", room.id)).toBe(1);
    const things = await s.ctx.store.db
      .selectFrom("test_room_things" as never)
      .selectAll()
      .execute();
    expect(things).toHaveLength(1);
    expect((await s.http("GET", `/accounts/projects/${pid}/rooms`)).json.total).toBe(2);

    for (const t of owned) expect(await count(t, room.id), t).toBeGreaterThan(0);

    failHook = false;
    await c.deleteRoom(pid, room.id);
    for (const t of owned) expect(await count(t, room.id), t).toBe(0);
    expect(seen).toEqual(["doomed", "doomed"]);
    expect(await count("room_grants", room.id)).toBe(0);
    expect(await count("shares", room.id)).toBe(0);
    expect(
      await s.ctx.store.db
        .selectFrom("test_room_things" as never)
        .selectAll()
        .execute(),
    ).toHaveLength(0);
    expect((await s.http("POST", `/shares/${share.id}/connect`, { token: null, json: {} })).status).toBe(404);
    expect((await s.http("GET", `/accounts/projects/${pid}/room-grants/${room.id}/${u1.userId}`)).status).toBe(404);
    // the other room and its grant are untouched; the total followed
    expect(await count("room_grants", keep.id)).toBe(1);
    expect((await s.http("GET", `/accounts/projects/${pid}/rooms`)).json.total).toBe(1);
    // a room of the same name starts empty
    const again = await c.createRoom({ projectId: pid, name: "doomed" });
    expect((await s.http("GET", `/accounts/projects/${pid}/room-grants/by-room/${again.id}`)).json).toEqual({ room_grants: [], total: 0 });
  });
});
