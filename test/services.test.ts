import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_URL, startServer, type TestServer } from "./helpers/server.js";
import { createRoom, deleteRoom } from "./helpers/rooms.js";

/** The create body of contract §4.2 (what the Python client's exclude_none dump sends). */
const spec = (name: string, extra: Record<string, unknown> = {}) => ({
  version: "v1",
  kind: "Service",
  metadata: { name },
  ports: [{ num: 8080, type: "http", endpoints: [{ path: "/agent", meshagent: { identity: "bot" } }] }],
  container: { image: "img", environment: [{ name: "A", value: "b" }], private: true },
  ...extra,
});

/** The same spec as the Python update sends it: `id` and every optional key, as null. */
const pythonDump = (id: string, name: string) => ({
  version: "v1",
  kind: "Service",
  id,
  metadata: { name, description: null, repo: null, icon: null, annotations: null },
  agents: null,
  ports: [
    {
      num: 8080,
      type: "http",
      endpoints: [{ path: "/agent", meshagent: { identity: "bot", api: null }, mcp: null, annotations: null }],
      liveness: null,
      published: null,
      public: null,
      annotations: null,
    },
  ],
  files: null,
  container: {
    image: "img2",
    command: null,
    working_dir: null,
    environment: [{ name: "A", value: "c", token: null, secret: null }],
    secrets: null,
    pull_secret: null,
    storage: null,
    on_demand: null,
    writable_root_fs: null,
    private: true,
  },
  external: null,
});

