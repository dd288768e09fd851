import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gzipSync } from "node:zlib";
import { context, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { JsonLogsSerializer, JsonTraceSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { startServer, type TestServer } from "./helpers/server.js";
import { connectAndJoin, joinRoom, mintToken, roomWsUrl, until, within, type OfficialRoom } from "./helpers/room-client.js";
import type { DomainEvent } from "../src/core/events.js";

const P = (s: TestServer) => `/accounts/projects/${s.admin.projectId}`;

describe("sessions (contract §6.6), their events, spans and metrics", () => {
  let s: TestServer;
  const events: DomainEvent[] = [];
  const rooms: OfficialRoom[] = [];
  const track = (r: OfficialRoom) => (rooms.push(r), r);

  beforeAll(async () => {
    s = await startServer({ env: { MESHAGENT_ROOM_EMPTY_TIMEOUT: "0.3" } });
    s.ctx.bus.on((e) => events.push(e));
    for (const name of ["s-life", "s-term", "s-otlp", "s-del", "s-auth"]) await s.client().createRoom({ projectId: s.admin.projectId, name });
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s.close();
  });

  it("a session starts with the first participant, counts them by role, and ends when the room stayed empty", async () => {
    const a = await joinRoom(roomWsUrl(s, "s-life"), await mintToken(s.admin.apiKey, "s-life", { name: "u1", role: "user" }));
    const b = await joinRoom(roomWsUrl(s, "s-life"), await mintToken(s.admin.apiKey, "s-life", { name: "ag", role: "agent" }));
    expect(b.sessionId).toBe(a.sessionId);
    const sessionId = a.sessionId!;
    const room = await s.client().getRoom(s.admin.projectId, "s-life");

    await until(async () => (await s.client().listActiveSessions(s.admin.projectId)).some((x) => x.id === sessionId && x.participants?.agent === 1));
    const active = (await s.client().listActiveSessions(s.admin.projectId)).find((x) => x.id === sessionId)!;
    expect(active).toMatchObject({ roomId: room.id, roomName: "s-life", isActive: true, participants: { user: 1, agent: 1 } });
    expect(active.createdAt).toBeInstanceOf(Date);
    const started = events.find((e) => e.type === "room.started" && e.data.session_id === sessionId)!;
    expect(started.data).toMatchObject({ room_name: "s-life", room_url: roomWsUrl(s, "s-life"), room_id: room.id });
    expect(started.project_id).toBe(s.admin.projectId);

    a.messaging.start();
    await within(a.messaging.broadcastMessage({ type: "hello", message: {} }));
    await a.queues.send("q", { x: 1 }, { create: true });
    a.dispose();
    b.dispose();
    await until(async () => !(await s.client().listActiveSessions(s.admin.projectId)).some((x) => x.id === sessionId), 10_000, "session end");
    const ended = events.find((e) => e.type === "room.ended" && e.data.session_id === sessionId)!;
    expect(ended.data).toMatchObject({ room_name: "s-life", reason: "empty" });
    // Participant time (the session's other usage, e.g. queue messages sent through the toolkit, has its own types).
    const usage = events.filter((e) => e.type === "usage.recorded" && e.data.session_id === sessionId && e.data.usage_type === "room");
    expect(usage.map((u) => u.data.role).sort()).toEqual(["agent", "user"]);
    for (const u of usage) expect(u.data).toMatchObject({ usage_type: "room", unit: "participant_second", quantity: expect.any(Number) });

    const recent = await s.client().listRecentSessions(s.admin.projectId);
    expect(recent.find((x) => x.id === sessionId)).toMatchObject({ isActive: false, participants: { user: 1, agent: 1 } });

    const got = await s.client().getSession(s.admin.projectId, sessionId);
    expect(got).toMatchObject({ id: sessionId, room_name: "s-life", room_id: room.id, is_active: false, end_reason: "empty" });
    expect((got as any).participant_list.map((p: any) => [p.name, p.role])).toEqual([
      ["u1", "user"],
      ["ag", "agent"],
    ]);
    expect((got as any).participant_seconds).toBeGreaterThan(0);

    const evs = await s.client().listSessionEvents(s.admin.projectId, sessionId);
    expect(evs.map((e) => e.type)).toEqual(["room.started", "participant.joined", "participant.joined", "participant.left", "participant.left", "room.ended"]);
    expect(evs[1].data).toMatchObject({ name: "u1", role: "user", participant_id: expect.any(String) });
    expect(evs[3].data).toMatchObject({ seconds: expect.any(Number), close_code: 1000 });

    const metrics = await s.client().listSessionMetrics(s.admin.projectId, sessionId);
    expect(metrics.filter((m: any) => m.name === "room.participants").map((m: any) => m.value)).toEqual([1, 2, 1, 0]);
    expect(metrics.filter((m: any) => m.name === "room.messages").at(-1)).toMatchObject({ value: 1 });
    const sent = metrics.filter((m: any) => m.name === "room.queue.sent");
    expect(sent.at(-1)).toMatchObject({ kind: "sum", value: 1, source: "server" });
    expect(metrics.filter((m: any) => m.name === "room.bytes_out").at(-1)!.value).toBeGreaterThan(0);

    // the next participant starts a new session
    const c = track(await joinRoom(roomWsUrl(s, "s-life"), await mintToken(s.admin.apiKey, "s-life")));
    expect(c.sessionId).not.toBe(sessionId);
    const byRoom = await s.http("GET", `${P(s)}/sessions?room_id=${room.id}&limit=10`);
    expect(byRoom.json.sessions.map((x: any) => x.id)).toEqual([c.sessionId, sessionId]);
    const byName = await s.http("GET", `${P(s)}/sessions?room_id=s-life&limit=1`);
    expect(byName.json.sessions.map((x: any) => x.id)).toEqual([c.sessionId]);
  });

  it("terminate closes every socket with code 1000 (no reconnect) and ends the session", async () => {
    const { room: a } = await connectAndJoin(s, "s-term");
    const b = await joinRoom(roomWsUrl(s, "s-term"), await mintToken(s.admin.apiKey, "s-term"), { reconnectTimeout: null });
    const sessionId = a.sessionId!;
    await s.client().terminateSession(s.admin.projectId, sessionId);
    await within(a.waitForClose(), 5000, "a closed");
    await within(b.waitForClose(), 5000, "b closed");
    expect(a.closeKind).toBe("server");
    expect(b.closeKind).toBe("server");
    const got = await s.client().getSession(s.admin.projectId, sessionId);
    expect(got).toMatchObject({ is_active: false, end_reason: "terminated", participants: { agent: 1 } });
    // Python form: JSON content type, no body; idempotent
    const again = await s.http("POST", `${P(s)}/sessions/${sessionId}/terminate`, { headers: { "content-type": "application/json" } });
    expect([again.status, again.text]).toEqual([204, ""]);
  });

  it("deleting the room closes its sockets with 1000 and ends its session; the session stays, its room_id null", async () => {
    const a = await joinRoom(roomWsUrl(s, "s-del"), await mintToken(s.admin.apiKey, "s-del"));
    const sessionId = a.sessionId!;
    const room = await s.client().getRoom(s.admin.projectId, "s-del");
    await a.storage.upload("f.txt", Buffer.from("bye"));
    await s.client().deleteRoom(s.admin.projectId, room.id);
    await within(a.waitForClose(), 5000, "closed by deletion");
    expect(a.closeKind).toBe("server");
    const got = await s.client().getSession(s.admin.projectId, sessionId);
    expect(got).toMatchObject({ is_active: false, end_reason: "room_deleted", room_id: null, room_name: "s-del" });
    expect(events.some((e) => e.type === "room.ended" && e.data.session_id === sessionId)).toBe(true);
  });

  it("authorization and bad input on every session route", async () => {
    const a = track(await joinRoom(roomWsUrl(s, "s-auth"), await mintToken(s.admin.apiKey, "s-auth")));
    const sid = a.sessionId!;
    const routes: [string, string][] = [
      ["GET", `${P(s)}/sessions/active`],
      ["GET", `${P(s)}/sessions`],
      ["GET", `${P(s)}/sessions/${sid}`],
      ["GET", `${P(s)}/sessions/${sid}/events`],
      ["GET", `${P(s)}/sessions/${sid}/spans`],
      ["GET", `${P(s)}/sessions/${sid}/metrics`],
    ];
    const member = await s.user({});
    const developer = await s.user({ is_developer: true });
    const admin = await s.user({ is_admin: true });
    const other = await s.otherProject();
    const participant = await mintToken(s.admin.apiKey, "s-auth");
    for (const [m, path] of routes) {
      expect((await s.http(m, path, { token: null })).status, path).toBe(401);
      expect((await s.http(m, path, { token: "garbage" })).status, path).toBe(401);
      expect((await s.http(m, path, { token: member.token })).status, path).toBe(403);
      expect((await s.http(m, path, { token: participant })).status, path).toBe(403);
      expect((await s.http(m, path, { token: developer.token })).status, path).toBe(200);
      expect((await s.http(m, path, { token: admin.token })).status, path).toBe(200);
      expect((await s.http(m, path, { token: s.admin.userToken })).status, path).toBe(200);
      expect((await s.http(m, path, { token: other.apiKey })).status, path).toBe(404);
    }
    const term = `${P(s)}/sessions/${sid}/terminate`;
    expect((await s.http("POST", term, { token: null })).status).toBe(401);
    expect((await s.http("POST", term, { token: member.token })).status).toBe(403);
    expect((await s.http("POST", term, { token: other.apiKey })).status).toBe(404);
    // another project cannot see this session even by id, under its own project either
    expect((await s.http("GET", `/accounts/projects/${other.projectId}/sessions/${sid}`, { token: other.apiKey })).status).toBe(404);
    expect((await s.http("GET", `/accounts/projects/${other.projectId}/sessions`, { token: other.apiKey })).json).toEqual({ sessions: [] });

    const bad = await s.http("GET", `${P(s)}/sessions?limit=0`);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/limit/);
    expect((await s.http("GET", `${P(s)}/sessions?limit=abc`)).status).toBe(400);
    expect((await s.http("GET", `${P(s)}/sessions?limit=5000`)).status).toBe(200);
    expect((await s.http("GET", `${P(s)}/sessions/not-a-uuid`)).status).toBe(404);
    expect((await s.http("GET", `${P(s)}/sessions/00000000-0000-4000-8000-000000000000/events`)).status).toBe(404);
    expect((await s.http("POST", `${P(s)}/sessions/00000000-0000-4000-8000-000000000000/terminate`)).status).toBe(404);
    expect((await s.http("POST", term, { body: "{broken", headers: { "content-type": "application/json" } })).status).toBe(400);
  });

  describe("OTLP/HTTP receiver", () => {
    let token: string;
    let sessionId: string;
    const resource = resourceFromAttributes({ "service.name": "test-agent" });

    beforeAll(async () => {
      token = await mintToken(s.admin.apiKey, "s-otlp", { name: "otel-agent" });
      const r = track(await joinRoom(roomWsUrl(s, "s-otlp"), token));
      sessionId = r.sessionId!;
    });

    const post = (signal: string, body: Uint8Array | Buffer | string, type: string, headers: Record<string, string> = {}, bearer: string | null = token) =>
      fetch(`${s.url}/v1/${signal}`, {
        method: "POST",
        headers: { "content-type": type, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...headers },
        body: body as BodyInit,
      });

    function makeSpans() {
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const tracer = provider.getTracer("test");
      const parent = tracer.startSpan("llm.call", { attributes: { model: "gpt", tokens: 42, ok: true } });
      const child = tracer.startSpan("tool.run", { attributes: { tool: "search" } }, trace.setSpan(context.active(), parent));
      child.end();
      parent.end();
      return exporter.getFinishedSpans();
    }

    it("takes protobuf traces (official SDK + serializer) and lists them with the contract's keys", async () => {
      const spans = makeSpans();
      const res = await post("traces", ProtobufTraceSerializer.serializeRequest(spans)!, "application/x-protobuf");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/x-protobuf");
      const listed = await s.client().listSessionSpans(s.admin.projectId, sessionId);
      const parent = spans.find((x) => x.name === "llm.call")!;
      const child = spans.find((x) => x.name === "tool.run")!;
      const got = listed.find((x: any) => x.span_name === "tool.run") as any;
      expect(got).toMatchObject({
        trace_id: child.spanContext().traceId,
        span_id: child.spanContext().spanId,
        parent_span_id: parent.spanContext().spanId,
        span_name: "tool.run",
        name: "tool.run",
        span_attributes: { tool: "search" },
        resource_attributes: expect.objectContaining({ "service.name": "test-agent" }),
        participant_name: "otel-agent",
      });
      expect(Number.isInteger(got.duration)).toBe(true);
      expect(new Date(got.created_at).getTime()).toBeGreaterThan(Date.now() - 60_000);
      const top = listed.find((x: any) => x.span_name === "llm.call") as any;
      expect(top.parent_span_id).toBeNull();
      expect(top.span_attributes).toEqual({ model: "gpt", tokens: 42, ok: true });
    });

    it("takes JSON traces, gzip-compressed ones too", async () => {
      const spans = makeSpans();
      const json = JsonTraceSerializer.serializeRequest(spans)!;
      expect((await post("traces", json, "application/json")).status).toBe(200);
      const res = await post("traces", gzipSync(Buffer.from(json)), "application/json", { "content-encoding": "gzip" });
      expect([res.status, await res.json()]).toEqual([200, {}]);
      const listed = await s.client().listSessionSpans(s.admin.projectId, sessionId);
      expect(listed.filter((x: any) => x.span_id === spans[0].spanContext().spanId)).toHaveLength(2);
    });

    it("takes metrics (protobuf) and logs (JSON) from the official SDKs", async () => {
      const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
      const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
      const mp = new MeterProvider({ resource, readers: [reader] });
      const meter = mp.getMeter("test");
      meter.createCounter("agent.tokens").add(5, { model: "m1" });
      const h = meter.createHistogram("agent.latency", { unit: "ms" });
      h.record(10);
      h.record(30);
      await reader.forceFlush();
      const rm = exporter.getMetrics()[0];
      await mp.shutdown();
      expect((await post("metrics", ProtobufMetricsSerializer.serializeRequest(rm)!, "application/x-protobuf")).status).toBe(200);
      const metrics = await s.client().listSessionMetrics(s.admin.projectId, sessionId);
      expect(metrics.find((m: any) => m.name === "agent.tokens")).toMatchObject({
        kind: "sum",
        value: 5,
        attributes: { model: "m1" },
        source: "otlp",
        participant_name: "otel-agent",
      });
      expect(metrics.find((m: any) => m.name === "agent.latency")).toMatchObject({
        kind: "histogram",
        unit: "ms",
        value: 40,
        data: expect.objectContaining({ count: 2 }),
      });

      const lexp = new InMemoryLogRecordExporter();
      const lp = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor(lexp)] });
      lp.getLogger("test").emit({ severityNumber: 9, severityText: "INFO", body: "agent says hi", attributes: { step: 1 } });
      const logs = JsonLogsSerializer.serializeRequest(lexp.getFinishedLogRecords() as any)!;
      expect((await post("logs", logs, "application/json")).status).toBe(200);
      const evs = await s.client().listSessionEvents(s.admin.projectId, sessionId);
      expect(evs.find((e) => e.type === "log")?.data).toMatchObject({
        severity_text: "INFO",
        body: "agent says hi",
        attributes: { step: 1 },
        participant_name: "otel-agent",
      });
    });

    it("needs a participant JWT of an existing room, and refuses bodies it cannot read", async () => {
      const body = JsonTraceSerializer.serializeRequest(makeSpans())!;
      expect((await post("traces", body, "application/json", {}, null)).status).toBe(401);
      expect((await post("traces", body, "application/json", {}, "garbage")).status).toBe(401);
      expect((await post("traces", body, "application/json", {}, s.admin.apiKey)).status).toBe(401);
      const noRoom = await post("traces", body, "application/json", {}, await mintToken(s.admin.apiKey, "never-created"));
      expect(noRoom.status).toBe(404);
      const bad = await post("traces", "{nope", "application/json");
      expect([bad.status, (await bad.json()).error.message]).toEqual([400, "the body is not valid JSON"]);
      const badPb = await post("traces", Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), "application/x-protobuf");
      expect(badPb.status).toBe(400);
      const badGz = await post("metrics", Buffer.from("not gzip"), "application/json", { "content-encoding": "gzip" });
      expect(badGz.status).toBe(400);
      // a room of another project's key, same name: that project has no such room
      const other = await s.otherProject();
      expect((await post("logs", "{}", "application/json", {}, await mintToken(other.apiKey, "s-otlp"))).status).toBe(404);
    });
  });
});
