import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { freshDatabase, startServer, type TestDatabase, type TestServer } from "./helpers/server.js";
import { spawnServer, TSX_LOADER, ROOT, type ServerProcess } from "./helpers/process.js";
import { ManualClock } from "../src/core/clock.js";
import { sha256Hex } from "../src/core/crypto.js";

const HOUR = 3_600_000;
const replayed = (r: { headers: Headers }) => r.headers.get("idempotent-replayed");

describe("Idempotency-Key", () => {
  let s: TestServer;
  let P: string;
  const clock = new ManualClock();
  beforeAll(async () => {
    s = await startServer({ clock, env: { MESHAGENT_IDEMPOTENCY_WAIT: "1" } });
    P = `/accounts/projects/${s.admin.projectId}`;
  });
  afterAll(() => s.close());

  const post = (path: string, json: unknown, key?: string, token?: string | null) =>
    s.http("POST", path, { json, token, headers: key === undefined ? {} : { "idempotency-key": key } });
  const roomCount = async (name: string) => {
    const r = await s.http("GET", `${P}/rooms?filter=${encodeURIComponent(name)}`);
    return (r.json.rooms as { name: string }[]).filter((x) => x.name === name).length;
  };
  const rows = async () => (await s.ctx.store.db.selectFrom("idempotency_keys").selectAll().execute()).length;

  it("create_room twice with the same key: one room, the same status, body and Content-Type, and Idempotent-Replayed: true", async () => {
    const key = randomUUID();
    const a = await post(`${P}/rooms`, { name: "idem-a", metadata: { n: 1 } }, key);
    expect(a.status).toBe(201);
    expect(replayed(a)).toBe(null);
    const b = await post(`${P}/rooms`, { name: "idem-a", metadata: { n: 1 } }, key);
    expect(b.status).toBe(201);
    expect(b.text).toBe(a.text);
    expect(b.headers.get("content-type")).toBe(a.headers.get("content-type"));
    expect(replayed(b)).toBe("true");
    expect(await roomCount("idem-a")).toBe(1);
    // Without the key the same call runs, and finds the room taken: the replay above did not run it.
    expect((await post(`${P}/rooms`, { name: "idem-a", metadata: { n: 1 } })).status).toBe(409);
  });

  it("the same key with another body, other body bytes or another path is 409 idempotency_key_reused", async () => {
    const key = randomUUID();
    expect((await post(`${P}/rooms`, { name: "idem-b" }, key)).status).toBe(201);
    const other = await post(`${P}/rooms`, { name: "idem-b2" }, key);
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("idempotency_key_reused");
    expect(other.json.error.message).toMatch(/already used for a different request/);
    // The same JSON written with other bytes is another request too (the fingerprint hashes the body bytes).
    const spaced = await s.http("POST", `${P}/rooms`, {
      body: '{ "name": "idem-b" }',
      headers: { "content-type": "application/json", "idempotency-key": key },
    });
    expect(spaced.status).toBe(409);
    expect(spaced.json.error.code).toBe("idempotency_key_reused");
    const other2 = await s.otherProject();
    const elsewhere = await post(`/accounts/projects/${other2.projectId}/rooms`, { name: "idem-b" }, key, other2.userToken);
    expect(elsewhere.status).toBe(201); // another caller: another scope
    expect(await roomCount("idem-b2")).toBe(0);
    // The first response is still there.
    const again = await post(`${P}/rooms`, { name: "idem-b" }, key);
    expect([again.status, replayed(again)]).toEqual([201, "true"]);
  });

  it("a key of 1 to 255 characters is accepted; an empty one or one over 255 is a 400 in the error shape", async () => {
    const long = await post(`${P}/rooms`, { name: "idem-c" }, "k".repeat(256));
    expect(long.status).toBe(400);
    expect(long.json).toEqual({ error: { code: expect.any(String), message: expect.stringMatching(/idempotency-key/i) } });
    const empty = await post(`${P}/rooms`, { name: "idem-c" }, "");
    expect(empty.status).toBe(400);
    expect(empty.json.error.message).toMatch(/idempotency-key/i);
    expect(await roomCount("idem-c")).toBe(0);
    const max = "k".repeat(255);
    expect((await post(`${P}/rooms`, { name: "idem-c" }, max)).status).toBe(201);
    expect(replayed(await post(`${P}/rooms`, { name: "idem-c" }, max))).toBe("true");
  });

  it("concurrent identical requests: one runs, every one gets its response", async () => {
    const key = randomUUID();
    const all = await Promise.all(Array.from({ length: 8 }, () => post(`${P}/rooms`, { name: "idem-d" }, key)));
    expect(new Set(all.map((r) => r.status))).toEqual(new Set([201]));
    expect(new Set(all.map((r) => r.text)).size).toBe(1);
    expect(all.filter((r) => replayed(r) === null)).toHaveLength(1);
    expect(await roomCount("idem-d")).toBe(1);
  });

  describe("a request that finds the key claimed by one still running", () => {
    // The claim another request (or process) holds, taken through the same service the hook uses.
    const holdClaim = async (name: string, key: string) => {
      const principal = await s.ctx.auth.resolve(s.admin.apiKey);
      if (principal?.kind !== "api_key") throw new Error("expected an API key");
      const body = JSON.stringify({ name });
      const scope = `api_key:${principal.keyId} POST /accounts/projects/:project_id/rooms`;
      const fingerprint = sha256Hex(`POST ${P}/rooms\n${sha256Hex(body)}`);
      const r = await s.ctx.idempotency.begin(scope, key, fingerprint);
      if (r.kind !== "run") throw new Error("expected to claim the key");
      return r.claim;
    };

    it("waits for it and gets its response", async () => {
      const key = randomUUID();
      const claim = await holdClaim("idem-e", key);
      const waiting = post(`${P}/rooms`, { name: "idem-e" }, key);
      await new Promise((r) => setTimeout(r, 300));
      const body = Buffer.from(JSON.stringify({ id: "from-the-first", name: "idem-e", metadata: {}, annotations: {} }));
      await claim.complete({ status: 201, contentType: "application/json; charset=utf-8", body });
      const r = await waiting;
      expect([r.status, r.text, replayed(r)]).toEqual([201, body.toString(), "true"]);
      expect(await roomCount("idem-e")).toBe(0); // it did not run itself
    });

    it("runs itself when the first releases the key (a 5xx is not stored)", async () => {
      const key = randomUUID();
      const claim = await holdClaim("idem-f", key);
      const waiting = post(`${P}/rooms`, { name: "idem-f" }, key);
      await new Promise((r) => setTimeout(r, 300));
      await claim.release();
      const r = await waiting;
      expect([r.status, replayed(r)]).toEqual([201, null]);
      expect(await roomCount("idem-f")).toBe(1);
    });

    it("gets 409 idempotency_key_in_use after MESHAGENT_IDEMPOTENCY_WAIT", async () => {
      const key = randomUUID();
      const claim = await holdClaim("idem-g", key);
      const t0 = Date.now();
      const r = await post(`${P}/rooms`, { name: "idem-g" }, key);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(r.status).toBe(409);
      expect(r.json.error.code).toBe("idempotency_key_in_use");
      expect(r.json.error.message).toMatch(/still in progress/);
      await claim.release();
      expect((await post(`${P}/rooms`, { name: "idem-g" }, key)).status).toBe(201);
    });

    it("takes it over when its owner stopped renewing it (a dead process)", async () => {
      const key = randomUUID();
      const claim = await holdClaim("idem-h", key);
      clock.advance(20_000); // past the 15 s lease, without a heartbeat
      const r = await post(`${P}/rooms`, { name: "idem-h" }, key);
      expect([r.status, replayed(r)]).toEqual([201, null]);
      // The old owner's late answer no longer counts.
      await claim.complete({ status: 500, contentType: null, body: Buffer.alloc(0) });
      const again = await post(`${P}/rooms`, { name: "idem-h" }, key);
      expect([again.status, again.text, replayed(again)]).toEqual([201, r.text, "true"]);
    });
  });

  it("keys are kept 24 h: replayed before, run again after (and swept)", async () => {
    const key = randomUUID();
    const a = await post(`${P}/rooms`, { name: "idem-i", if_not_exists: true }, key);
    expect(a.status).toBe(201);
    clock.advance(23 * HOUR);
    expect(replayed(await post(`${P}/rooms`, { name: "idem-i", if_not_exists: true }, key))).toBe("true");
    clock.advance(HOUR);
    const after = await post(`${P}/rooms`, { name: "idem-i", if_not_exists: true }, key);
    expect([after.status, replayed(after)]).toEqual([200, null]); // ran again: the room exists now
    const before = await rows();
    clock.advance(24 * HOUR);
    expect(await s.ctx.idempotency.sweep()).toBeGreaterThanOrEqual(1);
    expect(await rows()).toBeLessThan(before);
    expect(await rows()).toBe(0);
  });

  it("each API key, user and (on public routes) IP has its own keys", async () => {
    const key = randomUUID();
    expect((await post(`${P}/rooms`, { name: "idem-j1" }, key)).status).toBe(201);
    const second = await post(`${P}/api-keys`, { name: "second" });
    expect(second.status).toBe(201);
    // With the same key, another API key's different request runs (in one scope it would be idempotency_key_reused).
    const other = await post(`${P}/rooms`, { name: "idem-j2" }, key, second.json.value);
    expect([other.status, replayed(other)]).toEqual([201, null]);
    const dev = await s.user({ is_developer: true });
    const mine = await post(`${P}/rooms`, { name: "idem-j3" }, key, dev.token);
    expect([mine.status, replayed(mine)]).toEqual([201, null]);
    expect(await roomCount("idem-j1")).toBe(1);
    expect(await roomCount("idem-j2")).toBe(1);
    expect(await roomCount("idem-j3")).toBe(1);
    // The same key on another route is another key too.
    const hook = await post(`${P}/api-keys`, { name: "third" }, key);
    expect([hook.status, replayed(hook)]).toEqual([201, null]);
    // A public route: scoped to the caller's IP; a bearer is ignored there, as the route ignores it.
    const bad = await post("/api/participant-token/validate", { token: "x.y.z" }, key, null);
    expect(bad.status).toBe(401);
    const badAgain = await post("/api/participant-token/validate", { token: "x.y.z" }, key, s.admin.apiKey);
    expect([badAgain.status, badAgain.text, replayed(badAgain)]).toEqual([401, bad.text, null]); // 401 is not stored
  });

  it("responses that failed before the route ran (validation) or were refused (401, 403) are not stored", async () => {
    const key = randomUUID();
    const invalid = await post(`${P}/rooms`, { metadata: {} }, key);
    expect(invalid.status).toBe(400);
    const ok = await post(`${P}/rooms`, { name: "idem-k" }, key);
    expect([ok.status, replayed(ok)]).toEqual([201, null]);
    // A member without can_create_rooms is refused (403); once allowed, the same key runs.
    const m = await s.user({ can_create_rooms: false });
    const k2 = randomUUID();
    expect((await post(`${P}/rooms`, { name: "idem-k2" }, k2, m.token)).status).toBe(403);
    await s.ctx.projects.updateUser(s.admin.projectId, m.userId, { can_create_rooms: true });
    const allowed = await post(`${P}/rooms`, { name: "idem-k2" }, k2, m.token);
    expect([allowed.status, replayed(allowed)]).toEqual([201, null]);
    // A 4xx the route itself answered is stored: a duplicate name stays a 409 for that key.
    const k3 = randomUUID();
    const dup = await post(`${P}/rooms`, { name: "idem-k" }, k3);
    expect(dup.status).toBe(409);
    const dupAgain = await post(`${P}/rooms`, { name: "idem-k" }, k3);
    expect([dupAgain.status, dupAgain.text, replayed(dupAgain)]).toEqual([409, dup.text, "true"]);
  });

  it("a stored response is sealed at rest: a new API key's value is replayed, but not in the database", async () => {
    const key = randomUUID();
    const a = await post(`${P}/api-keys`, { name: "sealed" }, key);
    expect(a.status).toBe(201);
    const b = await post(`${P}/api-keys`, { name: "sealed" }, key);
    expect([b.text, replayed(b)]).toEqual([a.text, "true"]);
    const stored = await s.ctx.store.db.selectFrom("idempotency_keys").selectAll().execute();
    const dump = JSON.stringify(stored);
    expect(dump).not.toContain(a.json.value);
    expect(dump).not.toContain(key);
  });

  it("a body refused while it is read (over MESHAGENT_BODY_LIMIT) is a 413 and does not take the key", async () => {
    const key = randomUUID();
    const big = await post(`${P}/rooms`, { name: "idem-big", metadata: { pad: "x".repeat(s.config.bodyLimitBytes) } }, key);
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("payload_too_large");
    const ok = await post(`${P}/rooms`, { name: "idem-big" }, key);
    expect([ok.status, replayed(ok)]).toEqual([201, null]);
    expect((await s.http("GET", "/healthz")).status).toBe(200);
  });

  it("storage upload streams its body and ignores the key", async () => {
    const key = randomUUID();
    const up = (body: string) =>
      s.http("POST", `/projects/${s.admin.projectId}/storage/upload?path=idem.txt`, {
        body,
        headers: { "content-type": "application/octet-stream", "idempotency-key": key },
      });
    const a = await up("one");
    const b = await up("two, longer");
    expect([a.status, b.status, replayed(b)]).toEqual([200, 200, null]);
    expect(b.json.size).toBe(11);
  });

  it("the official client (no key) is unaffected and leaves no key behind", async () => {
    const before = await rows();
    const c = s.client();
    const r = await c.createRoom({ projectId: s.admin.projectId, name: "idem-official" });
    expect(r.name).toBe("idem-official");
    await expect(c.createRoom({ projectId: s.admin.projectId, name: "idem-official" })).rejects.toThrow(/409/);
    expect(await rows()).toBe(before);
  });

  it("documents the header on every POST operation of /openapi.json", async () => {
    const doc = (await s.http("GET", "/openapi.json")).json;
    let posts = 0;
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      if (!ops.post) continue;
      posts++;
      const header = (ops.post.parameters ?? []).find((p: any) => p.in === "header" && p.name === "idempotency-key");
      // The streamed upload and the OAuth protocol's endpoints (their replies belong to the provider) take no key, and say so by omission.
      // Stripe's webhook is made idempotent by its event ids.
      if (path === "/projects/{project_id}/storage/upload" || path === "/billing/stripe/webhook" || ops.post["x-error-shape"] === "oauth")
        expect(header, path).toBeUndefined();
      else expect(header, path).toMatchObject({ required: false, schema: { maxLength: 255 } });
    }
    expect(posts).toBeGreaterThan(10);
  });
});