describe("services (contract §4.2, §7.4)", () => {
  let s: TestServer;
  let P: string;
  let room: { id: string; name: string };
  const events: { type: string; data: any }[] = [];

  beforeAll(async () => {
    s = await startServer();
    P = `/accounts/projects/${s.admin.projectId}`;
    room = await createRoom(s.ctx, s.admin.projectId, "svc-room");
    s.ctx.bus.on((e) => {
      if (e.type.startsWith("service.") || e.type.startsWith("secret.")) events.push({ type: e.type, data: e.data });
    });
  });
  afterAll(() => s.close());

  describe("official TS client 0.39.9", () => {
    it("project services: create (id), get, list, update, delete", async () => {
      const c = s.client();
      const id = await c.createService(s.admin.projectId, spec("ts-svc") as any);
      expect(typeof id).toBe("string");
      const got = (await c.getService(s.admin.projectId, id)) as any;
      expect(got).toEqual({ ...spec("ts-svc"), id });
      expect(((await c.listServices(s.admin.projectId)) as any[]).map((x) => x.id)).toContain(id);
      await c.updateService(s.admin.projectId, id, { ...spec("ts-svc", { container: { image: "img3", private: false } }), id } as any);
      expect(((await c.getService(s.admin.projectId, id)) as any).container).toEqual({ image: "img3", private: false });
      await c.deleteService(s.admin.projectId, id);
      await expect(c.getService(s.admin.projectId, id)).rejects.toThrow(/Status code: 404/);
    });

    it("room services: create (id), get, list, update, delete; a missing room is 404", async () => {
      const c = s.client();
      const id = await c.createRoomService(s.admin.projectId, room.name, spec("room-svc") as any);
      expect(await c.getRoomService(s.admin.projectId, room.name, id)).toEqual({ ...spec("room-svc"), id });
      expect(((await c.listRoomServices(s.admin.projectId, room.name)) as any[]).map((x) => x.metadata.name)).toEqual(["room-svc"]);
      // Room and project scopes are separate: the project list does not show it, and the same name is free there.
      expect(((await c.listServices(s.admin.projectId)) as any[]).some((x) => x.id === id)).toBe(false);
      await c.updateRoomService(s.admin.projectId, room.name, id, { ...spec("room-svc2"), id } as any);
      expect(((await c.getRoomService(s.admin.projectId, room.name, id)) as any).metadata.name).toBe("room-svc2");
      await c.deleteRoomService(s.admin.projectId, room.name, id);
      expect(await c.listRoomServices(s.admin.projectId, room.name)).toEqual([]);
      await expect(c.createRoomService(s.admin.projectId, "no-such-room", spec("x") as any)).rejects.toThrow(/Status code: 404/);
      await expect(c.getRoomService(s.admin.projectId, room.name, id)).rejects.toThrow(/Status code: 404/);
    });

    it("a duplicate metadata.name in the same scope is 409 (the CLI's 'Service name already in use')", async () => {
      const c = s.client();
      const id = await c.createService(s.admin.projectId, spec("dupe") as any);
      await expect(c.createService(s.admin.projectId, spec("dupe") as any)).rejects.toThrow(/Status code: 409/);
      const other = await c.createService(s.admin.projectId, spec("dupe-2") as any);
      await expect(c.updateService(s.admin.projectId, other, { ...spec("dupe"), id: other } as any)).rejects.toThrow(/Status code: 409/);
      // The same name in a room is fine.
      const inRoom = await c.createRoomService(s.admin.projectId, room.name, spec("dupe") as any);
      await c.deleteRoomService(s.admin.projectId, room.name, inRoom);
      await c.deleteService(s.admin.projectId, id);
      await c.deleteService(s.admin.projectId, other);
    });
  });

  describe("Python client shapes (raw HTTP)", () => {
    it("create answers the full ServiceSpec with the server's id (201, JSON); get is the spec exactly as sent", async () => {
      const r = await s.http("POST", `${P}/services`, { json: spec("py-create") });
      expect(r.status).toBe(201);
      expect(r.headers.get("content-type")).toMatch(/application\/json/);
      expect(r.json).toEqual({ ...spec("py-create"), id: r.json.id });
      const g = await s.http("GET", `${P}/services/${r.json.id}`);
      expect(g.json).toEqual({ ...spec("py-create"), id: r.json.id });
      const l = await s.http("GET", `${P}/services`);
      expect(Object.keys(l.json)).toEqual(["services"]);
      await s.http("DELETE", `${P}/services/${r.json.id}`);
    });

    it("update with the full dump (nulls, id in the body) stores it with the nulls treated as absent; a foreign body id is 400", async () => {
      for (const base of [`${P}/services`, `${P}/rooms/${room.name}/services`]) {
        const id = (await s.http("POST", base, { json: spec("py-up") })).json.id;
        const u = await s.http("PUT", `${base}/${id}`, { json: pythonDump(id, "py-up") });
        expect(u.status, u.text).toBe(200);
        expect(u.json.id).toBe(id);
        const g = await s.http("GET", `${base}/${id}`);
        expect(g.json).toEqual({
          version: "v1",
          kind: "Service",
          id,
          metadata: { name: "py-up" },
          ports: [{ num: 8080, type: "http", endpoints: [{ path: "/agent", meshagent: { identity: "bot" } }] }],
          container: { image: "img2", environment: [{ name: "A", value: "c" }], private: true },
        });
        const bad = await s.http("PUT", `${base}/${id}`, { json: pythonDump("someone-else", "py-up") });
        expect(bad.status).toBe(400);
        expect(bad.json.error.message).toMatch(/does not match/);
        const nullId = await s.http("PUT", `${base}/${id}`, { json: { ...pythonDump(id, "py-up"), id: null } });
        expect(nullId.status).toBe(200);
        await s.http("DELETE", `${base}/${id}`);
        expect((await s.http("PUT", `${base}/${id}`, { json: pythonDump(id, "py-up") })).status).toBe(404);
      }
    });

    it("strict models: unknown keys at any depth, version, kind, port 8078 are 400 naming the path; ports [] is fine", async () => {
      const cases: [unknown, RegExp][] = [
        [{ ...spec("x"), extra: 1 }, /extra/],
        [spec("x", { metadata: { name: "x", created_at: "now" } }), /metadata\.created_at/],
        [spec("x", { container: { image: "i", environment: [{ name: "A", valu: "b" }] } }), /environment\[0\]\.valu/],
        [spec("x", { ports: [{ num: 8080, endpoints: [{ path: "/", mcp: { label: "l", oauth: { client_id: "c", foo: 1 } } }] }] }), /oauth\.foo/],
        [spec("x", { version: "v2" }), /version/],
        [spec("x", { kind: "ServiceTemplate" }), /kind/],
        [spec("x", { ports: [{ num: 8078, endpoints: [] }] }), /8078/],
        [spec("x", { ports: [{ num: 0, endpoints: [] }] }), /num/],
        [{ version: "v1", kind: "Service" }, /metadata/],
      ];
      for (const [body, msg] of cases) {
        const r = await s.http("POST", `${P}/services`, { json: body });
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.json.error.message).toMatch(msg);
      }
      const ok = await s.http("POST", `${P}/services`, {
        json: { version: "v1", kind: "Service", metadata: { name: "no-ports" }, ports: [], external: { url: "https://x" } },
      });
      expect(ok.status, ok.text).toBe(201);
      expect(ok.json.ports).toEqual([]);
      await s.http("DELETE", `${P}/services/${ok.json.id}`);
    });
  });

  describe("templates over HTTP", () => {
    const template = [
      "version: v1",
      "kind: ServiceTemplate",
      "metadata:",
      "  name: {{ name }}",
      "variables:",
      "  - name: name",
      "  - name: size",
      "    enum: [small, large]",
      "  - name: token",
      "    obscure: true",
      "container:",
      "  image: img:{{ size }}",
      "  environment:",
      "    - name: TOKEN",
      '      value: "{{ token }}"',
      "",
    ].join("\n");
    const values = { name: "from-tpl", size: "small", token: "tok-s3cret-value" };

    it("render_template answers the ServiceTemplateSpec with the two annotations", async () => {
      const r = await s.http("POST", "/templates/render", { json: { template, values } });
      expect(r.status, r.text).toBe(200);
      expect(r.json.kind).toBe("ServiceTemplate");
      expect(r.json.container.image).toBe("img:small");
      expect(r.json.metadata.annotations["meshagent.service.template.yaml"]).toBe(template);
      expect(r.json.metadata.annotations["meshagent.service.template.values"]).toBe('{"name": "from-tpl", "size": "small", "token": "tok-s3cret-value"}');
    });

    it("create and update from a template (project and room) answer the ServiceSpec with the id", async () => {
      for (const base of [`${P}/services`, `${P}/rooms/${room.name}/services`]) {
        const c = await s.http("POST", base, { json: { template, values } });
        expect(c.status, c.text).toBe(201);
        expect(c.json).toMatchObject({
          version: "v1",
          kind: "Service",
          id: expect.any(String),
          metadata: { name: "from-tpl" },
          container: { image: "img:small" },
        });
        const u = await s.http("PUT", `${base}/${c.json.id}`, { json: { template, values: { ...values, size: "large" } } });
        expect(u.status, u.text).toBe(200);
        expect(u.json.container.image).toBe("img:large");
        expect((await s.http("GET", `${base}/${c.json.id}`)).json.container.image).toBe("img:large");
        await s.http("DELETE", `${base}/${c.json.id}`);
      }
    });

    it("template errors are 400s naming the variable or the line, never echoing an obscure value", async () => {
      const cases: [unknown, RegExp][] = [
        [{ template, values: { size: "small", token: "t" } }, /"name"/],
        [{ template, values: { ...values, size: "medium" } }, /size/],
        [{ template: "version: v1\nkind: ServiceTemplate\nmetadata:\n  name: [unclosed\n", values: {} }, /line/],
        [{ template: "{% if %}", values: {} }, /line/],
        [{ template, values: { ...values, name: 5 } }, /values/],
        [{ template, values, extra: 1 }, /extra/],
        [{ template: template.replace("kind: ServiceTemplate", "kind: ServiceTemplate\nbogus: 1"), values }, /bogus/],
      ];
      for (const [body, msg] of cases) {
        for (const path of ["/templates/render", `${P}/services`]) {
          const r = await s.http("POST", path, { json: body });
          expect(r.status, `${path} ${JSON.stringify(body).slice(0, 60)} ${r.text}`).toBe(400);
          expect(r.json.error.message).toMatch(msg);
          expect(r.text).not.toContain("tok-s3cret-value");
        }
      }
      // An obscure value that breaks the YAML: the error names the line but not the value.
      const broken = await s.http("POST", "/templates/render", { json: { template, values: { ...values, token: 'tok-s3cret-value"\n  - x: [' } } });
      expect(broken.status).toBe(400);
      expect(broken.text).not.toContain("tok-s3cret-value");
    });
  });

  describe("secret references", () => {
    it("container.secrets, pull_secret and environment[].secret must exist in scope; a secret in use cannot be deleted (409 naming the service)", async () => {
      const mk = async (base: string, name: string) =>
        (
          await s.http("POST", base, {
            json: { name, type: "keys", data_base64: Buffer.from("v").toString("base64"), ...(base.includes("/rooms/") ? { secret_id: name } : {}) },
          })
        ).json.id;
      const projSecret = await mk(`${P}/secrets`, "proj-secret");
      const pull = await mk(`${P}/secrets`, "pull");
      const missing = await s.http("POST", `${P}/services`, {
        json: spec("refs", { container: { image: "i", secrets: [projSecret, "nope"] } }),
      });
      expect(missing.status).toBe(400);
      expect(missing.json.error.message).toMatch(/container\.secrets\[1\].*"nope"/);
      const envMissing = await s.http("POST", `${P}/services`, {
        json: spec("refs", { container: { image: "i", environment: [{ name: "K", secret: { identity: "bot", id: "ghost" } }] } }),
      });
      expect(envMissing.json.error.message).toMatch(/environment\[0\]\.secret\.id.*"ghost"/);
      const svc = await s.http("POST", `${P}/services`, {
        json: spec("refs", { container: { image: "i", secrets: [projSecret], pull_secret: pull } }),
      });
      expect(svc.status, svc.text).toBe(201);
      const del = await s.http("DELETE", `${P}/secrets/${pull}`);
      expect(del.status).toBe(409);
      expect(del.json.error.message).toMatch(/"refs"/);
      // A room service may name its room's secrets and the project's.
      const roomSecret = await mk(`${P}/rooms/${room.name}/secrets`, "room-only");
      const rs = await s.http("POST", `${P}/rooms/${room.name}/services`, {
        json: spec("room-refs", { container: { image: "i", secrets: [roomSecret, projSecret] } }),
      });
      expect(rs.status, rs.text).toBe(201);
      // ...but a project service may not name a room secret.
      const ps = await s.http("POST", `${P}/services`, { json: spec("proj-refs", { container: { image: "i", secrets: [roomSecret] } }) });
      expect(ps.status).toBe(400);
      expect((await s.http("DELETE", `${P}/rooms/${room.name}/secrets/${roomSecret}`)).status).toBe(409);
      // Once the service stops naming it (update), the secret can go.
      await s.http("PUT", `${P}/services/${svc.json.id}`, { json: spec("refs", { container: { image: "i", secrets: [projSecret] } }) });
      expect((await s.http("DELETE", `${P}/secrets/${pull}`)).status).toBe(200);
      await s.http("DELETE", `${P}/rooms/${room.name}/services/${rs.json.id}`);
      expect((await s.http("DELETE", `${P}/rooms/${room.name}/secrets/${roomSecret}`)).status).toBe(200);
      await s.http("DELETE", `${P}/services/${svc.json.id}`);
      expect((await s.http("DELETE", `${P}/secrets/${projSecret}`)).status).toBe(200);
    });
  });

  it("deleting a room deletes its services and secrets in the same transaction; a room of the same name starts empty", async () => {
    const r = await createRoom(s.ctx, s.admin.projectId, "doomed-svc-room");
    await s.http("POST", `${P}/rooms/${r.name}/secrets`, { json: { data_base64: "dg==", secret_id: "s1" } });
    const created = await s.http("POST", `${P}/rooms/${r.name}/services`, { json: spec("doomed", { container: { image: "i", secrets: ["s1"] } }) });
    expect(created.status, created.text).toBe(201);
    await deleteRoom(s.ctx, r.id);
    const db = s.ctx.store.db;
    expect(await db.selectFrom("services").select("id").where("room_id", "=", r.id).execute()).toEqual([]);
    expect(await db.selectFrom("service_secret_refs").select("secret_id").where("service_id", "=", created.json.id).execute()).toEqual([]);
    await createRoom(s.ctx, s.admin.projectId, "doomed-svc-room");
    expect((await s.http("GET", `${P}/rooms/${r.name}/services`)).json).toEqual({ services: [] });
  });

  it("publishes service.created|updated|deleted (no secret values in secret events)", async () => {
    events.length = 0;
    const id = (await s.http("POST", `${P}/rooms/${room.name}/services`, { json: spec("evt") })).json.id;
    await s.http("PUT", `${P}/rooms/${room.name}/services/${id}`, { json: spec("evt2") });
    await s.http("DELETE", `${P}/rooms/${room.name}/services/${id}`);
    const sec = (await s.http("POST", `${P}/secrets`, { json: { name: "ev", type: "keys", data_base64: Buffer.from("topsecret-evt").toString("base64") } }))
      .json.id;
    await s.http("DELETE", `${P}/secrets/${sec}`);
    expect(events).toEqual([
      { type: "service.created", data: { id, name: "evt", room_name: room.name } },
      { type: "service.updated", data: { id, name: "evt2", room_name: room.name } },
      { type: "service.deleted", data: { id, name: "evt2", room_name: room.name } },
      { type: "secret.created", data: { id: sec, name: "ev", type: "keys" } },
      { type: "secret.deleted", data: { id: sec, name: "ev", type: "keys" } },
    ]);
    const catalog = await s.http("GET", "/webhooks/events");
    if (catalog.status === 200) expect(JSON.stringify(catalog.json)).toMatch(/service\.created/);
  });

  it("reads are cached per scope and every change is seen at once (in this process) and soon in another (PostgreSQL)", async () => {
    const id = (await s.http("POST", `${P}/services`, { json: spec("cached") })).json.id;
    expect((await s.http("GET", `${P}/services/${id}`)).json.metadata.name).toBe("cached");
    await s.http("PUT", `${P}/services/${id}`, { json: spec("cached-2") });
    expect((await s.http("GET", `${P}/services/${id}`)).json.metadata.name).toBe("cached-2");
    expect((await s.http("GET", `${P}/services`)).json.services.some((x: any) => x.metadata.name === "cached-2")).toBe(true);
    if (PG_URL) {
      const b = await startServer({ databaseUrl: s.databaseUrl, keepDatabase: true });
      try {
        const read = async () => (await fetch(`${b.url}${P}/services/${id}`, { headers: { authorization: `Bearer ${s.admin.apiKey}` } })).json();
        expect(((await read()) as any).metadata.name).toBe("cached-2");
        await s.http("PUT", `${P}/services/${id}`, { json: spec("cached-3") });
        let name = "";
        for (let i = 0; i < 40 && name !== "cached-3"; i++) {
          name = ((await read()) as any).metadata.name;
          if (name !== "cached-3") await new Promise((r) => setTimeout(r, 50));
        }
        expect(name).toBe("cached-3");
      } finally {
        await b.close();
      }
    }
    await s.http("DELETE", `${P}/services/${id}`);
    expect((await s.http("GET", `${P}/services/${id}`)).status).toBe(404);
  });

  it("another project's key sees nothing (404); a member gets 403", async () => {
    const id = (await s.http("POST", `${P}/services`, { json: spec("iso") })).json.id;
    const other = await s.otherProject();
    expect((await s.http("GET", `${P}/services/${id}`, { token: other.apiKey })).status).toBe(404);
    expect((await s.http("GET", `/accounts/projects/${other.projectId}/services/${id}`, { token: other.apiKey })).status).toBe(404);
    const member = await s.user({});
    expect((await s.http("GET", `${P}/services`, { token: member.token })).status).toBe(403);
    await s.http("DELETE", `${P}/services/${id}`);
  });
});
