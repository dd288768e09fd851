import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { ProtobufMetricsSerializer } from "@opentelemetry/otlp-transformer";
import { startServer, type TestServer } from "./helpers/server.js";
import { joinRoom, mintToken, roomWsUrl, until, within, type OfficialRoom } from "./helpers/room-client.js";
import { Receiver } from "./helpers/receiver.js";
import { billingRepo } from "../src/billing/repo.js";

/** Metering from the real paths: sessions, the queue toolkit, OTLP GenAI metrics, webhook deliveries, the API. */
describe("billing: usage metered from what really happens", () => {
  let s: TestServer;
  const rooms: OfficialRoom[] = [];
  beforeAll(async () => {
    s = await startServer({
      env: {
        MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3",
        MESHAGENT_BILLING_ENABLED: "false",
        MESHAGENT_BILLING_METER_FLUSH: "0.1",
        MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "1",
      },
    });
    for (const name of ["m-life", "m-otlp"]) await s.client().createRoom({ projectId: s.admin.projectId, name });
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });
  const usage = async (q: string) => {
    const r = await s.http("GET", `/accounts/projects/${s.admin.projectId}/usage?${q}`);
    expect(r.status, r.text).toBe(200);
    return r.json.usage as any[];
  };

  it("participant-seconds by role and queue messages of a session, when it ends", async () => {
    const a = await joinRoom(roomWsUrl(s, "m-life"), await mintToken(s.admin.apiKey, "m-life", { name: "alice", role: "user" }));
    const b = await joinRoom(roomWsUrl(s, "m-life"), await mintToken(s.admin.apiKey, "m-life", { name: "bot", role: "agent" }));
    for (let i = 0; i < 3; i++) await within(a.queues.send("jobs", { i }, { create: true }), 10_000, "queues.send");
    await new Promise((r) => setTimeout(r, 300));
    a.dispose();
    b.dispose();
    await until(async () => (await usage("usage_type=queue")).length > 0, 10_000, "queue usage after the session ended");
    expect((await usage("report=rooms&usage_type=queue&room=m-life")).map((e) => [e.room_name, e.unit, e.quantity])).toEqual([["m-life", "message", 3]]);
    const people = await usage("report=users&usage_type=room&room=m-life");
    expect(people.map((e) => [e.user_id, e.role]).sort()).toEqual([
      ["alice", "user"],
      ["bot", "agent"],
    ]);
    for (const e of people) expect(e.quantity).toBeGreaterThan(0.2);
  });

  it("LLM tokens agents report as the OpenTelemetry GenAI metric (cumulative series count what grew)", async () => {
    const token = await mintToken(s.admin.apiKey, "m-otlp", { name: "llm-agent" });
    rooms.push(await joinRoom(roomWsUrl(s, "m-otlp"), token));
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const mp = new MeterProvider({ resource: resourceFromAttributes({ "service.name": "agent" }), readers: [reader] });
    const h = mp.getMeter("gen_ai").createHistogram("gen_ai.client.token.usage", { unit: "{token}" });
    const attrs = (type: string) => ({
      "gen_ai.token.type": type,
      "gen_ai.provider.name": "openai",
      "gen_ai.request.model": "gpt-4o",
      "gen_ai.operation.name": "chat",
    });
    const post = async () => {
      await reader.forceFlush();
      const rm = exporter.getMetrics().at(-1)!;
      const res = await fetch(`${s.url}/v1/metrics`, {
        method: "POST",
        headers: { "content-type": "application/x-protobuf", authorization: `Bearer ${token}` },
        body: ProtobufMetricsSerializer.serializeRequest(rm)! as BodyInit,
      });
      expect(res.status).toBe(200);
    };
    h.record(1200, attrs("input"));
    h.record(300, attrs("output"));
    await post();
    h.record(800, attrs("input"));
    await post(); // cumulative: input 2000, output 300 — only the 800 more count
    await mp.shutdown();
    const models = await usage("report=models&usage_type=llm");
    const by = Object.fromEntries(models.map((e) => [`${e.provider}/${e.model}/${e.unit}`, e.quantity]));
    expect(by).toEqual({ "openai/gpt-4o/input_token": 2000, "openai/gpt-4o/output_token": 300 });
  });

  it("webhook delivery attempts and API requests are counted and written with the next flush", async () => {
    const rx = await Receiver.start();
    try {
      await s.client().createWebhook(s.admin.projectId, { name: "meter", url: rx.url, events: ["room.created"] });
      await s.client().createRoom({ projectId: s.admin.projectId, name: "m-hook" });
      await until(async () => rx.requests.length > 0, 10_000, "a delivery");
      await until(async () => (await usage("usage_type=webhooks")).length > 0, 10_000, "webhook usage");
      expect((await usage("usage_type=webhooks"))[0]).toMatchObject({ unit: "delivery", quantity: 1 });
    } finally {
      await rx.close();
    }
    const before = (await usage("usage_type=api")).reduce((a, e) => a + e.quantity, 0);
    for (let i = 0; i < 4; i++) await s.client().listRooms(s.admin.projectId);
    await s.ctx.meter.flush();
    const after = (await usage("usage_type=api")).reduce((a, e) => a + e.quantity, 0);
    // The four calls, and the usage reads in between.
    expect(after - before).toBeGreaterThanOrEqual(4);
    const clients = await usage("report=clients&usage_type=api");
    expect(clients.some((e) => typeof e.client === "string" && e.client.startsWith("api_key:"))).toBe(true);
  });

  it("absurd reported usage is recorded capped and priced capped: it never stalls the pricing job", async () => {
    const p = await s.otherProject();
    const { inTx } = await import("../src/store/db.js");
    const after = await inTx(s.ctx.store.db, (tx) =>
      s.ctx.bus.publish(tx, {
        type: "usage.recorded",
        project_id: p.projectId,
        data: { usage_type: "llm", unit: "input_token", quantity: 1e300, provider: "openai", model: "gpt-4o" },
      }),
    );
    after();
    const hour = Math.floor(Date.now() / 3600_000) * 3600_000 + 3600_000 * 24 * 365; // an hour no other test prices
    await s.ctx.store.db
      .updateTable("usage_records")
      .set({ recorded_at: hour + 5 })
      .where("project_id", "=", p.projectId)
      .execute();
    const r = await s.ctx.billingEngine.pricePeriod(hour);
    const debit = r!.debits[p.projectId];
    expect(Number.isFinite(debit)).toBe(true);
    expect(debit).toBeLessThan(0);
    expect((await s.ctx.billing.balance(p.projectId)).balance).toBe(debit);
  });

  it("a pricing run that fails mid-way commits nothing; the next run prices the hour once", async () => {
    const start = Math.floor(Date.now() / 3600_000) * 3600_000 - 5 * 3600_000;
    const original = billingRepo.insertCharges;
    billingRepo.insertCharges = async () => {
      throw new Error("killed mid-run");
    };
    await s.ctx.store.db
      .insertInto("usage_records")
      .values({
        project_id: s.admin.projectId,
        usage_type: "room",
        unit: "participant_second",
        quantity: 600_000,
        room_name: null,
        user_id: null,
        role: null,
        provider: null,
        model: null,
        client: null,
        annotations: null,
        recorded_at: start + 1000,
      })
      .execute();
    try {
      await expect(s.ctx.billingEngine.pricePeriod(start)).rejects.toThrow(/killed mid-run/);
    } finally {
      billingRepo.insertCharges = original;
    }
    const periods = await s.ctx.store.db.selectFrom("billing_periods").selectAll().where("period_start", "=", start).execute();
    expect(periods).toEqual([]);
    expect((await s.ctx.billing.transactions(s.admin.projectId, 100)).transactions.filter((t) => t.kind === "usage")).toEqual([]);
    const r = await s.ctx.billingEngine.pricePeriod(start);
    // 10000 participant-minutes less the free plan's 1000 at the built-in 0.0005 each.
    expect(r?.debits[s.admin.projectId]).toBeCloseTo(-(9000 * 0.0005), 6);
    expect(await s.ctx.billingEngine.pricePeriod(start)).toBeNull();
    expect((await s.ctx.billing.balance(s.admin.projectId)).balance).toBeCloseTo(-4.5, 6);
  });
});
