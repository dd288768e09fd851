import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request as httpRequest } from "node:http";
import { gzipSync, deflateSync } from "node:zlib";
import { startServer, type TestServer } from "./helpers/server.js";
import { connectAndJoin, type OfficialRoom } from "./helpers/room-client.js";
import { iso, MAX_TIME_MS } from "../src/core/clock.js";
import { jsonTooDeep, MAX_JSON_DEPTH } from "../src/core/json.js";
import { redactUrl } from "../src/core/redact.js";
import { INT_MAX } from "../src/core/http.js";

/**
 * Issue 13 part 1: classes of hostile input that used to be a 5xx (or an unbounded cost), each fixed once at its root:
 * integer query bounds, JSON depth at parsing, timestamps in and out of the store, inflation under the body limit,
 * Fastify's and Node's own errors in our shape, short quotes of the input in messages, secrets out of the log.
 */
type Resp = { status: number; headers: Record<string, string | string[] | undefined>; text: string; json: any };

/** Raw HTTP (node:http): paths and headers exactly as given, which fetch would normalize or refuse. */
function raw(s: TestServer, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Resp> {
  const u = new URL(s.url);
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: u.hostname, port: u.port, method, path, headers, insecureHTTPParser: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(body);
  });
}

const inShape = (r: { json: any }) => {
  expect(Object.keys(r.json ?? {})).toEqual(["error"]);
  expect(r.json.error.code).toMatch(/^[a-z_]+$/);
  expect(typeof r.json.error.message).toBe("string");
};

