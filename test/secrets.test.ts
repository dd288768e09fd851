import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PG_URL, startServer, type TestServer } from "./helpers/server.js";
import { createRoom, deleteRoom } from "./helpers/rooms.js";

/** Contract §5: project secrets (0.39.9 managed form, the typed helpers, the legacy `data` body) and room secrets. */
describe("secrets (contract §5)", () => {
  let s: TestServer;
  let P: string;
  let room: { id: string; name: string };
  const logLines: string[] = [];
  /** Every value this file stores, to look for afterwards in the database and the logs. */
  const planted: string[] = [];
  const plant = (tag: string) => {
    const v = `${tag}-${randomBytes(12).toString("hex")}`;
    planted.push(v);
    return v;
  };

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_LOG_LEVEL: "debug" }, logStream: { write: (l: string) => void logLines.push(l) } });
    P = `/accounts/projects/${s.admin.projectId}`;
    room = await createRoom(s.ctx, s.admin.projectId, "secret-room");
  });
  afterAll(() => s.close());

  describe("official TS client 0.39.9", () => {
    it("typed helpers round-trip docker and keys secrets (createSecret / listSecrets / updateSecret / deleteSecret)", async () => {
      const c = s.client();
      const pw = plant("docker-pw");
      await c.createSecret(s.admin.projectId, { name: "registry", type: "docker", server: "ghcr.io", username: "bot", password: pw } as any);
      const apiKey = plant("api-key");
      await c.createSecret(s.admin.projectId, { name: "llm", type: "keys", data: { OPENAI_API_KEY: apiKey, OTHER: "x" } } as any);
      let list = await c.listSecrets(s.admin.projectId);
      const docker = list.find((x: any) => x.name === "registry") as any;
      const keys = list.find((x: any) => x.name === "llm") as any;
      expect(docker).toMatchObject({ type: "docker", server: "ghcr.io", username: "bot", password: pw, email: "none@example.com" });
      expect(keys).toMatchObject({ type: "keys", data: { OPENAI_API_KEY: apiKey, OTHER: "x" } });
      const apiKey2 = plant("api-key2");
      await c.updateSecret(s.admin.projectId, { ...keys, data: { OPENAI_API_KEY: apiKey2 } });
      list = await c.listSecrets(s.admin.projectId);
      expect((list.find((x: any) => x.id === keys.id) as any).data).toEqual({ OPENAI_API_KEY: apiKey2 });
      await c.deleteSecret(s.admin.projectId, keys.id);
      await c.deleteSecret(s.admin.projectId, docker.id);
      expect((await c.listSecrets(s.admin.projectId)).filter((x: any) => x.id === keys.id || x.id === docker.id)).toEqual([]);
    });

    it("managed project secrets: create, list without values, get with data_base64, update, delete; 404 afterwards", async () => {
      const c = s.client();
      const value = plant("managed");
      const id = await c.createProjectSecret({ projectId: s.admin.projectId, name: "m", type: "opaque", data: new TextEncoder().encode(value) });
      const infos = await c.listProjectSecrets(s.admin.projectId);
      expect(infos.find((x: any) => x.id === id)).toEqual({ id, name: "m", type: "opaque", delegatedTo: null });
      const got = await c.getProjectSecret(s.admin.projectId, id);
      expect(new TextDecoder().decode(got.data)).toBe(value);
      const v2 = plant("managed2");
      await c.updateProjectSecret({ projectId: s.admin.projectId, secretId: id, name: "m2", type: "opaque", data: new TextEncoder().encode(v2) });
      const got2 = await c.getProjectSecret(s.admin.projectId, id);
      expect([got2.name, new TextDecoder().decode(got2.data)]).toEqual(["m2", v2]);
      await c.deleteProjectSecret(s.admin.projectId, id);
      await expect(c.getProjectSecret(s.admin.projectId, id)).rejects.toThrow(/Status code: 404/);
      await expect(c.deleteProjectSecret(s.admin.projectId, id)).rejects.toThrow(/Status code: 404/);
    });

    it("room secrets with secret_id, for_identity and delegated_to", async () => {
      const c = s.client();
      const base = { projectId: s.admin.projectId, roomName: room.name };
      const a = plant("room-a");
      const b = plant("room-b");
      const id = await c.createRoomSecret({
        ...base,
        data: new TextEncoder().encode(a),
        secretId: "oauth-token",
        name: "token",
        type: "oauth",
        forIdentity: "alice",
      });
      expect(id).toBe("oauth-token");
      // The same id for another identity, and delegated: separate secrets.
      await c.createRoomSecret({ ...base, data: new TextEncoder().encode(b), secretId: "oauth-token", forIdentity: "alice", delegatedTo: "agent" });
      await expect(c.createRoomSecret({ ...base, data: new TextEncoder().encode("x"), secretId: "oauth-token", forIdentity: "alice" })).rejects.toThrow(
        /Status code: 409/,
      );
      const mine = await c.listRoomSecrets({ ...base, forIdentity: "alice" });
      expect(mine).toEqual([
        { id: "oauth-token", name: "oauth-token", type: "opaque", delegatedTo: "agent" },
        { id: "oauth-token", name: "token", type: "oauth", delegatedTo: null },
      ]);
      expect(await c.listRoomSecrets({ ...base, forIdentity: "bob" })).toEqual([]);
      const got = await c.getRoomSecret({ ...base, secretId: "oauth-token", forIdentity: "alice" });
      expect(new TextDecoder().decode(got.data)).toBe(a);
      const del = await c.getRoomSecret({ ...base, secretId: "oauth-token", forIdentity: "alice", delegatedTo: "agent" });
      expect([del.delegatedTo, new TextDecoder().decode(del.data)]).toEqual(["agent", b]);
      await expect(c.getRoomSecret({ ...base, secretId: "oauth-token" })).rejects.toThrow(/Status code: 404/);
      const a2 = plant("room-a2");
      await c.updateRoomSecret({ ...base, secretId: "oauth-token", data: new TextEncoder().encode(a2), forIdentity: "alice" });
      const got2 = await c.getRoomSecret({ ...base, secretId: "oauth-token", forIdentity: "alice" });
      expect([got2.name, got2.type, new TextDecoder().decode(got2.data)]).toEqual(["token", "oauth", a2]);
      await c.deleteRoomSecret({ ...base, secretId: "oauth-token", forIdentity: "alice", delegatedTo: "agent" });
      expect((await c.listRoomSecrets({ ...base, forIdentity: "alice" })).length).toBe(1);
      await expect(c.listRoomSecrets({ projectId: s.admin.projectId, roomName: "no-such-room" })).rejects.toThrow(/Status code: 404/);
    });
  });

  describe("Python client shapes (raw HTTP)", () => {
    it("create answers {id} as JSON; get carries id, name, type, data_base64; list has no values; update/delete answer JSON", async () => {
      const value = plant("py");
      const r = await s.http("POST", `${P}/secrets`, { json: { name: "py", type: "keys", data_base64: Buffer.from(value).toString("base64") } });
      expect(r.status).toBe(201);
      expect(r.headers.get("content-type")).toMatch(/application\/json/);
      expect(Object.keys(r.json)).toEqual(["id"]);
      const g = await s.http("GET", `${P}/secrets/${r.json.id}`);
      expect(g.json).toEqual({ id: r.json.id, name: "py", type: "keys", data_base64: Buffer.from(value).toString("base64") });
      const l = await s.http("GET", `${P}/secrets`);
      expect(l.text).not.toContain(Buffer.from(value).toString("base64"));
      expect(l.json.secrets.find((x: any) => x.id === r.json.id)).toEqual({ id: r.json.id, name: "py", type: "keys" });
      const u = await s.http("PUT", `${P}/secrets/${r.json.id}`, { json: { name: "py", type: "keys", data_base64: "" } });
      expect([u.status, u.json]).toEqual([200, { ok: true }]);
      const d = await s.http("DELETE", `${P}/secrets/${r.json.id}`);
      expect([d.status, d.json]).toEqual([200, { ok: true }]);
    });

    it("the legacy (≤0.34) body: a `data` object, stored as its JSON text", async () => {
      const pw = plant("legacy");
      const r = await s.http("POST", `${P}/secrets`, { json: { name: "legacy", type: "docker", data: { server: "s", username: "u", password: pw } } });
      expect(r.status).toBe(201);
      const g = await s.http("GET", `${P}/secrets/${r.json.id}`);
      expect(JSON.parse(Buffer.from(g.json.data_base64, "base64").toString())).toEqual({ server: "s", username: "u", password: pw });
      const pw2 = plant("legacy2");
      await s.http("PUT", `${P}/secrets/${r.json.id}`, { json: { name: "legacy", type: "docker", data: { server: "s", username: "u", password: pw2 } } });
      const list = await s.client().listSecrets(s.admin.projectId);
      expect((list.find((x: any) => x.id === r.json.id) as any).password).toBe(pw2);
      await s.http("DELETE", `${P}/secrets/${r.json.id}`);
    });

    it("room secret create with every optional key null (Python sends only the set ones; nulls are absent anyway)", async () => {
      const v = plant("py-room");
      const r = await s.http("POST", `${P}/rooms/${room.name}/secrets`, {
        json: { data_base64: Buffer.from(v).toString("base64"), secret_id: null, name: null, type: null, delegated_to: null, for_identity: null },
      });
      expect(r.status).toBe(201);
      const g = await s.http("GET", `${P}/rooms/${room.name}/secrets/${r.json.id}`);
      expect(g.json).toEqual({ id: r.json.id, name: r.json.id, type: "opaque", data_base64: Buffer.from(v).toString("base64") });
      await s.http("DELETE", `${P}/rooms/${room.name}/secrets/${r.json.id}`);
    });

    it("bad input is a 400 naming the problem, never echoing the value", async () => {
      const cases: [unknown, RegExp][] = [
        [{ name: "x", type: "keys" }, /data_base64 is required/],
        [{ name: "x", type: "keys", data_base64: "not base64!!" }, /not valid base64/],
        [{ name: "", type: "keys", data_base64: "" }, /name must be a non-empty string/],
        [{ name: "x", data_base64: "" }, /type/],
        [{ name: "x", type: "keys", data: "a string" }, /data/],
        [{ name: "x", type: "keys", data_base64: Buffer.alloc(300 * 1024).toString("base64") }, /at most 262144 bytes/],
      ];
      for (const [body, msg] of cases) {
        const r = await s.http("POST", `${P}/secrets`, { json: body });
        expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(400);
        expect(r.json.error.message).toMatch(msg);
      }
      const secretish = plant("bad");
      const r = await s.http("POST", `${P}/secrets`, { json: { name: "x", type: "keys", data_base64: secretish } });
      expect(r.status).toBe(400);
      expect(r.text).not.toContain(secretish);
    });
  });

  describe("isolation and access", () => {
    it("another project's key sees nothing (404); a member gets 403; no token 401", async () => {
      const id = (await s.http("POST", `${P}/secrets`, { json: { name: "iso", type: "keys", data_base64: Buffer.from(plant("iso")).toString("base64") } })).json
        .id;
      const other = await s.otherProject();
      expect((await s.http("GET", `${P}/secrets/${id}`, { token: other.apiKey })).status).toBe(404);
      expect((await s.http("GET", `/accounts/projects/${other.projectId}/secrets/${id}`, { token: other.apiKey })).status).toBe(404);
      const member = await s.user({});
      expect((await s.http("GET", `${P}/secrets`, { token: member.token })).status).toBe(403);
      expect((await s.http("GET", `${P}/secrets`, { token: null })).status).toBe(401);
    });
  });

  describe("sealed at rest", () => {
    it("a sealed value copied to another row does not open there (AAD = row id)", async () => {
      const a = (await s.http("POST", `${P}/secrets`, { json: { name: "a", type: "keys", data_base64: Buffer.from(plant("aad-a")).toString("base64") } })).json
        .id;
      const b = (await s.http("POST", `${P}/secrets`, { json: { name: "b", type: "keys", data_base64: Buffer.from(plant("aad-b")).toString("base64") } })).json
        .id;
      const db = s.ctx.store.db;
      const ra = await db.selectFrom("secrets").selectAll().where("secret_id", "=", a).executeTakeFirstOrThrow();
      await db.updateTable("secrets").set({ value_sealed: ra.value_sealed }).where("secret_id", "=", b).execute();
      const g = await s.http("GET", `${P}/secrets/${b}`);
      expect(g.status).toBeGreaterThanOrEqual(400);
      expect(g.text).not.toContain("aad-a");
      await db.deleteFrom("secrets").where("secret_id", "=", b).execute();
    });

    it("no secret value (raw or base64) is in the database or in any log line", async () => {
      expect(planted.length).toBeGreaterThan(10);
      const needles = planted.flatMap((v) => [v, Buffer.from(v).toString("base64"), JSON.stringify(v).slice(1, -1)]);
      // The value of the docker/keys helpers is JSON: its base64 differs from the plain value's, so look for the raw value too (done).
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
        // The database file and its WAL: whatever SQLite wrote to disk.
        haystack = readdirSync(s.dataDir)
          .filter((f) => /\.(db|sqlite)(-wal|-journal)?$/.test(f) || f.endsWith("-wal"))
          .map((f) => readFileSync(join(s.dataDir, f)).toString("latin1"))
          .join("\n");
        expect(haystack.length).toBeGreaterThan(10_000);
      }
      const logs = logLines.join("\n");
      expect(logs.length).toBeGreaterThan(0);
      for (const n of needles) {
        expect(haystack.includes(n), `database holds ${n.slice(0, 12)}…`).toBe(false);
        expect(logs.includes(n), `a log line holds ${n.slice(0, 12)}…`).toBe(false);
      }
    });
  });

  it("deleting a room deletes its secrets in the same transaction", async () => {
    const r = await createRoom(s.ctx, s.admin.projectId, "doomed-secret-room");
    await s.http("POST", `${P}/rooms/${r.name}/secrets`, { json: { data_base64: Buffer.from(plant("doomed")).toString("base64"), secret_id: "gone" } });
    await deleteRoom(s.ctx, r.id);
    expect(await s.ctx.store.db.selectFrom("secrets").select("id").where("room_id", "=", r.id).execute()).toEqual([]);
    const again = await createRoom(s.ctx, s.admin.projectId, "doomed-secret-room");
    expect((await s.http("GET", `${P}/rooms/${again.name}/secrets/gone`)).status).toBe(404);
  });
});
