import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { createRoom, deleteRoom } from "./helpers/rooms.js";

describe("mailboxes REST (contract §6.5)", () => {
  let s: TestServer;
  let P: string;
  let room: { id: string; name: string };
  let room2: { id: string; name: string };
  let other: Awaited<ReturnType<TestServer["otherProject"]>>;
  let n = 0;
  const addr = (tag = "box") => `${tag}${++n}@mail.example.com`;

  beforeAll(async () => {
    s = await startServer();
    P = `/accounts/projects/${s.admin.projectId}`;
    room = await createRoom(s.ctx, s.admin.projectId, "inbox-room");
    room2 = await createRoom(s.ctx, s.admin.projectId, "second-room");
    other = await s.otherProject();
  });
  afterAll(() => s.close());

  describe("official TS client 0.39.9", () => {
    it("creates, lists, pages, updates and deletes mailboxes", async () => {
      const c = s.client();
      const a = addr("official");
      await c.createMailbox({ projectId: s.admin.projectId, address: a, room: room.name, queue: "email", isPublic: false });
      let list = await c.listMailboxes(s.admin.projectId, { filter: "official" });
      expect(list).toEqual([{ address: a, room: room.name, roomId: room.id, queue: "email" }]);
      await c.updateMailbox({ projectId: s.admin.projectId, address: a, room: room2.name, queue: "other-queue", isPublic: true });
      const page = await c.listMailboxesPage(s.admin.projectId, { filter: a, count: 10, offset: 0 });
      expect(page).toEqual({ mailboxes: [{ address: a, room: room2.name, roomId: room2.id, queue: "other-queue" }], total: 1 });
      const raw = await s.http("GET", `${P}/mailboxes/${a}`);
      expect(raw.json.mailbox.public).toBe(true);
      await c.deleteMailbox(s.admin.projectId, a);
      list = await c.listMailboxes(s.admin.projectId, { filter: "official" });
      expect(list).toEqual([]);
    });

    it("surfaces 409 on a duplicate and 404 on a missing mailbox", async () => {
      const c = s.client();
      const a = addr();
      await c.createMailbox({ projectId: s.admin.projectId, address: a, room: room.name, queue: "q", isPublic: false });
      await expect(c.createMailbox({ projectId: s.admin.projectId, address: a, room: room.name, queue: "q", isPublic: false })).rejects.toThrow(
        /Status code: 409/,
      );
      await expect(c.deleteMailbox(s.admin.projectId, "nobody@mail.example.com")).rejects.toThrow(/Status code: 404/);
    });
  });

  describe("Python client shapes (raw HTTP)", () => {
    it("create_mailbox with the Python body (annotations null), get_mailbox wrapped with every required key", async () => {
      const a = addr("py");
      const r = await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "email", address: a, public: false, annotations: null } });
      expect(r.status).toBe(201);
      expect(r.headers.get("content-type")).toMatch(/application\/json/);
      const g = await s.http("GET", `${P}/mailboxes/${a}`);
      expect(g.status).toBe(200);
      expect(g.json).toEqual({ mailbox: { address: a, room: room.name, room_id: room.id, queue: "email", public: false, annotations: {} } });
    });

    it("keeps annotations; update_mailbox with public/annotations null keeps them, with values replaces them", async () => {
      const a = addr("ann");
      await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q1", address: a, public: true, annotations: { team: "support" } } });
      let u = await s.http("PUT", `${P}/mailboxes/${a}`, { json: { room: room2.name, queue: "q2", public: null, annotations: null } });
      expect(u.status).toBe(200);
      expect(u.json.mailbox).toEqual({ address: a, room: room2.name, room_id: room2.id, queue: "q2", public: true, annotations: { team: "support" } });
      u = await s.http("PUT", `${P}/mailboxes/${a}`, { json: { room: room.name, queue: "q3", public: false, annotations: { x: "y" } } });
      expect(u.json.mailbox).toMatchObject({ room: room.name, queue: "q3", public: false, annotations: { x: "y" } });
      expect((await s.http("GET", `${P}/mailboxes/${a}`)).json.mailbox).toEqual(u.json.mailbox);
    });

    it("addresses are unique across the server and case-insensitive (409), and found in any case", async () => {
      const a = addr("Case");
      expect((await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q", address: a, public: false } })).status).toBe(201);
      const dup = await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q", address: a.toUpperCase(), public: false } });
      expect(dup.status).toBe(409);
      expect(dup.json.error).toEqual({ code: "conflict", message: expect.stringContaining("already in use") });
      // Another project cannot take it either.
      const oroom = await createRoom(s.ctx, other.projectId, "their-room");
      const cross = await s.http("POST", `/accounts/projects/${other.projectId}/mailboxes`, {
        token: other.apiKey,
        json: { room: oroom.name, queue: "q", address: a, public: false },
      });
      expect(cross.status).toBe(409);
      // Stored as given, looked up in any case.
      expect((await s.http("GET", `${P}/mailboxes/${a.toUpperCase()}`)).json.mailbox.address).toBe(a);
    });

    it("list_mailboxes and list_room_mailboxes page with count/offset/filter and return total", async () => {
      const tag = `pg${Date.now() % 100000}`;
      const mine = [];
      for (let i = 0; i < 5; i++) {
        const a = `${tag}-${i}@paging.example.com`;
        mine.push(a);
        await s.http("POST", `${P}/mailboxes`, { json: { room: i < 3 ? room.name : room2.name, queue: "q", address: a, public: false } });
      }
      const p1 = await s.http("GET", `${P}/mailboxes?count=2&offset=0&filter=${tag}`);
      expect(p1.json.total).toBe(5);
      expect(p1.json.mailboxes.map((m: { address: string }) => m.address)).toEqual(mine.slice(0, 2));
      const p3 = await s.http("GET", `${P}/mailboxes?count=2&offset=4&filter=${tag.toUpperCase()}`);
      expect(p3.json).toEqual({ total: 5, mailboxes: [expect.objectContaining({ address: mine[4] })] });
      const byRoom = await s.http("GET", `${P}/rooms/${room2.name}/mailboxes?count=100&offset=0&filter=${tag}`);
      expect(byRoom.json.total).toBe(2);
      expect(byRoom.json.mailboxes.map((m: { address: string }) => m.address)).toEqual(mine.slice(3));
      for (const m of byRoom.json.mailboxes) expect(Object.keys(m).sort()).toEqual(["address", "annotations", "public", "queue", "room", "room_id"]);
      // filter matches the room name too; no filter lists everything
      const roomFilter = await s.http("GET", `${P}/mailboxes?filter=SECOND-ROOM`);
      expect(roomFilter.json.mailboxes.every((m: { room: string }) => m.room === room2.name)).toBe(true);
      const all = await s.http("GET", `${P}/mailboxes`);
      expect(all.json.total).toBeGreaterThanOrEqual(5);
      expect(all.json.mailboxes.length).toBe(all.json.total);
      // an empty room lists nothing
      const empty = await createRoom(s.ctx, s.admin.projectId, "no-mailboxes");
      expect((await s.http("GET", `${P}/rooms/${empty.name}/mailboxes`)).json).toEqual({ mailboxes: [], total: 0 });
    });

    it("delete_mailbox answers JSON; the address becomes free again", async () => {
      const a = addr();
      await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q", address: a, public: false } });
      const d = await s.http("DELETE", `${P}/mailboxes/${a}`);
      expect(d.status).toBe(200);
      expect(d.json).toEqual({ ok: true });
      expect((await s.http("GET", `${P}/mailboxes/${a}`)).status).toBe(404);
      expect((await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q", address: a, public: false } })).status).toBe(201);
    });

    it("deleting the room deletes its mailboxes", async () => {
      const r = await createRoom(s.ctx, s.admin.projectId, "short-lived");
      const a = addr();
      await s.http("POST", `${P}/mailboxes`, { json: { room: r.name, queue: "q", address: a, public: false } });
      await deleteRoom(s.ctx, r.id);
      expect((await s.http("GET", `${P}/mailboxes/${a}`)).status).toBe(404);
    });
  });

  describe("bad input: 4xx naming the problem", () => {
    const cases: [string, Record<string, unknown>, number, RegExp][] = [
      ["missing address", { room: "inbox-room", queue: "q" }, 400, /address/],
      ["not an address", { room: "inbox-room", queue: "q", address: "no-at-sign" }, 400, /not an email address/],
      ["bad local part", { room: "inbox-room", queue: "q", address: "a/b@example.com" }, 400, /before @/],
      ["bad domain", { room: "inbox-room", queue: "q", address: "a@-bad-.com" }, 400, /not a valid domain/],
      [
        "address too long",
        { room: "inbox-room", queue: "q", address: `${"a".repeat(60)}@${"d".repeat(60)}.${"e".repeat(60)}.${"f".repeat(60)}.${"g".repeat(20)}.com` },
        400,
        /254/,
      ],
      ["missing room", { queue: "q", address: "x@example.com" }, 400, /room/],
      ["unknown room", { room: "no-such-room", queue: "q", address: "x@example.com" }, 400, /room "no-such-room" does not exist/],
      ["missing queue", { room: "inbox-room", address: "x@example.com" }, 400, /queue/],
      ["empty queue", { room: "inbox-room", queue: "", address: "x@example.com" }, 400, /queue/],
      ["queue with control characters", { room: "inbox-room", queue: "a\tb", address: "x@example.com" }, 400, /queue must not contain control characters/],
      ["public not a boolean", { room: "inbox-room", queue: "q", address: "x@example.com", public: "yes" }, 400, /public/],
      ["annotation not a string", { room: "inbox-room", queue: "q", address: "x@example.com", annotations: { a: 1 } }, 400, /annotations/],
    ];
    for (const [what, body, status, msg] of cases)
      it(`create: ${what}`, async () => {
        const r = await s.http("POST", `${P}/mailboxes`, { json: body });
        expect(r.status).toBe(status);
        expect(r.json.error.message).toMatch(msg);
      });

    it("update: unknown mailbox 404, bad room/queue 400", async () => {
      expect((await s.http("PUT", `${P}/mailboxes/nobody@example.com`, { json: { room: room.name, queue: "q" } })).status).toBe(404);
      const a = addr();
      await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q", address: a, public: false } });
      const r1 = await s.http("PUT", `${P}/mailboxes/${a}`, { json: { room: "ghost", queue: "q" } });
      expect(r1.status).toBe(400);
      expect(r1.json.error.code).toBe("room_not_found");
      const r2 = await s.http("PUT", `${P}/mailboxes/${a}`, { json: { room: room.name } });
      expect(r2.status).toBe(400);
      expect(r2.json.error.message).toMatch(/queue/);
    });

    it("lists: negative or non-numeric paging is a 400, an unknown room a 404, a malformed body never a 500", async () => {
      expect((await s.http("GET", `${P}/mailboxes?count=-1`)).status).toBe(400);
      expect((await s.http("GET", `${P}/mailboxes?offset=abc`)).status).toBe(400);
      const nr = await s.http("GET", `${P}/rooms/ghost-room/mailboxes`);
      expect(nr.status).toBe(404);
      expect(nr.json.error.message).toMatch(/room not found/);
      const bad = await s.http("POST", `${P}/mailboxes`, { body: "{not json", headers: { "content-type": "application/json" } });
      expect(bad.status).toBe(400);
      expect((await s.http("GET", `/accounts/projects/not-a-uuid/mailboxes`)).status).toBe(400);
    });
  });

  describe("authorization", () => {
    let a: string;
    beforeAll(async () => {
      a = addr("authz");
      await s.http("POST", `${P}/mailboxes`, { json: { room: room.name, queue: "q", address: a, public: false } });
    });
    const routes = (address: () => string) =>
      [
        ["POST", () => `/mailboxes`, () => ({ room: "inbox-room", queue: "q", address: `new-${n++}@authz.example.com`, public: false })],
        ["PUT", () => `/mailboxes/${address()}`, () => ({ room: "inbox-room", queue: "q", public: false })],
        ["GET", () => `/mailboxes/${address()}`, () => undefined],
        ["GET", () => `/mailboxes`, () => undefined],
        ["GET", () => `/rooms/inbox-room/mailboxes`, () => undefined],
        ["DELETE", () => `/mailboxes/${address()}`, () => undefined],
      ] as const;

    it("no token and a garbage token get 401 on every route", async () => {
      for (const [method, path, body] of routes(() => a)) {
        expect((await s.http(method, P + path(), { token: null, json: body() })).status, `${method} ${path()}`).toBe(401);
        expect((await s.http(method, P + path(), { token: "garbage", json: body() })).status, `${method} ${path()}`).toBe(401);
      }
    });

    it("another project's key and admin get 404 on every route (existence is not revealed)", async () => {
      for (const [method, path, body] of routes(() => a)) {
        for (const token of [other.apiKey, other.userToken])
          expect((await s.http(method, P + path(), { token, json: body() })).status, `${method} ${path()}`).toBe(404);
      }
      // Through their own project, our mailbox does not exist either.
      const theirs = `/accounts/projects/${other.projectId}`;
      for (const method of ["GET", "DELETE"]) expect((await s.http(method, `${theirs}/mailboxes/${a}`, { token: other.apiKey })).status).toBe(404);
      expect((await s.http("PUT", `${theirs}/mailboxes/${a}`, { token: other.apiKey, json: { room: "their-room", queue: "q" } })).status).toBe(404);
      // and it is still ours
      expect((await s.http("GET", `${P}/mailboxes/${a}`)).status).toBe(200);
    });

    it("a member gets 403; a developer and an admin user may manage mailboxes", async () => {
      const member = await s.user({});
      for (const [method, path, body] of routes(() => a)) {
        const r = await s.http(method, P + path(), { token: member.token, json: body() });
        expect(r.status, `${method} ${path()}`).toBe(403);
        expect(r.json.error.code).toBe("forbidden");
      }
      for (const flags of [{ is_developer: true }, { is_admin: true }]) {
        const u = await s.user(flags);
        const mine = addr("role");
        expect((await s.http("POST", `${P}/mailboxes`, { token: u.token, json: { room: room.name, queue: "q", address: mine, public: false } })).status).toBe(
          201,
        );
        expect((await s.http("GET", `${P}/mailboxes/${mine}`, { token: u.token })).status).toBe(200);
        expect((await s.http("GET", `${P}/mailboxes`, { token: u.token })).status).toBe(200);
        expect((await s.http("GET", `${P}/rooms/${room.name}/mailboxes`, { token: u.token })).status).toBe(200);
        expect((await s.http("PUT", `${P}/mailboxes/${mine}`, { token: u.token, json: { room: room.name, queue: "q2" } })).status).toBe(200);
        expect((await s.http("DELETE", `${P}/mailboxes/${mine}`, { token: u.token })).status).toBe(200);
      }
      // a user outside the project: 404
      const stranger = await s.user(null);
      expect((await s.http("GET", `${P}/mailboxes`, { token: stranger.token })).status).toBe(404);
    });
  });

  it("is in the OpenAPI document", async () => {
    const o = await s.http("GET", "/openapi.json", { token: null });
    expect(Object.keys(o.json.paths)).toEqual(
      expect.arrayContaining([
        "/accounts/projects/{project_id}/mailboxes",
        "/accounts/projects/{project_id}/mailboxes/{address}",
        "/accounts/projects/{project_id}/rooms/{room_name}/mailboxes",
      ]),
    );
  });
});