describe("hostile input: no 5xx, one error shape, bounded work", () => {
  let s: TestServer;
  let doc: any;
  const logLines: string[] = [];
  const rooms: OfficialRoom[] = [];
  let P: string;

  beforeAll(async () => {
    s = await startServer({
      env: { MESHAGENT_LOG_LEVEL: "info", MESHAGENT_OTLP_BODY_LIMIT: String(1024 * 1024) },
      logStream: { write: (line: string) => void logLines.push(line) },
    });
    P = `/accounts/projects/${s.admin.projectId}`;
    doc = (await s.http("GET", "/openapi.json")).json;
  });
  afterAll(async () => {
    for (const r of rooms) r.dispose();
    await s?.close();
  });

  describe("integer query parameters", () => {
    it("every integer query parameter of /openapi.json declares a maximum", () => {
      const unbounded: string[] = [];
      for (const [path, methods] of Object.entries<any>(doc.paths))
        for (const [method, op] of Object.entries<any>(methods))
          for (const p of op.parameters ?? [])
            if (p.in === "query" && (p.schema?.type === "integer" || p.schema?.type === "number") && !(p.schema.maximum <= MAX_TIME_MS))
              unbounded.push(`${method.toUpperCase()} ${path} ?${p.name}`);
      expect(unbounded).toEqual([]);
    });

    it("a huge, infinite or negative integer is a 400 naming the parameter on every route that takes one", async () => {
      let checked = 0;
      for (const [path, methods] of Object.entries<any>(doc.paths)) {
        const op = methods.get;
        if (!op || /\{(?!project_id\})/.test(path)) continue;
        for (const p of op.parameters ?? []) {
          if (p.in !== "query" || p.schema?.type !== "integer") continue;
          for (const v of ["99999999999999999999", "1e309", "-1e309", String(INT_MAX + 1), "-1", "1.5"]) {
            const r = await s.http("GET", `${path.replace("{project_id}", s.admin.projectId)}?${p.name}=${v}`);
            expect(r.status, `${path} ?${p.name}=${v}: ${r.text}`).toBe(400);
            inShape(r);
            expect(r.json.error.message, `${path} ?${p.name}=${v}`).toContain(p.name);
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(40);
    });
  });

  describe("JSON depth, checked once at parsing", () => {
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    const deepObj = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);

    it("the scan counts nesting outside strings only", () => {
      expect(jsonTooDeep(deep(MAX_JSON_DEPTH))).toBe(false);
      expect(jsonTooDeep(deep(MAX_JSON_DEPTH + 1))).toBe(true);
      expect(jsonTooDeep(JSON.stringify({ s: "[[[[[[".repeat(100) + '\\"{{{{' }))).toBe(false);
      expect(jsonTooDeep(JSON.stringify({ s: 'a\\"' }) + deep(65))).toBe(true);
    });

    it("a body nested 5,000 deep is a 400 on every JSON route that walks bodies, before any handler", async () => {
      const targets: [string, string][] = [
        ["PUT", `${P}/settings`],
        ["POST", `${P}/rooms`],
        ["POST", `${P}/shares`],
        ["POST", `${P}/webhooks`],
        ["POST", `${P}/room-grants`],
        ["POST", "/accounts/projects"],
      ];
      for (const [method, path] of targets)
        for (const body of [deep(5000), deepObj(5000), `{"settings":${deepObj(5000)}}`, `{"name":"x","metadata":${deep(65)}}`]) {
          const r = await s.http(method, path, { body, headers: { "content-type": "application/json" } });
          expect(r.status, `${method} ${path}: ${r.text}`).toBe(400);
          inShape(r);
          expect(r.json.error.message).toMatch(/deeper than 64/);
        }
    });

    it("a body at the depth limit is parsed and handled", async () => {
      const nested = JSON.parse(deepObj(MAX_JSON_DEPTH - 1));
      const r = await s.http("PUT", `${P}/settings`, { json: nested });
      expect(r.status, r.text).toBeLessThan(300);
    });

    it("a JSON body with a Content-Encoding is a 415 (no route inflates JSON)", async () => {
      const r = await s.http("PUT", `${P}/settings`, { body: gzipSync("{}"), headers: { "content-type": "application/json", "content-encoding": "gzip" } });
      expect(r.status).toBe(415);
      inShape(r);
    });
  });

  describe("OTLP: timestamps, depth and compressed bodies", () => {
    let jwt: string;
    let sessionId: string;
    const post = (signal: string, body: Buffer | string, headers: Record<string, string> = {}) =>
      s.http("POST", `/v1/${signal}`, { token: jwt, body, headers: { "content-type": "application/json", ...headers } });
    const spanBody = (start: unknown, end: unknown, extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        resourceSpans: [
          {
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: "0af7651916cd43dd8448eb211c80319c",
                    spanId: "b7ad6b7169203331",
                    name: "hostile",
                    startTimeUnixNano: start,
                    endTimeUnixNano: end,
                    ...extra,
                  },
                ],
              },
            ],
          },
        ],
      });

    beforeAll(async () => {
      await s.client().createRoom({ projectId: s.admin.projectId, name: "hostile-otlp" });
      const { room, info } = await connectAndJoin(s, "hostile-otlp");
      rooms.push(room);
      jwt = info.jwt;
      sessionId = (await s.client().listActiveSessions(s.admin.projectId)).find((x) => x.roomName === "hostile-otlp")!.id;
    });

    it("spans with times beyond the date range are clamped at ingest and list_session_spans keeps working", async () => {
      for (const [start, end] of [
        ["99999999999999999999999999999", "999999999999999999999999999999"],
        [1e300, 1e301],
        ["18446744073709551615", "0"],
        [-5, "1e309"],
      ]) {
        const r = await post("traces", spanBody(start, end, { kind: 1e300, status: { code: 2 ** 40 } }));
        expect(r.status, r.text).toBe(200);
      }
      const list = await s.http("GET", `${P}/sessions/${sessionId}/spans`);
      expect(list.status, list.text).toBe(200);
      const mine = list.json.spans.filter((x: any) => x.name === "hostile");
      expect(mine.length).toBe(4);
      for (const sp of mine) {
        expect(Number.isFinite(Date.parse(sp.created_at))).toBe(true);
        expect(Number.isSafeInteger(sp.duration)).toBe(true);
        expect(sp.kind).toBe(0);
      }
      // metrics and logs with hostile times and values
      const metric = JSON.stringify({
        resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: "m", gauge: { dataPoints: [{ timeUnixNano: "9".repeat(60), asDouble: "@INF@" }] } }] }] }],
      }).replace('"@INF@"', "1e309"); // JSON text may say 1e309 (Infinity once parsed)
      expect((await post("metrics", metric)).status).toBe(200);
      const log = JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: 1e300, body: { stringValue: "x" } }] }] }] });
      expect((await post("logs", log)).status).toBe(200);
      expect((await s.http("GET", `${P}/sessions/${sessionId}/metrics`)).status).toBe(200);
      expect((await s.http("GET", `${P}/sessions/${sessionId}/events`)).status).toBe(200);
    });

    it("a stored time outside the date range still renders (iso clamps, never throws)", async () => {
      expect(() => iso(1e300)).not.toThrow();
      expect(iso(Number.NaN)).toBe("1970-01-01T00:00:00.000Z");
      await s.ctx.sessions.addSpans(sessionId, [
        {
          session_id: sessionId,
          trace_id: "t",
          span_id: "s",
          parent_span_id: null,
          name: "stored-out-of-range",
          kind: 0,
          start_ms: 9e15,
          duration_ns: 0,
          status_code: 0,
          status_message: null,
          attributes: "{}",
          resource_attributes: "{}",
          participant_name: null,
        },
      ]);
      const list = await s.http("GET", `${P}/sessions/${sessionId}/spans`);
      expect(list.status, list.text).toBe(200);
      expect(list.json.spans.find((x: any) => x.name === "stored-out-of-range").created_at).toBe(iso(MAX_TIME_MS));
    });

    it("OTLP text with NUL characters is stored (as U+FFFD in text columns) and listed", async () => {
      const r = await post(
        "traces",
        spanBody("1700000000000000000", "1700000000100000000", { name: "nul\u0000span", status: { code: 1, message: "m\u0000" } }),
      );
      expect(r.status, r.text).toBe(200);
      const metric = JSON.stringify({
        resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: "n\u0000", unit: "\u0000", gauge: { dataPoints: [{ asInt: "1" }] } }] }] }],
      });
      expect((await post("metrics", metric)).status).toBe(200);
      const list = await s.http("GET", `${P}/sessions/${sessionId}/spans`);
      expect(list.status).toBe(200);
      expect(list.json.spans.some((x: any) => x.name === "nul\ufffdspan")).toBe(true);
    });

    it("an OTLP/JSON body nested deeper than 64 is a 400", async () => {
      const r = await post("traces", `{"resourceSpans":${"[".repeat(5000)}${"]".repeat(5000)}}`);
      expect(r.status).toBe(400);
      inShape(r);
    });

    it("a compressed body is inflated under the limit: a gzip bomb is a 413 as soon as it passes the limit", async () => {
      // 16 gzip members of 64 MiB of zeros: ~1 MB on the wire, 1 GiB inflated. The limit here is 1 MiB.
      const member = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
      const bomb = Buffer.concat(Array.from({ length: 16 }, () => member));
      expect(bomb.length).toBeLessThan(1024 * 1024);
      const rss = process.memoryUsage().rss;
      const cpu = process.cpuUsage();
      const t0 = Date.now();
      const r = await post("traces", bomb, { "content-encoding": "gzip" });
      expect(r.status, r.text).toBe(413);
      inShape(r);
      expect(r.json.error.message).toMatch(/inflated/);
      expect(Date.now() - t0).toBeLessThan(3000);
      // The inflater stopped: no CPU burnt on the remaining ~1 GiB after the answer, no memory kept.
      await new Promise((res) => setTimeout(res, 500));
      const used = process.cpuUsage(cpu);
      expect((used.user + used.system) / 1000).toBeLessThan(1500);
      expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 1024 * 1024);
      const deflateBomb = deflateSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
      const d = await post("traces", deflateBomb, { "content-encoding": "deflate" });
      expect(d.status).toBe(413);
      inShape(d);
      // what fits the limit once inflated is taken
      const ok = await post("traces", gzipSync(spanBody("1700000000000000000", "1700000000100000000")), { "content-encoding": "gzip" });
      expect(ok.status, ok.text).toBe(200);
      const bad = await post("traces", Buffer.from("not gzip at all"), { "content-encoding": "gzip" });
      expect(bad.status).toBe(400);
      inShape(bad);
      const br = await post("traces", Buffer.from("x"), { "content-encoding": "br" });
      expect(br.status).toBe(415);
      inShape(br);
      expect((await s.http("GET", "/healthz")).status).toBe(200);
    });
  });

  describe("NUL characters (PostgreSQL's text cannot hold one): refused alike on both stores", () => {
    it("a %00 anywhere in the URL is a 400", async () => {
      for (const path of [`${P}/rooms/a%00b`, `/accounts/profiles/${s.admin.userId}%00`, `${P}/rooms?filter=%00`, `${P}/users/x%00`]) {
        for (const method of ["GET", "DELETE"]) {
          const r = await s.http(method, path);
          expect(r.status, `${method} ${path}: ${r.text}`).toBe(400);
          inShape(r);
          expect(r.json.error.message).toMatch(/NUL/);
        }
      }
    });

    it("a JSON string with \\u0000 is a 400; an escaped backslash before u0000 is not a NUL", async () => {
      const r = await s.http("POST", `${P}/rooms`, { json: { name: "a\u0000b" } });
      expect(r.status).toBe(400);
      inShape(r);
      expect(r.json.error.message).toMatch(/NUL/);
      const ok = await s.http("PUT", `${P}/settings`, { json: { note: "C:\\u0000" } });
      expect(ok.status, ok.text).toBeLessThan(300);
    });
  });

  describe("Fastify's and Node's own errors in our shape", () => {
    it("bad percent-encoding in the path is a 400 bad_url", async () => {
      for (const path of [`${P}/rooms/%zz`, "/accounts/projects/%E0%A4%A", "/%"]) {
        const r = await raw(s, "GET", path, { authorization: `Bearer ${s.admin.apiKey}` });
        expect(r.status, path).toBe(400);
        inShape(r);
      }
    });

    it("a path parameter over 1000 characters is a 414 uri_too_long; a long one below is validated by its route", async () => {
      const r = await s.http("GET", `${P}/rooms/${"a".repeat(1500)}`);
      expect(r.status).toBe(414);
      inShape(r);
      expect(r.json.error.code).toBe("uri_too_long");
      const mid = await s.http("GET", `${P}/rooms/${"a".repeat(500)}`);
      expect(mid.status).toBeLessThan(500);
      inShape(mid);
    });

    it("oversized headers are a 431 with our JSON body", async () => {
      const r = await raw(s, "GET", "/healthz", { "x-big": "a".repeat(20_000) });
      expect(r.status).toBe(431);
      inShape(r);
      expect(r.json.error.code).toBe("request_header_fields_too_large");
    });

    it("an unsupported media type and an unknown route are in our shape", async () => {
      const r = await s.http("POST", `${P}/rooms`, { body: "x", headers: { "content-type": "text/x-unknown;" + "a".repeat(3000) } });
      expect(r.status).toBe(415);
      inShape(r);
      expect(r.json.error.message.length).toBeLessThan(500);
      const nf = await s.http("GET", `/nope/${"b".repeat(900)}`);
      expect(nf.status).toBe(404);
      inShape(nf);
      expect(nf.json.error.message.length).toBeLessThan(500);
    });
  });

  describe("messages quote at most a short prefix of the input", () => {
    const huge = "x".repeat(100_000);
    const cases: [string, string, unknown][] = [
      ["POST", "/users", { email: `${huge}@example` }],
      ["POST", "/rooms", { name: huge }],
      ["POST", "/mailboxes", { address: `${huge}`, room: "r", queue: "q" }],
      ["GET", `/rooms?order_by=${huge}`, undefined],
    ];
    for (const [method, path, json] of cases)
      it(`${method} ${path.slice(0, 30)} with a 100 KB value`, async () => {
        const r = await s.http(method, P + path, { json });
        expect(r.status, r.text.slice(0, 200)).toBeGreaterThanOrEqual(400);
        expect(r.status).toBeLessThan(500);
        inShape(r);
        expect(r.text.length).toBeLessThan(600);
        expect(r.json.error.message).not.toContain("x".repeat(65));
      });
  });

  describe("query strings are redacted in the log", () => {
    it("redactUrl keeps names and other parameters, drops secret values", () => {
      expect(redactUrl("/a/b?expires=1&signature=abc&token=t&code=c&api_key=k&client_secret=s&x=1")).toBe(
        "/a/b?expires=1&signature=[redacted]&token=[redacted]&code=[redacted]&api_key=[redacted]&client_secret=[redacted]&x=1",
      );
      expect(redactUrl("/plain")).toBe("/plain");
      expect(redactUrl("/q?%74oken=t")).toBe("/q?%74oken=[redacted]");
    });

    it("a request's secrets never reach the log; the rest of its URL does", async () => {
      logLines.length = 0;
      const secrets = ["SIGNATURE-SECRET-1", "TOKEN-SECRET-2", "CODE-SECRET-3", "KEY-SECRET-4", "SECRET-SECRET-5"];
      const url = `/room-storage/r/f.txt?expires=1&signature=${secrets[0]}&token=${secrets[1]}&code=${secrets[2]}&api_key=${secrets[3]}&my_secret=${secrets[4]}&visible=yes`;
      const r = await s.http("GET", url, { token: null });
      expect(r.status).toBeGreaterThanOrEqual(400);
      const log = logLines.join("");
      expect(log).toContain("/room-storage/r/f.txt?expires=1&signature=[redacted]");
      expect(log).toContain("visible=yes");
      for (const v of secrets) expect(log).not.toContain(v);
    });
  });

  it("the server is healthy after all of that", async () => {
    expect((await s.http("GET", "/healthz")).json).toEqual({ ok: true });
  });
});
