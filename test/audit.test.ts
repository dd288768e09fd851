import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "kysely";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../src/core/clock.js";
import { actorId } from "../src/auth/principal.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { ApiScope } from "./helpers/official.js";

const DAY = 86_400_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every row of the audit table as stored, every column, as one string. */
async function rawDump(s: TestServer): Promise<{ rows: Record<string, unknown>[]; text: string }> {
  const rows = (await sql<Record<string, unknown>>`SELECT * FROM audit_log`.execute(s.ctx.store.db)).rows;
  return { rows, text: JSON.stringify(rows) };
}

/** The actor id the audit log gives a bearer (resolved the way the server resolves it). */
async function actorOf(s: TestServer, token: string) {
  const p = await s.ctx.auth.resolve(token);
  if (!p) throw new Error("token does not resolve");
  return actorId(p);
}

describe("audit log", () => {
  let s: TestServer;
  let clock: ManualClock;
  let pid: string;
  let P: string;
  let keyActor: string;
  const log = async (query = "", token?: string) => s.http("GET", `${P}/audit-log${query}`, token === undefined ? {} : { token });
  /** The entry of one request, found by its request id (undefined when it was not recorded). */
  const entryOf = async (requestId: string | null) => {
    const all = (await log("?limit=1000")).json.entries as any[];
    return all.find((e) => e.request_id === requestId);
  };

  beforeAll(async () => {
    clock = new ManualClock(Date.parse("2026-03-01T10:00:00Z"));
    s = await startServer({ env: { MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true" }, clock });
    pid = s.admin.projectId;
    P = `/accounts/projects/${pid}`;
    keyActor = await actorOf(s, s.admin.apiKey);
  });
  afterAll(() => s.close());

  it("records creating, updating and deleting a room, a grant and an API key with the official client", async () => {
    const c = s.client();
    const before = (await log()).json.total;
    const room = await c.createRoom({ projectId: pid, name: "audited" });
    clock.advance(1000);
    await c.updateRoom(pid, room.id, "audited-2");
    const u = await s.user({});
    await c.createRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.full() });
    await c.updateRoomGrant({ projectId: pid, roomId: room.id, userId: u.userId, permissions: ApiScope.userDefault(), grantId: "g-1" });
    await c.deleteRoomGrant(pid, room.id, u.userId);
    const key: any = await c.createApiKey(pid, "audited key", "for the audit test");
    await c.deleteApiKey(pid, key.id);
    clock.advance(1000);
    await c.deleteRoom(pid, room.id);

    const res = await log();
    expect(res.status).toBe(200);
    expect(res.json.total).toBe(before + 8);
    const R = "/accounts/projects/{project_id}";
    const expected = [
      ["delete_room", "DELETE", `${R}/rooms/{room_id}`, room.id, 200],
      ["delete_api_key", "DELETE", `${R}/api-keys/{id}`, key.id, 200],
      ["create_api_key", "POST", `${R}/api-keys`, key.id, 201],
      ["delete_room_grant", "DELETE", `${R}/room-grants/{room_id}/{user_id}`, u.userId, 200],
      ["update_room_grant", "PUT", `${R}/room-grants/{grant_id}`, "g-1", 200],
      ["create_room_grant / create_room_grant_by_email", "POST", `${R}/room-grants`, null, 201],
      ["update_room", "PUT", `${R}/rooms/{room_id}`, room.id, 200],
      ["create_room", "POST", `${R}/rooms`, room.id, 201],
    ];
    const newest = res.json.entries.slice(0, 8);
    expect(newest.map((e: any) => [e.operation, e.method, e.route, e.target_id, e.status])).toEqual(expected);
    for (const e of newest) {
      expect(Object.keys(e).sort()).toEqual(
        ["actor", "created_at", "id", "ip", "method", "operation", "outcome", "project_id", "request_id", "route", "status", "target_id"].sort(),
      );
      expect(e).toMatchObject({ actor: keyActor, project_id: pid, outcome: "ok", ip: "127.0.0.1" });
      expect(e.request_id).toMatch(UUID);
      expect(typeof e.id).toBe("number");
    }
    expect(keyActor).toMatch(/^api_key:/);
    // Times come from the server's clock.
    expect(newest[0].created_at).toBe(new Date(clock.now()).toISOString());
    expect(newest[7].created_at).toBe(new Date(clock.now() - 2000).toISOString());
    // Reads are not recorded.
    await c.listRooms(pid, {});
    expect((await log()).json.total).toBe(before + 8);
  });

  it("records failed calls with their status and the caller: a 409, a 400 and gate refusals; not anonymous 401s", async () => {
    const user = s.admin.userToken;
    const first = await s.http("POST", `${P}/rooms`, { token: user, json: { name: "dup" } });
    expect(first.status).toBe(201);
    const dup = await s.http("POST", `${P}/rooms`, { token: user, json: { name: "dup" } });
    expect(dup.status).toBe(409);
    const e = await entryOf(dup.headers.get("x-request-id"));
    expect(e).toMatchObject({ actor: s.admin.userId, project_id: pid, operation: "create_room", status: 409, outcome: "error", target_id: null });
    expect((await entryOf(first.headers.get("x-request-id"))).target_id).toBe(first.json.id);

    // Refused by validation (before the access gate runs): the valid bearer still names the caller.
    const bad = await s.http("POST", `${P}/rooms`, { json: { name: 42 } });
    expect(bad.status).toBe(400);
    expect(await entryOf(bad.headers.get("x-request-id"))).toMatchObject({ actor: keyActor, status: 400, outcome: "error" });

    // Refused by the gate: a plain member may not delete rooms (403), another project's key does not see the project (404).
    const member = await s.user({});
    const forbidden = await s.http("DELETE", `${P}/rooms/${first.json.id}`, { token: member.token });
    expect(forbidden.status).toBe(403);
    expect(await entryOf(forbidden.headers.get("x-request-id"))).toMatchObject({
      actor: member.userId,
      project_id: pid,
      operation: "delete_room",
      target_id: first.json.id,
      status: 403,
    });
    const other = await s.otherProject();
    const outsider = await s.http("DELETE", `${P}/rooms/${first.json.id}`, { token: other.apiKey });
    expect(outsider.status).toBe(404);
    expect(await entryOf(outsider.headers.get("x-request-id"))).toMatchObject({
      actor: await actorOf(s, other.apiKey),
      project_id: pid,
      status: 404,
    });

    // Unidentified callers: nothing to attribute, not recorded.
    const total = (await log()).json.total;
    for (const token of [null, "garbage", "ma-nope"]) {
      const r = await s.http("POST", `${P}/rooms`, { token, json: { name: "anon" } });
      expect(r.status).toBe(401);
    }
    expect((await s.http("POST", `${P}/rooms`, { token: null, json: { name: 42 } })).status).toBe(400);
    expect((await log()).json.total).toBe(total);
  });

  it("a participant token is recorded as participant:<kid>, in its own project; OTLP exports are not recorded", async () => {
    await s.client().createRoom({ projectId: pid, name: "otlp-room" });
    // connect_room mints a token and changes nothing stored: not recorded (it is the hot path of every join)
    const beforeConnect = (await log()).json.total;
    const { jwt } = await s.client().connectRoom(pid, "otlp-room");
    expect((await log()).json.total).toBe(beforeConnect);
    const actor = await actorOf(s, jwt);
    expect(actor).toMatch(/^participant:/);
    // Removing someone else needs the admin role: the refusal is recorded with the participant as the actor.
    const r = await s.http("DELETE", `${P}/users/${s.admin.userId}`, { token: jwt });
    expect(r.status).toBe(403);
    expect(await entryOf(r.headers.get("x-request-id"))).toMatchObject({
      actor,
      project_id: pid,
      method: "DELETE",
      route: "/accounts/projects/{project_id}/users/{user_id}",
      status: 403,
    });
    // OTLP exports are telemetry, not changes: not recorded.
    const before = (await log()).json.total;
    // (404: the room has no session yet; answered either way, and not recorded either way)
    const t = await s.http("POST", "/v1/traces", { token: jwt, json: { resourceSpans: [] } });
    expect(t.status).toBeLessThan(500);
    expect((await log()).json.total).toBe(before);
  });

  it("filters by actor, operation, target and time; pages newest first with a total", async () => {
    const u = await s.user({ is_admin: true });
    const start = clock.now() + 60_000;
    const made: { id: string; at: number }[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(60_000);
      const r = await s.http("POST", `${P}/rooms`, { token: u.token, json: { name: `page-${i}` } });
      expect(r.status).toBe(201);
      made.push({ id: r.json.id, at: clock.now() });
    }
    const mine = await log(`?actor=${u.userId}`);
    expect(mine.json.total).toBe(5);
    expect(mine.json.entries.map((e: any) => e.target_id)).toEqual(made.map((m) => m.id).reverse());

    const page = await log(`?actor=${u.userId}&limit=2&offset=1`);
    expect(page.json.total).toBe(5);
    expect(page.json.entries.map((e: any) => e.target_id)).toEqual([made[3].id, made[2].id]);

    const byTarget = await log(`?target=${made[1].id}`);
    expect(byTarget.json.entries.map((e: any) => [e.operation, e.target_id])).toEqual([["create_room", made[1].id]]);

    const ops = await log(`?operation=create_room&actor=${u.userId}&limit=1000`);
    expect(ops.json.total).toBe(5);
    expect((await log(`?operation=delete_room&actor=${u.userId}`)).json.total).toBe(0);

    // since/until are inclusive, ISO 8601 with a time zone (an offset works too).
    const iso = (ms: number) => new Date(ms).toISOString();
    const window = await log(`?actor=${u.userId}&since=${iso(made[1].at)}&until=${iso(made[3].at)}`);
    expect(window.json.entries.map((e: any) => e.target_id)).toEqual([made[3].id, made[2].id, made[1].id]);
    // The same instant written at +01:00.
    const atPlusOne = iso(made[4].at + 3_600_000).replace("Z", "+01:00");
    const withOffset = await log(`?actor=${u.userId}&since=${encodeURIComponent(atPlusOne)}`);
    expect(withOffset.json.entries.map((e: any) => e.target_id)).toEqual([made[4].id]);
    expect((await log(`?actor=${u.userId}&until=${iso(start - 1)}`)).json.total).toBe(0);

    for (const [name, value] of [
      ["since", "yesterday"],
      ["until", "2026-02-30T00:00:00Z"],
      ["since", "2026-03-01"],
      ["until", "2026-03-01T10:00:00"],
      ["since", "2026-13-01T00:00:00Z"],
    ]) {
      const r = await log(`?${name}=${encodeURIComponent(value)}`);
      expect(r.status, value).toBe(400);
      expect(r.json.error.code).toBe("invalid_request");
      expect(r.json.error.message).toMatch(new RegExp(`^${name} `));
    }
    expect((await log("?limit=-1")).status).toBe(400);
    expect((await log("?offset=x")).status).toBe(400);
    expect((await log("?offset=99999999999999999999")).status).toBe(400);
    expect((await log(`?target=${"x".repeat(501)}`)).status).toBe(400);
  });

  it("limit defaults to 100 and is capped at 1000", async () => {
    for (let i = 0; i < 1005; i++)
      await s.ctx.audit.record({
        project_id: pid,
        actor: "bulk",
        operation: "bulk_op",
        method: "POST",
        route: "/bulk",
        target_id: String(i),
        request_id: `r-${i}`,
        ip: null,
        status: 200,
      });
    const d = await log("?actor=bulk");
    expect(d.json.total).toBe(1005);
    expect(d.json.entries.length).toBe(100);
    expect(d.json.entries[0].target_id).toBe("1004");
    expect((await log("?actor=bulk&limit=5000")).json.entries.length).toBe(1000);
    const tail = await log("?actor=bulk&limit=1000&offset=1000");
    expect(tail.json.entries.map((e: any) => e.target_id)).toEqual(["4", "3", "2", "1", "0"]);
  });

  it("is for the project's admins and API key: another project's key and user get 404, developers and members 403", async () => {
    const other = await s.otherProject();
    for (const token of [other.apiKey, other.userToken]) {
      const r = await log("", token);
      expect(r.status).toBe(404);
      expect(JSON.stringify(r.json)).not.toContain("create_room");
    }
    // The other project's own log holds only its own project's entries.
    await s.client(other.apiKey).createRoom({ projectId: other.projectId, name: "theirs" });
    const theirs = await s.http("GET", `/accounts/projects/${other.projectId}/audit-log`, { token: other.apiKey });
    expect(theirs.status).toBe(200);
    expect(theirs.json.entries.length).toBeGreaterThan(0);
    for (const e of theirs.json.entries) expect(e.project_id).toBe(other.projectId);

    const dev = await s.user({ is_developer: true });
    const member = await s.user({});
    expect((await log("", dev.token)).status).toBe(403);
    expect((await log("", member.token)).status).toBe(403);
    expect((await log("", s.admin.userToken)).status).toBe(200);
  });

  it("never stores a secret: not an API key's value, a webhook secret, a bearer, a body or a query string", async () => {
    const c = s.client();
    const key: any = await c.createApiKey(pid, "secret-check", "");
    expect(typeof key.value).toBe("string");
    const hook: any = await c.createWebhook(pid, { name: "h", url: "http://127.0.0.1:9/hook", events: ["room.started"] });
    expect(hook.secret).toMatch(/^whsec_/);
    const given = "whsec_GivenSecretValue0123456789abcdefABCDEFGHIJKLMNO=";
    const made = await s.http("POST", `${P}/webhooks`, { json: { name: "g", url: "http://127.0.0.1:9/h2", events: ["*"], secret: given } });
    expect(made.status).toBe(201);
    const rotated = "whsec_RotatedSecretValue0123456789abcdefABCDEFGHIJKLM=";
    expect((await s.http("PUT", `${P}/webhooks/${made.json.id}`, { json: { secret: rotated } })).status).toBeLessThan(500);
    // A secret in a query string and in a body.
    const q = await s.http("POST", `${P}/rooms?token=query-secret-value&signature=sig-secret-value`, {
      json: { name: "secret-room", metadata: { password: "body-secret-value" } },
    });
    expect(q.status).toBe(201);
    const { jwt } = await s.client().connectRoom(pid, "secret-room");
    expect((await s.http("POST", "/api/participant-token/validate", { token: null, json: { token: jwt } })).status).toBe(200);

    const { rows, text } = await rawDump(s);
    expect(rows.length).toBeGreaterThan(10);
    for (const secret of [
      key.value,
      hook.secret,
      given,
      rotated,
      s.admin.apiKey,
      s.admin.userToken,
      jwt,
      "query-secret-value",
      "sig-secret-value",
      "body-secret-value",
    ])
      expect(text, secret).not.toContain(secret);
    // The created resources are there by id only.
    expect(text).toContain(key.id);
    expect(text).toContain(hook.id);
    // An anonymous public call is recorded without actor or project.
    const validate = rows.filter((r) => r.operation === "validate_participant_token");
    expect(validate.length).toBe(1);
    expect(validate[0]).toMatchObject({ actor: null, project_id: null, status: 200 });
  });
});

describe("audit log retention", () => {
  it("the sweep deletes entries older than MESHAGENT_AUDIT_RETENTION_DAYS on the server's clock; a restart sweeps at once", async () => {
    const clock = new ManualClock(Date.parse("2026-01-01T00:00:00Z"));
    const env = { MESHAGENT_AUDIT_RETENTION_DAYS: "7" };
    const dataDir = mkdtempSync(join(tmpdir(), "meshagent-audit-"));
    const s = await startServer({ env, clock, keepDatabase: true, keepData: dataDir });
    const P = `/accounts/projects/${s.admin.projectId}`;
    let s2: TestServer | undefined;
    try {
      const old = await s.http("POST", `${P}/rooms`, { json: { name: "old" } });
      clock.advance(6 * DAY);
      const recent = await s.http("POST", `${P}/rooms`, { json: { name: "recent" } });
      const ids = async (t: TestServer) => (await rawDump(t)).rows.map((r) => r.request_id);
      expect(await ids(s)).toEqual(expect.arrayContaining([old.headers.get("x-request-id"), recent.headers.get("x-request-id")]));
      expect(await s.ctx.audit.sweep()).toBe(0);
      clock.advance(1 * DAY + 1);
      expect(await s.ctx.audit.sweep()).toBe(1);
      expect(await ids(s)).not.toContain(old.headers.get("x-request-id"));
      expect(await ids(s)).toContain(recent.headers.get("x-request-id"));
      await s.close();

      // A server started on the same data sweeps when it starts (then hourly), with its own clock.
      const later = new ManualClock(clock.now() + 30 * DAY);
      s2 = await startServer({ env, clock: later, databaseUrl: s.databaseUrl, keepData: dataDir });
      const deadline = Date.now() + 5000;
      while ((await ids(s2)).includes(recent.headers.get("x-request-id")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await ids(s2)).not.toContain(recent.headers.get("x-request-id"));
    } finally {
      if (s2) await s2.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("0 keeps entries forever", async () => {
    const clock = new ManualClock(Date.parse("2026-01-01T00:00:00Z"));
    const s = await startServer({ env: { MESHAGENT_AUDIT_RETENTION_DAYS: "0" }, clock });
    try {
      const r = await s.http("POST", `/accounts/projects/${s.admin.projectId}/rooms`, { json: { name: "kept" } });
      clock.advance(10_000 * DAY);
      expect(await s.ctx.audit.sweep()).toBe(0);
      expect((await rawDump(s)).rows.map((x) => x.request_id)).toContain(r.headers.get("x-request-id"));
    } finally {
      await s.close();
    }
  });
});

describe("audit log write failure", () => {
  it("a write whose entry cannot be stored is not acknowledged: 500 in the error shape, and reads are unaffected", async () => {
    const s = await startServer();
    try {
      const P = `/accounts/projects/${s.admin.projectId}`;
      await sql`DROP TABLE audit_log`.execute(s.ctx.store.db);
      const r = await s.http("POST", `${P}/rooms`, { json: { name: "unaudited" } });
      expect(r.status).toBe(500);
      expect(r.json).toEqual({ error: { code: "internal", message: "the audit log could not be written; the call may have taken effect" } });
      expect((await s.http("GET", `${P}/rooms`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
