import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequire } from "node:module";
import { Validator } from "@seriousme/openapi-schema-validator";
import { startServer, type TestServer } from "./helpers/server.js";
import { createRoom } from "./helpers/rooms.js";
import { RawRoomClient } from "./helpers/raw-room.js";
import { mintToken, roomWsUrl } from "./helpers/room-client.js";
import { until } from "./helpers/receiver.js";
import { freePort, spawnServer } from "./helpers/process.js";

type Sample = { labels?: Record<string, string>; value?: string; count?: string; buckets?: Record<string, string> };
type Family = { name: string; type: string; help: string; metrics: Sample[] };
const parsePrometheus = createRequire(import.meta.url)("parse-prometheus-text-format") as (text: string) => Family[];

/** One sample's value: the first of `name` whose labels include `labels`. */
function value(families: Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  const f = families.find((x) => x.name === name);
  const m = f?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  if (!m) return undefined;
  return Number(m.value ?? m.count);
}

describe("GET /metrics (Prometheus text format)", () => {
  let s: TestServer;
  const log: string[] = [];
  beforeAll(async () => {
    s = await startServer({
      env: { MESHAGENT_LOG_LEVEL: "info", MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true" },
      logStream: { write: (line) => void log.push(line) },
    });
  });
  afterAll(() => s.close());

  let lastText = "";
  const scrape = async () => {
    const r = await s.http("GET", "/metrics", { token: null });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    lastText = r.text;
    return parsePrometheus(r.text);
  };

  it("parses, and counts requests by route template and status with latency histograms that move with traffic", async () => {
    const route = "/accounts/projects/:project_id";
    const before = value(await scrape(), "meshagent_http_requests_total", { route, status: "200", method: "GET" }) ?? 0;
    const client = s.client();
    for (let i = 0; i < 3; i++) await client.getProject(s.admin.projectId);
    await s.http("GET", `/accounts/projects/${crypto.randomUUID()}`); // another project's id: 404
    const m = await scrape();
    expect(value(m, "meshagent_http_requests_total", { route, status: "200", method: "GET" })).toBe(before + 3);
    expect(value(m, "meshagent_http_requests_total", { route, status: "404" })).toBeGreaterThanOrEqual(1);
    const hist = m.find((f) => f.name === "meshagent_http_request_duration_seconds")!;
    expect(hist.type).toBe("HISTOGRAM");
    // (The parser folds labelled histograms together: their series are read from the text.)
    const series = (suffix: string, extra = "") =>
      new RegExp(
        `^meshagent_http_request_duration_seconds_${suffix}\\{${extra}method="GET",route="${route.replace(/[/:]/g, (c) => `\\${c}`)}",status="200"\\} (\\S+)$`,
        "m",
      );
    expect(Number(series("count").exec(lastText)?.[1])).toBe(before + 3);
    expect(Number(series("bucket", 'le="\\+Inf",').exec(lastText)?.[1])).toBe(before + 3);
    expect(series("bucket", 'le="0.005",').test(lastText)).toBe(true);
    // Unmatched URLs share one label value: no unbounded label sets from scanners.
    await s.http("GET", "/no/such/path/" + crypto.randomUUID(), { token: null });
    const m2 = await scrape();
    expect(value(m2, "meshagent_http_requests_total", { route: "unmatched", status: "404" })).toBeGreaterThanOrEqual(1);
    expect(m2.find((f) => f.name === "meshagent_http_requests_total")!.metrics.some((x) => x.labels?.route?.includes("no/such"))).toBe(false);
    // Node's own: event-loop lag, heap, RSS; the build.
    expect(value(m2, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(value(m2, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(value(m2, "meshagent_build_info", { store: s.ctx.store.dialect })).toBe(1);
    expect(value(m2, "meshagent_db_pool_max")).toBeGreaterThanOrEqual(1);
  });

  it("reports active rooms and participants, queue depth, the webhook outbox and its failures, and scheduler lag", async () => {
    const room = `metrics-${Date.now()}`;
    const r = await createRoom(s.ctx, s.admin.projectId, room);
    const base = await scrape();
    const rooms0 = value(base, "meshagent_rooms_active")!;
    const people0 = value(base, "meshagent_room_participants")!;
    const c = await RawRoomClient.connect(roomWsUrl(s, room), await mintToken(s.admin.apiKey, room, { name: "metered" }));
    let m = await until(async () => {
      const x = await scrape();
      return value(x, "meshagent_room_participants")! >= people0 + 1 && x;
    }, "the participant in /metrics");
    expect(value(m, "meshagent_rooms_active")).toBe(rooms0 + 1);
    // The join is logged.
    expect(log.some((l) => l.includes(`metered joined room ${room}`))).toBe(true);
    c.close();
    await until(() => log.some((l) => l.includes(`metered left room ${room}`)), "the leave in the log");

    const q0 = value(m, "meshagent_queue_messages", { state: "all" })!;
    await s.ctx.queues.send(r.id, "jobs", { n: 1 }, { create: true });
    await s.ctx.queues.send(r.id, "jobs", { n: 2 });
    m = await scrape();
    expect(value(m, "meshagent_queue_messages", { state: "all" })).toBe(q0 + 2);
    expect(value(m, "meshagent_queue_messages", { state: "ready" })).toBeGreaterThanOrEqual(2);

    // A webhook whose endpoint refuses connections: the attempt fails, is counted and logged, and the delivery waits.
    const dead = await freePort();
    const failed0 = value(m, "meshagent_webhook_attempts_failed_total")!;
    const hook: any = await s.client().createWebhook(s.admin.projectId, { name: "dead", url: `http://127.0.0.1:${dead}/hook`, events: ["room.started"] });
    await createRoom(s.ctx, s.admin.projectId, `${room}-2`);
    const c2 = await RawRoomClient.connect(roomWsUrl(s, `${room}-2`), await mintToken(s.admin.apiKey, `${room}-2`));
    m = await until(async () => {
      const x = await scrape();
      return value(x, "meshagent_webhook_attempts_failed_total")! > failed0 && x;
    }, "a failed attempt in /metrics");
    expect(value(m, "meshagent_webhook_deliveries", { status: "pending" })).toBeGreaterThanOrEqual(1);
    expect(log.some((l) => l.includes("webhook delivery attempt 1 failed") && l.includes(hook.id))).toBe(true);
    c2.close();
    expect(value(m, "meshagent_webhook_backlog")).toBeGreaterThanOrEqual(0);
    expect(value(m, "meshagent_scheduler_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(value(m, "meshagent_scheduler_due_tasks")).toBeGreaterThanOrEqual(0);
    await s.client().deleteWebhook(s.admin.projectId, hook.id);
  });

  it("logs one line per request, error answers with their code, and health checks and /metrics only at debug", async () => {
    log.length = 0;
    await s.http("GET", "/healthz", { token: null });
    await s.http("GET", "/readyz", { token: null });
    await s.http("GET", "/metrics", { token: null });
    await s.http("GET", `/accounts/projects/${s.admin.projectId}`);
    await s.http("GET", "/accounts/projects", { token: "wrong" });
    await until(() => log.length >= 2, "two log lines");
    const lines = log.map((l) => JSON.parse(l));
    expect(lines.filter((l) => /\/(healthz|readyz|metrics)/.test(l.msg ?? ""))).toEqual([]);
    const ok = lines.filter((l) => l.msg?.startsWith(`GET /accounts/projects/${s.admin.projectId} 200`));
    expect(ok).toHaveLength(1);
    expect(ok[0]).toMatchObject({ level: 30, statusCode: 200, ip: "127.0.0.1", reqId: expect.any(String) });
    expect(ok[0].req).toBeUndefined(); // method and path are in msg: a short line
    const denied = lines.find((l) => l.msg?.startsWith("GET /accounts/projects 401"))!;
    expect(denied).toMatchObject({ code: "unauthorized", statusCode: 401 });
    expect(denied.msg).toMatch(/^GET \/accounts\/projects 401 unauthorized \d+\.\dms$/);
    // The bearer never reaches the log.
    expect(log.join("\n")).not.toContain(s.admin.apiKey);
  });
});

describe("/metrics settings", () => {
  it("MESHAGENT_METRICS_TOKEN guards it; MESHAGENT_METRICS=false removes it", async () => {
    const token = "metrics-token-0123456789";
    const a = await startServer({ env: { MESHAGENT_METRICS_TOKEN: token } });
    try {
      const no = await a.http("GET", "/metrics", { token: null });
      expect([no.status, no.json.error.code]).toEqual([401, "unauthorized"]);
      expect(no.json.error.message).toContain("MESHAGENT_METRICS_TOKEN");
      expect((await a.http("GET", "/metrics", { token: "metrics-token-wrong-0000" })).status).toBe(401);
      expect((await a.http("GET", "/metrics", { token })).status).toBe(200);
    } finally {
      await a.close();
    }
    const b = await startServer({ env: { MESHAGENT_METRICS: "false" } });
    try {
      expect((await b.http("GET", "/metrics", { token: null })).status).toBe(404);
      expect(b.ctx.metrics).toBeNull();
    } finally {
      await b.close();
    }
  });
});

describe("the OpenAPI document", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it("is valid OpenAPI 3.1 (checked by a maintained validator), with a servers entry and no two paths that differ only in a parameter name", async () => {
    const doc = (await s.http("GET", "/openapi.json", { token: null })).json;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.servers).toEqual([{ url: s.ctx.config.publicUrl, description: expect.any(String) }]);
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    const shapes = Object.keys(doc.paths).map((p) => p.replace(/\{[^}]+\}/g, "{}"));
    expect(new Set(shapes).size).toBe(shapes.length);
    // get_room (by name) and update_room/delete_room (by id) share one path; each says what the segment holds.
    const room = doc.paths["/accounts/projects/{project_id}/rooms/{room}"];
    expect(Object.keys(room).sort()).toEqual(["delete", "get", "put"]);
    expect(room.get.parameters.find((p: any) => p.name === "room").description).toContain("room name");
    expect(room.put.parameters.find((p: any) => p.name === "room").description).toContain("room id");
    // The interactive docs serve the same document.
    const ui = (await s.http("GET", "/docs/json", { token: null })).json;
    expect(Object.keys(ui.paths).sort()).toEqual(Object.keys(doc.paths).sort());
  });
});

describe("pretty logs", () => {
  it("MESHAGENT_LOG_FORMAT=pretty writes one short line per request", async () => {
    const srv = await spawnServer({ MESHAGENT_LOG_FORMAT: "pretty", MESHAGENT_LOG_LEVEL: "info" });
    try {
      await fetch(`${srv.url}/accounts/projects`);
      await fetch(`${srv.url}/healthz`);
      await until(() => srv.output().includes("GET /accounts/projects 401"), "the request line");
      const line = srv
        .output()
        .split("\n")
        .find((l) => l.includes("GET /accounts/projects 401"))!;
      expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: GET \/accounts\/projects 401 unauthorized \d+\.\dms$/);
      expect(srv.output()).not.toContain("GET /healthz");
      expect(srv.output()).not.toContain('{"level"');
    } finally {
      await srv.kill("SIGTERM");
    }
  }, 60_000);
});

describe("behind a reverse proxy (MESHAGENT_TRUST_PROXY)", () => {
  it("takes the client's address from X-Forwarded-For only from a trusted proxy", async () => {
    const addressOf = async (env: Record<string, string>) => {
      const lines: string[] = [];
      const srv = await startServer({ env: { MESHAGENT_LOG_LEVEL: "info", ...env }, logStream: { write: (l) => void lines.push(l) } });
      try {
        await srv.http("GET", `/accounts/projects/${srv.admin.projectId}`, { headers: { "x-forwarded-for": "203.0.113.9" } });
        const line = await until(() => lines.map((l) => JSON.parse(l)).find((l) => l.msg?.startsWith("GET /accounts/projects/")), "the request line");
        return line.ip;
      } finally {
        await srv.close();
      }
    };
    expect(await addressOf({})).toBe("127.0.0.1");
    expect(await addressOf({ MESHAGENT_TRUST_PROXY: "127.0.0.1" })).toBe("203.0.113.9");
    expect(await addressOf({ MESHAGENT_TRUST_PROXY: "10.0.0.0/8" })).toBe("127.0.0.1");
  }, 60_000);
});
