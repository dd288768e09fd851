import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { jwtVerify } from "jose";
import { startServer, type TestServer } from "./helpers/server.js";
import { Receiver, until } from "./helpers/receiver.js";
import { pythonVerify } from "./helpers/webhook-verify.js";
import { ManualClock } from "../src/core/clock.js";
import { inTx } from "../src/store/db.js";
import { MAX_ATTEMPTS, RETRY_DELAYS_MS } from "../src/webhooks/dispatcher.js";
import { webhooksRepo } from "../src/webhooks/repo.js";

const ALLOW = { MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1" };

describe("webhooks", () => {
  let s: TestServer;
  let r: Receiver;
  let clock: ManualClock;
  let P: string;
  const base = () => `/accounts/projects/${P}/webhooks`;

  beforeAll(async () => {
    clock = new ManualClock(Date.now());
    s = await startServer({ env: ALLOW, clock });
    r = await Receiver.start();
    P = s.admin.projectId;
  });
  afterAll(async () => {
    await r.close();
    await s.close();
  });

  /** Publish a domain event the way areas do: inside a transaction, notify after commit. */
  async function publish(type: string, data: Record<string, unknown>, projectId = P) {
    const after = await inTx(s.ctx.store.db, (tx) => s.ctx.bus.publish(tx, { type, project_id: projectId, data }));
    after();
  }
  async function create(body: Record<string, unknown>) {
    const res = await s.http("POST", base(), { json: { name: "hook", url: r.url, events: ["*"], ...body } });
    expect(res.status, res.text).toBe(201);
    return res.json;
  }
  const deliveries = async (id: string, q = "") => (await s.http("GET", `${base()}/${id}/deliveries${q}`)).json;
  const delivery = async (id: string, did: string) => (await s.http("GET", `${base()}/${id}/deliveries/${did}`)).json;
  /** Requests the receiver got for one webhook (by delivery ids of that webhook). */
  const gotFor = async (id: string) => {
    const ids = new Set((await deliveries(id, "?limit=1000")).deliveries.map((d: any) => d.id));
    return r.requests.filter((q) => ids.has(q.headers["webhook-id"] as string));
  };

  describe("CRUD with the official client", () => {
    it("creates, lists, updates and deletes; the secret is generated and returned on create and get", async () => {
      const c = s.client();
      const w: any = await c.createWebhook(P, { name: "Rooms", url: r.url, events: ["room.started", "room.ended"], description: "d" });
      expect(w).toMatchObject({
        name: "Rooms",
        url: r.url,
        events: ["room.started", "room.ended"],
        description: "d",
        action: null,
        payload: null,
        enabled: true,
        state: "active",
      });
      expect(w.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(typeof w.created_at).toBe("string");
      const got = await s.http("GET", `${base()}/${w.id}`);
      expect(got.json.secret).toBe(w.secret);

      const list: any = await c.listWebhooks(P);
      const row = list.webhooks.find((x: any) => x.id === w.id);
      expect(row).toMatchObject({
        id: w.id,
        name: "Rooms",
        description: "d",
        url: r.url,
        events: ["room.started", "room.ended"],
        action: null,
        secret: w.secret,
      });

      const u: any = await c.updateWebhook(P, w.id, { name: "Rooms2", url: r.url + "?x=1", events: ["room.*"] });
      expect(u).toMatchObject({ id: w.id, name: "Rooms2", url: r.url + "?x=1", events: ["room.*"], secret: w.secret, description: "" });

      await c.deleteWebhook(P, w.id);
      expect((await s.http("GET", `${base()}/${w.id}`)).status).toBe(404);
      expect(((await c.listWebhooks(P)) as any).webhooks.some((x: any) => x.id === w.id)).toBe(false);
    });

    it('accepts the Python client\'s bodies: "" and null as absent, a payload object, and a chosen secret', async () => {
      const a = await s.http("POST", base(), { json: { name: "py", description: "", url: r.url, events: ["api_key.created"], action: "", payload: "" } });
      expect(a.status).toBe(201);
      expect(a.json).toMatchObject({ action: null, payload: null });
      const b = await s.http("POST", base(), { json: { name: "cli", description: "", url: r.url, events: ["*"], action: null, payload: null } });
      expect(b.status).toBe(201);
      // update_webhook sends every key, null when unset: nulls keep the stored values
      const put = await s.http("PUT", `${base()}/${a.json.id}`, {
        json: { name: "py2", description: "x", url: r.url, events: ["api_key.deleted"], action: null, payload: { team: "blue" }, secret: "my-own-secret-123" },
      });
      expect(put.status).toBe(200);
      expect(put.json).toMatchObject({
        name: "py2",
        description: "x",
        events: ["api_key.deleted"],
        action: null,
        payload: { team: "blue" },
        secret: "my-own-secret-123",
      });
      const put2 = await s.http("PUT", `${base()}/${a.json.id}`, {
        json: { name: "py3", url: null, events: null, description: null, action: null, payload: null, secret: null },
      });
      expect(put2.json).toMatchObject({ name: "py3", description: "x", url: r.url, payload: { team: "blue" }, secret: "my-own-secret-123" });
      const del = await s.http("DELETE", `${base()}/${a.json.id}`);
      expect(del.status).toBe(200);
      expect(del.json).toEqual({ ok: true });
      await s.http("DELETE", `${base()}/${b.json.id}`);
    });

    it("never stores the secret in the clear", async () => {
      const w = await create({ name: "sealed", events: ["api_key.created"] });
      const row = await s.ctx.store.db.selectFrom("webhooks").selectAll().where("id", "=", w.id).executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain(w.secret.slice(6));
      expect(row.secret_sealed).toMatch(/^v2:[0-9a-f]{16}:/);
      await s.http("DELETE", `${base()}/${w.id}`);
    });

    it("serves the event catalog", async () => {
      const res = await s.http("GET", "/webhooks/events", { token: null });
      const names = res.json.events.map((e: any) => e.event);
      for (const e of [
        "room.started",
        "room.ended",
        "room.call",
        "storage.file.updated",
        "storage.file.deleted",
        "storage.file.moved",
        "api_key.created",
        "grant.changed",
        "scheduled_task.run.failed",
      ])
        expect(names).toContain(e);
    });
  });

  describe("bad input gets a 4xx naming the problem", () => {
    it.each([
      [{ url: "u", events: ["*"] }, 400, "name"],
      [{ name: "x", events: ["*"] }, 400, "url"],
      [{ name: "x", url: "http://127.0.0.1/" }, 400, "events"],
      [{ name: "x", url: "not a url", events: ["*"] }, 400, "url"],
      [{ name: "x", url: "ftp://127.0.0.1/", events: ["*"] }, 400, "http"],
      [{ name: "x", url: "http://u:p@127.0.0.1/", events: ["*"] }, 400, "credentials"],
      [{ name: "x", url: "http://127.0.0.1/", events: [] }, 400, "events"],
      [{ name: "x", url: "http://127.0.0.1/", events: ["room.exploded"] }, 400, "room.exploded"],
      [{ name: "x", url: "http://127.0.0.1/", events: ["nope.*"] }, 400, "nope.*"],
      [{ name: "x", url: "http://127.0.0.1/", events: "room.started" }, 400, "events"],
      [{ name: "x", url: "http://127.0.0.1/", events: ["*"], payload: [1, 2] }, 400, "payload"],
      [{ name: "x", url: "http://127.0.0.1/", events: ["*"], payload: 5 }, 400, "payload"],
      [{ name: "x", url: "http://127.0.0.1/", events: ["*"], secret: "short" }, 400, "secret"],
      [{ name: "   ", url: "http://127.0.0.1/", events: ["*"] }, 400, "name"],
      [{ name: "x", url: "http://127.0.0.1/", events: ["*"], payload: { big: "x".repeat(300 * 1024) } }, 413, "payload"],
    ])("POST %j → %i", async (json, status, word) => {
      const res = await s.http("POST", base(), { json });
      expect(res.status).toBe(status);
      expect(res.json.error.message).toContain(word);
    });

    it("PUT, deliveries, retry and test validate too", async () => {
      const w = await create({ name: "v" });
      expect((await s.http("PUT", `${base()}/${w.id}`, { json: { events: ["bogus"] } })).status).toBe(400);
      expect((await s.http("PUT", `${base()}/${w.id}`, { json: { url: "gopher://x" } })).json.error.message).toContain("http");
      expect((await s.http("PUT", `${base()}/${w.id}`, { json: { enabled: "yes" } })).status).toBe(400);
      expect((await s.http("GET", `${base()}/${w.id}/deliveries?limit=-1`)).status).toBe(400);
      expect((await s.http("GET", `${base()}/${w.id}/deliveries?limit=abc`)).json.error.message).toContain("limit");
      expect((await s.http("GET", `${base()}/${w.id}/deliveries?status=lost`)).json.error.message).toContain("status");
      expect((await s.http("GET", `${base()}/not-a-uuid`)).status).toBe(404);
      expect((await s.http("PUT", `${base()}/not-a-uuid`, { json: {} })).status).toBe(404);
      expect((await s.http("POST", `${base()}/${w.id}/deliveries/nope/retry`)).status).toBe(404);
      expect((await s.http("GET", `${base()}/${w.id}/deliveries/00000000-0000-0000-0000-000000000000`)).status).toBe(404);
      expect((await s.http("POST", `${base()}/00000000-0000-0000-0000-000000000000/test`)).status).toBe(404);
      await s.http("DELETE", `${base()}/${w.id}`);
    });
  });

  describe("authorization", () => {
    it("401 without or with a garbage token; members and developers 403; admins and the project's key allowed", async () => {
      const w = await create({ name: "authz", events: ["api_key.created"] });
      const member = await s.user({});
      const dev = await s.user({ is_developer: true });
      const adm = await s.user({ is_admin: true });
      const routes: [string, string, unknown?][] = [
        ["GET", base()],
        ["POST", base(), { name: "n", url: r.url, events: ["room.ended"] }],
        ["GET", `${base()}/${w.id}`],
        ["PUT", `${base()}/${w.id}`, { name: "n2" }],
        ["GET", `${base()}/${w.id}/deliveries`],
        ["POST", `${base()}/${w.id}/test`],
      ];
      for (const [m, p, json] of routes) {
        expect((await s.http(m, p, { token: null, json })).status, `${m} ${p} no token`).toBe(401);
        expect((await s.http(m, p, { token: "garbage", json })).status, `${m} ${p} garbage`).toBe(401);
        expect((await s.http(m, p, { token: member.token, json })).status, `${m} ${p} member`).toBe(403);
        expect((await s.http(m, p, { token: dev.token, json })).status, `${m} ${p} developer`).toBe(403);
        expect((await s.http(m, p, { token: adm.token, json })).status, `${m} ${p} admin`).toBeLessThan(300);
        expect((await s.http(m, p, { token: s.admin.userToken, json })).status, `${m} ${p} owner`).toBeLessThan(300);
      }
      const d = (await deliveries(w.id)).deliveries[0];
      expect((await s.http("POST", `${base()}/${w.id}/deliveries/${d.id}/retry`, { token: member.token })).status).toBe(403);
      expect((await s.http("DELETE", `${base()}/${w.id}`, { token: dev.token })).status).toBe(403);
      expect((await s.http("DELETE", `${base()}/${w.id}`, { token: adm.token })).status).toBe(200);
    });

    it("another project's key gets 404 on every route, and its events never reach this project's webhooks", async () => {
      const w = await create({ name: "mine", events: ["api_key.created"] });
      const ping = await s.http("POST", `${base()}/${w.id}/test`);
      const other = await s.otherProject();
      const t = { token: other.apiKey };
      expect((await s.http("GET", base(), t)).status).toBe(404);
      expect((await s.http("POST", base(), { ...t, json: { name: "n", url: r.url, events: ["*"] } })).status).toBe(404);
      expect((await s.http("GET", `${base()}/${w.id}`, t)).status).toBe(404);
      expect((await s.http("PUT", `${base()}/${w.id}`, { ...t, json: { name: "x" } })).status).toBe(404);
      expect((await s.http("DELETE", `${base()}/${w.id}`, t)).status).toBe(404);
      expect((await s.http("GET", `${base()}/${w.id}/deliveries`, t)).status).toBe(404);
      expect((await s.http("GET", `${base()}/${w.id}/deliveries/${ping.json.id}`, t)).status).toBe(404);
      expect((await s.http("POST", `${base()}/${w.id}/deliveries/${ping.json.id}/retry`, t)).status).toBe(404);
      expect((await s.http("POST", `${base()}/${w.id}/test`, t)).status).toBe(404);
      // Their own project path with our webhook id: still 404 (ids are scoped to the project).
      const theirs = `/accounts/projects/${other.projectId}/webhooks/${w.id}`;
      expect((await s.http("GET", theirs, t)).status).toBe(404);
      expect((await s.http("DELETE", theirs, t)).status).toBe(404);
      expect((await s.http("GET", `${theirs}/deliveries`, t)).status).toBe(404);
      // An event in the other project creates no delivery here.
      await s.client(other.apiKey).createApiKey(other.projectId, "theirs", "");
      expect((await deliveries(w.id)).total).toBe(1); // only the ping
      await s.http("DELETE", `${base()}/${w.id}`);
    });
  });

  describe("delivery and signatures", () => {
    it("an API key created through the official client is delivered once, signed both ways, verified by the reference algorithms", async () => {
      const w = await create({ name: "sig", events: ["api_key.created", "api_key.deleted"] });
      const n0 = r.requests.length;
      const key: any = await s.client().createApiKey(P, "signed", "");
      await r.waitFor(n0 + 1);
      await s.client().deleteApiKey(P, key.id);
      await r.waitFor(n0 + 2);
      const [created, deleted] = r.requests.slice(n0);
      expect(created.body).toBe(`{"event": "api_key.created", "data": {"id": "${key.id}", "name": "signed"}}`);
      expect(deleted.body).toBe(`{"event": "api_key.deleted", "data": {"id": "${key.id}"}}`);
      expect(created.headers["content-type"]).toBe("application/json");
      expect(created.headers["meshagent-event"]).toBe("api_key.created");
      expect(created.body).not.toContain(key.value);
      // MeshAgent's receiver algorithm (python3), Standard Webhooks (reference package), and a JWT library.
      expect(pythonVerify([created, deleted].map((q) => ({ body: q.body, headers: q.headers, secret: w.secret })))).toEqual(["ok", "ok"]);
      expect(pythonVerify([{ body: created.body, headers: created.headers, secret: "whsec_wrong" }])).toEqual(["invalid jwt"]);
      for (const q of [created, deleted]) expect(new StandardWebhook(w.secret).verify(q.body, q.headers as Record<string, string>)).toEqual(JSON.parse(q.body));
      expect(() =>
        new StandardWebhook("whsec_" + Buffer.from("x".repeat(32)).toString("base64")).verify(created.body, created.headers as Record<string, string>),
      ).toThrow();
      const jwt = (created.headers["meshagent-signature"] as string).replace(/^Bearer /, "");
      const { payload, protectedHeader } = await jwtVerify(jwt, new TextEncoder().encode(w.secret), { algorithms: ["HS256"] });
      expect(protectedHeader.alg).toBe("HS256");
      expect(Object.keys(payload)).toEqual(["sha256"]);
      // One delivery id per (event, webhook), used as webhook-id; a different id per event.
      const ds = (await deliveries(w.id)).deliveries;
      expect(ds.map((d: any) => d.id).sort()).toEqual([created.headers["webhook-id"], deleted.headers["webhook-id"]].sort());
      expect(created.headers["meshagent-delivery"]).toBe(created.headers["webhook-id"]);
      await s.http("DELETE", `${base()}/${w.id}`);
    });

    it("non-ASCII, nested and numeric data is sent in json.dumps form and verifies; a user-chosen secret signs too", async () => {
      const w = await create({ name: "utf", events: ["storage.file.moved"], secret: "plain secret ✓ 123" });
      const n0 = r.requests.length;
      const data = {
        source_path: "ä/日本/😀.txt",
        destination_path: 'x"y\\z\n\u0001',
        participant_id: null,
        sizes: [1, 2.5, 1e-7, 1e21, -0],
        nested: { ключ: [true, false, {}] },
      };
      await publish("storage.file.moved", data);
      await r.waitFor(n0 + 1);
      const q = r.requests[n0];
      expect(q.body).toBe(
        '{"event": "storage.file.moved", "data": {"source_path": "\\u00e4/\\u65e5\\u672c/\\ud83d\\ude00.txt", "destination_path": "x\\"y\\\\z\\n\\u0001", "participant_id": null, "sizes": [1, 2.5, 1e-07, 1e+21, 0], "nested": {"\\u043a\\u043b\\u044e\\u0447": [true, false, {}]}}}',
      );
      expect(JSON.parse(q.body).data.source_path).toBe("ä/日本/😀.txt");
      expect(pythonVerify([{ body: q.body, headers: q.headers, secret: w.secret }])).toEqual(["ok"]);
      expect(new StandardWebhook(new TextEncoder().encode(w.secret), { format: "raw" }).verify(q.body, q.headers as Record<string, string>)).toBeTruthy();
      await s.http("DELETE", `${base()}/${w.id}`);
    });

    it("a file uploaded and deleted through the official client's storage calls is delivered as storage events", async () => {
      const w = await create({ name: "files", events: ["storage.*"] });
      const n0 = r.requests.length;
      await (s.client() as any).upload({ projectId: P, path: "hooks/ä.txt", data: Buffer.from("hello") });
      await r.waitFor(n0 + 1);
      const q = r.requests[n0];
      const body = JSON.parse(q.body);
      expect(body.event).toBe("storage.file.updated");
      expect(body.data).toMatchObject({ path: "hooks/ä.txt", size: 5 });
      expect(q.body).toContain("hooks/\\u00e4.txt");
      expect(pythonVerify([{ body: q.body, headers: q.headers, secret: w.secret }])).toEqual(["ok"]);
      await s.http("DELETE", `${base()}/${w.id}`);
    });

    it("matches exact names, prefix wildcards and *; the payload and action are merged into the body", async () => {
      const rooms = await create({ name: "rooms", events: ["room.*"], action: "notify", payload: { team: "blue", event: "ignored", data: "ignored" } });
      const exact = await create({ name: "exact", events: ["room.created"] });
      await publish("api_key.created", { id: "k", name: "n" });
      await publish("room.updated", { id: "r1", room_name: "lobby" });
      await publish("room.created", { id: "r2", room_name: "hall" });
      await until(async () => (await gotFor(rooms.id)).length === 2 && (await gotFor(exact.id)).length === 1, "room deliveries");
      const bodies = (await gotFor(rooms.id)).map((q) => q.body).sort();
      expect(bodies).toEqual([
        '{"event": "room.created", "data": {"id": "r2", "room_name": "hall"}, "action": "notify", "team": "blue"}',
        '{"event": "room.updated", "data": {"id": "r1", "room_name": "lobby"}, "action": "notify", "team": "blue"}',
      ]);
      expect((await gotFor(exact.id))[0].body).toBe('{"event": "room.created", "data": {"id": "r2", "room_name": "hall"}}');
      const both = (await deliveries(rooms.id)).deliveries.concat((await deliveries(exact.id)).deliveries).filter((d: any) => d.event === "room.created");
      expect(both[0].event_id).toBe(both[1].event_id); // one event, two deliveries
      expect(both[0].id).not.toBe(both[1].id);
      await s.http("DELETE", `${base()}/${rooms.id}`);
      await s.http("DELETE", `${base()}/${exact.id}`);
    });

    it("the outbox row commits with the change: a rolled-back change delivers nothing", async () => {
      const w = await create({ name: "tx", events: ["room.deleted"] });
      await expect(
        inTx(s.ctx.store.db, async (tx) => {
          await s.ctx.bus.publish(tx, { type: "room.deleted", project_id: P, data: { id: "x", room_name: "gone" } });
          expect(await tx.selectFrom("webhook_deliveries").select("id").where("webhook_id", "=", w.id).execute()).toHaveLength(1);
          throw new Error("rollback");
        }),
      ).rejects.toThrow("rollback");
      expect((await deliveries(w.id)).total).toBe(0);
      await s.http("DELETE", `${base()}/${w.id}`);
    });

    it("many events in one transaction each get a row; a webhook created later is seen by the next transaction", async () => {
      const a = await create({ name: "bulk-a", events: ["storage.file.deleted"] });
      await inTx(s.ctx.store.db, async (tx) => {
        for (let i = 0; i < 30; i++)
          await s.ctx.bus.publish(tx, { type: "storage.file.deleted", project_id: P, data: { path: `f${i}`, participant_id: null } });
      });
      expect((await deliveries(a.id, "?limit=100")).total).toBe(30);
      const b = await create({ name: "bulk-b", events: ["storage.file.deleted"] });
      await s.ctx.bus.publish(s.ctx.store.db, { type: "storage.file.deleted", project_id: P, data: { path: "g", participant_id: null } });
      expect((await deliveries(b.id)).total).toBe(1);
      expect((await deliveries(a.id, "?limit=100")).total).toBe(31);
      await s.http("DELETE", `${base()}/${a.id}`);
      await s.http("DELETE", `${base()}/${b.id}`);
    });

    it("a payload over 256 KiB is recorded as failed and never sent; retrying it is refused", async () => {
      const w = await create({ name: "big", events: ["storage.file.updated"] });
      await publish("storage.file.updated", { path: "x".repeat(300 * 1024), participant_id: null });
      const d = (await deliveries(w.id)).deliveries[0];
      expect(d).toMatchObject({ status: "failed", attempts: 0, payload: null });
      expect(d.last_error).toContain("too large");
      expect((await gotFor(w.id)).length).toBe(0);
      const retry = await s.http("POST", `${base()}/${w.id}/deliveries/${d.id}/retry`);
      expect(retry.status).toBe(409);
      await s.http("DELETE", `${base()}/${w.id}`);
    });
  });

  describe("retries", () => {
    it("a receiver that fails twice then succeeds: backoff with jitter, every attempt recorded, one stable id", async () => {
      const f = await Receiver.start();
      f.responder = (_q, n) => (n < 2 ? { status: 500, body: `boom ${n}` } : { status: 200, body: "fine" });
      try {
        const w = await create({ name: "flaky", url: f.url, events: ["room.started"] });
        await publish("room.started", { room_name: "a", room_url: "ws://x/rooms/a" });
        await f.waitFor(1);
        let d = await until(async () => {
          const x = (await deliveries(w.id)).deliveries[0];
          return x?.attempts === 1 && x;
        }, "attempt 1");
        expect(d).toMatchObject({ status: "pending", last_status_code: 500 });
        const wait1 = Date.parse(d.next_attempt_at) - clock.now();
        expect(wait1).toBeGreaterThanOrEqual(RETRY_DELAYS_MS[0]);
        expect(wait1).toBeLessThanOrEqual(RETRY_DELAYS_MS[0] * 1.25);
        // Not due yet: nothing happens even when woken.
        s.ctx.webhookDispatcher.wake();
        await new Promise((res) => setTimeout(res, 100));
        expect(f.requests.length).toBe(1);
        clock.advance(wait1);
        s.ctx.webhookDispatcher.wake();
        await f.waitFor(2);
        d = await until(async () => {
          const x = (await deliveries(w.id)).deliveries[0];
          return x?.attempts === 2 && x;
        }, "attempt 2");
        const wait2 = Date.parse(d.next_attempt_at) - clock.now();
        expect(wait2).toBeGreaterThanOrEqual(RETRY_DELAYS_MS[1]);
        expect(wait2).toBeLessThanOrEqual(RETRY_DELAYS_MS[1] * 1.25);
        clock.advance(wait2);
        s.ctx.webhookDispatcher.wake();
        await f.waitFor(3);
        d = await until(async () => {
          const x = (await deliveries(w.id)).deliveries[0];
          return x?.status === "delivered" && x;
        }, "delivered");
        expect(d.attempts).toBe(3);
        expect(d.history.map((h: any) => [h.attempt, h.status_code, h.response_excerpt])).toEqual([
          [1, 500, "boom 0"],
          [2, 500, "boom 1"],
          [3, 200, "fine"],
        ]);
        for (const h of d.history) expect(h.latency_ms).toBeGreaterThanOrEqual(0);
        expect(new Set(f.requests.map((q) => q.headers["webhook-id"]))).toEqual(new Set([d.id]));
        expect(f.requests.map((q) => q.headers["meshagent-attempt"])).toEqual(["1", "2", "3"]);
        expect(new Set(f.requests.map((q) => q.body)).size).toBe(1);
        await s.http("DELETE", `${base()}/${w.id}`);
      } finally {
        await f.close();
      }
    });

    it("honours Retry-After (seconds and HTTP dates) and records connection errors", async () => {
      const f = await Receiver.start();
      f.responder = (_q, n) =>
        n === 0
          ? { status: 429, headers: { "retry-after": "120" } }
          : n === 1
            ? { status: 503, headers: { "retry-after": new Date(clock.now() + 3600_000).toUTCString() } }
            : { status: 200 };
      try {
        const w = await create({ name: "ra", url: f.url, events: ["room.ended"] });
        await publish("room.ended", { room_name: "a" });
        let d = await until(async () => {
          const x = (await deliveries(w.id)).deliveries[0];
          return x?.attempts === 1 && x;
        }, "attempt 1");
        expect(Date.parse(d.next_attempt_at) - clock.now()).toBe(120_000);
        clock.advance(120_000);
        s.ctx.webhookDispatcher.wake();
        d = await until(async () => {
          const x = (await deliveries(w.id)).deliveries[0];
          return x?.attempts === 2 && x;
        }, "attempt 2");
        const wait = Date.parse(d.next_attempt_at) - clock.now();
        expect(wait).toBeGreaterThan(3590_000);
        expect(wait).toBeLessThanOrEqual(3600_000);
        await s.http("DELETE", `${base()}/${w.id}`);
      } finally {
        await f.close();
      }
      // Nothing listening: a connection error is an attempt with an error and a retry.
      const dead = await Receiver.start();
      const deadUrl = dead.url;
      await dead.close();
      const w2 = await create({ name: "dead", url: deadUrl, events: ["room.ended"] });
      await publish("room.ended", { room_name: "b" });
      const d2 = await until(async () => {
        const x = (await deliveries(w2.id)).deliveries[0];
        return x?.attempts === 1 && x;
      }, "dead attempt");
      expect(d2).toMatchObject({ status: "pending", last_status_code: null });
      expect(d2.history[0].error).toMatch(/ECONNREFUSED|connect/);
      await s.http("DELETE", `${base()}/${w2.id}`);
    });

    it("410 Gone disables the endpoint: later events are not queued, pending ones are held and resume on re-enable", async () => {
      const g = await Receiver.start();
      let gone = true;
      g.responder = () => (gone ? { status: 410, body: "gone" } : { status: 200 });
      try {
        const w = await create({ name: "gone", url: g.url, events: ["room.created", "room.deleted"] });
        // Two events: one answers 410; the other, queued but not yet sent, is held.
        await s.http("PUT", `${base()}/${w.id}`, { json: { enabled: false } });
        await publish("room.created", { id: "1", room_name: "q" }); // disabled: not queued
        expect((await deliveries(w.id)).total).toBe(0);
        await s.http("PUT", `${base()}/${w.id}`, { json: { enabled: true } });
        await publish("room.created", { id: "2", room_name: "q" });
        await g.waitFor(1);
        const hook = await until(async () => {
          const x = (await s.http("GET", `${base()}/${w.id}`)).json;
          return !x.enabled && x;
        }, "disabled");
        expect(hook).toMatchObject({ state: "disabled", disabled_reason: expect.stringContaining("410") });
        const d1 = (await deliveries(w.id)).deliveries[0];
        expect(d1).toMatchObject({ status: "failed", last_status_code: 410, attempts: 1 });
        await publish("room.deleted", { id: "2", room_name: "q" });
        expect((await deliveries(w.id)).total).toBe(1);
        // Retrying while disabled is refused; a row that was pending when it was disabled is held.
        expect((await s.http("POST", `${base()}/${w.id}/deliveries/${d1.id}/retry`)).status).toBe(409);
        const heldRow = {
          ...(await s.ctx.store.db.selectFrom("webhook_deliveries").selectAll().where("id", "=", d1.id).executeTakeFirstOrThrow()),
          id: crypto.randomUUID(),
          status: "held" as const,
          attempts: 0,
          last_status_code: null,
          last_error: null,
        };
        await webhooksRepo.insertDeliveries(s.ctx.store.db, [heldRow]);
        expect((await deliveries(w.id, "?status=held")).total).toBe(1);
        gone = false;
        const re = await s.http("PUT", `${base()}/${w.id}`, { json: { enabled: true } });
        expect(re.json).toMatchObject({ enabled: true, state: "active", disabled_reason: null });
        await g.waitFor(2);
        await until(async () => (await delivery(w.id, heldRow.id)).status === "delivered", "held row delivered");
        await s.http("DELETE", `${base()}/${w.id}`);
      } finally {
        await g.close();
      }
    });
  });

  describe("inspect and replay", () => {
    it("pages deliveries with a total, filters by status, replays one with the same id, and pings", async () => {
      const w = await create({ name: "inspect", events: ["grant.changed"] });
      for (let i = 0; i < 5; i++) await publish("grant.changed", { room_name: "r", user_id: `u${i}`, change: "created" });
      await until(async () => (await deliveries(w.id, "?status=delivered")).total === 5, "5 delivered");
      const p1 = await deliveries(w.id, "?limit=2&offset=0");
      const p3 = await deliveries(w.id, "?limit=2&offset=4");
      expect(p1.total).toBe(5);
      expect(p1.deliveries).toHaveLength(2);
      expect(p3.deliveries).toHaveLength(1);
      expect((await deliveries(w.id, "?status=failed")).total).toBe(0);
      const one = p1.deliveries[0];
      const single = await delivery(w.id, one.id);
      expect(single).toMatchObject({ id: one.id, status: "delivered", attempts: 1, history: [{ attempt: 1, status_code: 200 }] });
      expect(single.payload.event).toBe("grant.changed");

      const n0 = r.requests.length;
      const retried = await s.http("POST", `${base()}/${w.id}/deliveries/${one.id}/retry`);
      expect(retried.status).toBe(200);
      expect(retried.json.id).toBe(one.id);
      await r.waitFor(n0 + 1);
      expect(r.requests[n0].headers["webhook-id"]).toBe(one.id);
      expect(r.requests[n0].body).toBe(JSON.stringify(single.payload).replace(/":/g, '": ').replace(/,"/g, ', "'));
      await until(async () => (await delivery(w.id, one.id)).attempts === 2, "replayed");

      const ping = await s.http("POST", `${base()}/${w.id}/test`);
      expect(ping.status).toBe(201);
      expect(ping.json).toMatchObject({ event: "webhook.test", status: "pending" });
      await r.waitFor(n0 + 2);
      const got = r.requests[n0 + 1];
      expect(JSON.parse(got.body)).toEqual({ event: "webhook.test", data: { webhook_id: w.id, message: "ping" } });
      expect(pythonVerify([{ body: got.body, headers: got.headers, secret: w.secret }])).toEqual(["ok"]);
      await s.http("DELETE", `${base()}/${w.id}`);
    });

    it("deleting a webhook removes its deliveries, even with one in flight", async () => {
      const slow = await Receiver.start();
      slow.responder = () => ({ status: 200, delayMs: 300 });
      try {
        const w = await create({ name: "del", url: slow.url, events: ["room.ended"] });
        await publish("room.ended", { room_name: "z" });
        await slow.waitFor(1);
        expect((await s.http("DELETE", `${base()}/${w.id}`)).status).toBe(200);
        await new Promise((res) => setTimeout(res, 400));
        await s.ctx.webhookDispatcher.idle();
        expect(await s.ctx.store.db.selectFrom("webhook_deliveries").select("id").where("webhook_id", "=", w.id).execute()).toHaveLength(0);
        // the dispatcher is still healthy
        const w2 = await create({ name: "after", events: ["room.ended"] });
        await publish("room.ended", { room_name: "z2" });
        await until(async () => (await deliveries(w2.id, "?status=delivered")).total === 1, "delivered after delete");
        await s.http("DELETE", `${base()}/${w2.id}`);
      } finally {
        await slow.close();
      }
    });
  });

  describe("a hanging endpoint does not hold every slot", () => {
    it("after a timeout its extra rows wait, and another webhook's event goes through (concurrency 4, timeout 1 s)", async () => {
      const small = await startServer({ env: { ...ALLOW, MESHAGENT_WEBHOOK_CONCURRENCY: "4", MESHAGENT_WEBHOOK_TIMEOUT_MS: "1000" } });
      const hang = await Receiver.start();
      hang.responder = () => "hang";
      const fast = await Receiver.start();
      try {
        const sp = `/accounts/projects/${small.admin.projectId}/webhooks`;
        const a = (await small.http("POST", sp, { json: { name: "hang", url: hang.url, events: ["room.ended"] } })).json;
        await small.http("POST", sp, { json: { name: "fast", url: fast.url, events: ["room.started"] } });
        const pub = async (type: string, data: Record<string, unknown>) =>
          (await inTx(small.ctx.store.db, (tx) => small.ctx.bus.publish(tx, { type, project_id: small.admin.projectId, data })))();
        for (let i = 0; i < 20; i++) await pub("room.ended", { room_name: `h${i}` });
        await pub("room.started", { room_name: "f", room_url: "ws://x/rooms/f" });
        await fast.waitFor(1, 15_000);
        // Without the limit, 20 hanging rows would take 5 rounds of 4 timeouts before the fast one.
        expect(hang.requests.length).toBeLessThan(10);
        const timedOut = await until(async () => {
          const x = await small.ctx.store.db.selectFrom("webhook_attempts").select(["error", "latency_ms"]).where("error", "like", "timeout%").execute();
          return x.length > 0 && x;
        }, "a recorded timeout");
        expect(timedOut[0].error).toBe("timeout after 1000 ms");
        expect(timedOut[0].latency_ms).toBeGreaterThanOrEqual(1000);
        const rows = await small.ctx.store.db.selectFrom("webhook_deliveries").select(["attempts", "status"]).where("webhook_id", "=", a.id).execute();
        expect(rows).toHaveLength(20);
        expect(rows.every((x) => x.status === "pending")).toBe(true);
      } finally {
        await hang.close();
        await fast.close();
        await small.close();
      }
    });
  });

  describe("SSRF guard (MESHAGENT_WEBHOOK_ALLOW_PRIVATE unset)", () => {
    it("refuses private, loopback and link-local URLs on save and at delivery time", async () => {
      const strict = await startServer();
      try {
        const sp = `/accounts/projects/${strict.admin.projectId}/webhooks`;
        for (const url of [
          "http://127.0.0.1:9/x",
          "http://10.1.2.3/",
          "http://169.254.169.254/latest/meta-data",
          "http://[::1]/",
          "http://[::ffff:127.0.0.1]/",
          "http://localhost/",
          "http://192.168.1.1/",
          "http://[fe80::1]/",
          "http://0.0.0.0/",
        ]) {
          const res = await strict.http("POST", sp, { token: strict.admin.apiKey, json: { name: "x", url, events: ["*"] } });
          expect(res.status, url).toBe(400);
          expect(res.json.error.message, url).toMatch(/private|loopback|link-local/);
          // The refusal names the setting that allows it.
          if (!url.includes("0.0.0.0")) expect(res.json.error.message, url).toContain("MESHAGENT_WEBHOOK_ALLOW_PRIVATE=true");
        }
        // A row that points inside anyway (saved before, or DNS that changed): refused when sending.
        const r2 = await Receiver.start();
        try {
          const now = Date.now();
          for (const [id, url] of [
            [crypto.randomUUID(), r2.url],
            [crypto.randomUUID(), `http://localhost:${r2.port}/webhook`],
          ]) {
            await webhooksRepo.insert(strict.ctx.store.db, {
              id,
              project_id: strict.admin.projectId,
              name: "inside",
              description: "",
              url,
              events: '["api_key.created"]',
              action: null,
              payload: null,
              secret_sealed: strict.ctx.sealer.seal("whsec_" + Buffer.from("k".repeat(32)).toString("base64")),
              enabled: 1,
              disabled_reason: null,
              created_at: now,
              updated_at: now,
            });
          }
          await strict.client().createApiKey(strict.admin.projectId, "k", "");
          const rows = await until(async () => {
            const a = await strict.ctx.store.db.selectFrom("webhook_attempts").selectAll().execute();
            return a.length === 2 && a;
          }, "two refused attempts");
          for (const a of rows) expect(a.error).toMatch(/refused.*private/);
          expect(r2.requests).toHaveLength(0);
        } finally {
          await r2.close();
        }
      } finally {
        await strict.close();
      }
    });
  });

  describe("giving up", () => {
    it(`after ${MAX_ATTEMPTS} failed attempts spanning at least 24 h, the delivery is marked failed`, async () => {
      const f = await Receiver.start();
      f.responder = () => ({ status: 500 });
      try {
        const w = await create({ name: "never", url: f.url, events: ["room.ended"] });
        await publish("room.ended", { room_name: "never" });
        const t0 = clock.now();
        for (let i = 1; i <= MAX_ATTEMPTS; i++) {
          const d = await until(async () => {
            const x = (await deliveries(w.id)).deliveries[0];
            return x?.attempts === i && x;
          }, `attempt ${i}`);
          if (i < MAX_ATTEMPTS) {
            expect(d.status).toBe("pending");
            clock.set(Date.parse(d.next_attempt_at));
            s.ctx.webhookDispatcher.wake();
          } else {
            expect(d.status).toBe("failed");
            expect(d.history).toHaveLength(MAX_ATTEMPTS);
            expect(Date.parse(d.history[MAX_ATTEMPTS - 1].started_at) - t0).toBeGreaterThanOrEqual(24 * 3600_000);
          }
        }
        expect(f.requests).toHaveLength(MAX_ATTEMPTS);
      } finally {
        await f.close();
      }
    });
  });
});