describe("Idempotency-Key across two server processes on one database", () => {
  const st: { dataDir: string; db: TestDatabase; env: Record<string, string>; b: any } = {} as never;
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;
  beforeAll(async () => {
    st.dataDir = mkdtempSync(join(tmpdir(), "meshagent-idem-"));
    st.db = await freshDatabase(st.dataDir);
    st.env = { MESHAGENT_DATA_DIR: st.dataDir, MESHAGENT_DATABASE_URL: st.db.url };
    const out = execFileSync(process.execPath, ["--import", TSX_LOADER, join(ROOT, "src/main.ts"), "bootstrap", "--json", "--email", "idem@example.com"], {
      cwd: st.dataDir,
      env: { ...process.env, ...st.env, MESHAGENT_LOG_LEVEL: "warn" },
      encoding: "utf8",
    });
    st.b = JSON.parse(out.trim());
    a = await spawnServer(st.env);
    b = await spawnServer(st.env);
  }, 120_000);
  afterAll(async () => {
    await a?.kill("SIGTERM");
    await b?.kill("SIGTERM");
    await st.db.drop();
    rmSync(st.dataDir, { recursive: true, force: true });
  });

  it("concurrent requests with one key on both processes: one runs, all get its response", async () => {
    const key = randomUUID();
    const send = (srv: ServerProcess) =>
      fetch(`${srv.url}/accounts/projects/${st.b.project_id}/rooms`, {
        method: "POST",
        headers: { authorization: `Bearer ${st.b.api_key}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ name: "cluster-room" }),
      }).then(async (r) => ({ status: r.status, text: await r.text(), replayed: r.headers.get("idempotent-replayed") }));
    const all = await Promise.all(Array.from({ length: 10 }, (_, i) => send(i % 2 ? a! : b!)));
    expect(new Set(all.map((r) => r.status))).toEqual(new Set([201]));
    expect(new Set(all.map((r) => r.text)).size).toBe(1);
    expect(all.filter((r) => r.replayed === null)).toHaveLength(1);
    const list = await fetch(`${a!.url}/accounts/projects/${st.b.project_id}/rooms?filter=cluster-room`, {
      headers: { authorization: `Bearer ${st.b.api_key}` },
    }).then((r) => r.json());
    expect(list.total).toBe(1);
    // Later, from either process: the stored response.
    for (const srv of [a!, b!]) expect(await send(srv)).toEqual({ status: 201, text: all[0].text, replayed: "true" });
  });
});
