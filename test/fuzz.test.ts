import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request as httpRequest } from "node:http";
import { deflateSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { startServer, dialectName, type TestServer } from "./helpers/server.js";
import { connectAndJoin, type OfficialRoom } from "./helpers/room-client.js";
import { arbitraryFor, operations, resolve, type Operation, type Schema } from "./helpers/openapi.js";

/**
 * The fuzz suite (issue 13): fast-check generates requests for every operation of /openapi.json from its schema
 * (path parameters, queries, headers, bodies), valid and invalid (hostile strings, huge and negative numbers, 1e309,
 * deep and wide JSON, wrong types, broken percent-encoding, compressed bodies and small gzip bombs), and sends them,
 * 16 at a time over keep-alive, as several callers (the admin's API key, a member's user token, no bearer, a
 * participant token). The property of every batch: no response is a 5xx, every 4xx is in the error shape
 * {"error":{"code","message"}}, and GET /healthz answers throughout and at the end.
 *
 * MESHAGENT_FUZZ_REQUESTS sets the number of requests (default 20,000); MESHAGENT_FUZZ_SEED replays a run.
 */
const REQUESTS = Number(process.env.MESHAGENT_FUZZ_REQUESTS ?? 20_000);
const SEED = process.env.MESHAGENT_FUZZ_SEED ? Number(process.env.MESHAGENT_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const CONCURRENCY = 16;
const BODY_LIMIT = 256 * 1024;
const OTLP_LIMIT = 512 * 1024;

type Caller = "apiKey" | "member" | "none" | "participant";
interface FuzzRequest {
  op: string;
  method: string;
  path: string;
  caller: Caller;
  headers: Record<string, string>;
  body?: Buffer;
}
interface Result {
  status: number;
  text: string;
  ms: number;
}

// ------------------------------------------------------------------ hostile values

const LONG = "a".repeat(5000);
const HOSTILE_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "../../../../etc/passwd",
  "..%2f..%2fetc%2fpasswd",
  "%2e%2e/%2e%2e/",
  "/",
  "//",
  "./.",
  "\\..\\..\\windows",
  "C:\\x",
  "' OR 1=1 --",
  '"; DROP TABLE users; --',
  "<script>alert(1)</script>",
  "${jndi:ldap://x}",
  "{{7*7}}",
  "%s%s%n",
  "\u202e\u200b\ufeff",
  "\ud800",
  "\udfff\ud800",
  "💥".repeat(50),
  "é".normalize("NFD"),
  "\r\n\r\nHTTP/1.1 200 OK",
  "null",
  "true",
  "[]",
  "{}",
  "NaN",
  "-0",
  "__proto__",
  "constructor",
  "prototype",
  LONG,
  "x".repeat(1001),
  "a/".repeat(300),
  "*",
  "?",
  "#",
  "%",
  "%zz",
  "%E0%A4%A",
  "room-" + "a".repeat(70),
];
const HOSTILE_NUMBERS: unknown[] = [
  -1,
  -0,
  0,
  1.5,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 53,
  2 ** 63,
  2 ** 64,
  -(2 ** 63),
  1e300,
  -1e300,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  Number.MAX_VALUE,
  Number.EPSILON,
  "99999999999999999999",
  "1e309",
  "-1e309",
  "NaN",
  "Infinity",
  "0x10",
  "1_000",
  "  7  ",
];
/** Query/path text: numbers as text too. */
const HOSTILE_TEXT = [...HOSTILE_STRINGS, ...HOSTILE_NUMBERS.map(String)];

const deepArray = (n: number) => "[".repeat(n) + "]".repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);
/** Raw JSON texts a parser must survive. */
const HOSTILE_JSON_TEXT = [
  deepArray(5000),
  deepObject(5000),
  deepArray(65),
  deepObject(63),
  `{"settings":${deepObject(3000)}}`,
  `{"metadata":${deepArray(200)}}`,
  JSON.stringify(Array.from({ length: 20_000 }, (_, i) => i)),
  JSON.stringify(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]))),
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"a":1,"a":2}',
  "{not json",
  "[1,2",
  '"just a string"',
  "42",
  "null",
  "true",
  "1e309",
  '{"x":1e309}',
  "\ufeff{}",
  '{"x":"\\ud800"}',
  '{"x":"\u0000"}',
  " ",
];

// Bombs, made once: small on the wire, far over the limits once inflated.
const ZEROS = Buffer.alloc(8 * 1024 * 1024);
const GZIP_BOMB = gzipSync(ZEROS, { level: 9 });
const DEFLATE_BOMB = deflateSync(ZEROS, { level: 9 });
const GZIP_MEMBERS_BOMB = Buffer.concat(Array.from({ length: 8 }, () => GZIP_BOMB));

const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 3000, minLength: 1000 }) },
);
const hostileNumber = fc.oneof(fc.constantFrom(...HOSTILE_NUMBERS), fc.double(), fc.integer(), fc.bigInt().map(String));
/** A value of the wrong kind for whatever was expected. */
const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  hostileNumber,
  hostileString,
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
);
/** A leaf value: mostly valid, often hostile. */
const mixLeaf = (valid: fc.Arbitrary<unknown>, s: Schema): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 30, arbitrary: valid },
    { weight: 2, arbitrary: s.type === "integer" || s.type === "number" ? hostileNumber : hostileString },
    { weight: 1, arbitrary: wrongType },
  );

/** Text for a query parameter or a path segment. */
const textFor = (valid: fc.Arbitrary<unknown>): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 24, arbitrary: valid.map((v) => (typeof v === "string" ? v : (JSON.stringify(v) ?? ""))) },
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_TEXT) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  );

/** encodeURIComponent that also takes lone surrogates (as the UTF-8 of U+FFFD, like a browser). */
const pct = (t: string) =>
  [...Buffer.from(t, "utf8")]
    .map((b) => (/[A-Za-z0-9\-_.!~*'()]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`))
    .join("");

/** Percent-encoding, mostly right, sometimes broken or raw. */
const encodeArb = (text: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constant(pct(text)) },
    { weight: 1, arbitrary: fc.constantFrom("%", "%zz", "%E0%A4%A", "%C0%AF", "%ff%fe", "%00", "%2e%2e%2f").map((b) => pct(text) + b) },
    // raw (only what node:http lets through: no spaces or control characters)
    { weight: 1, arbitrary: fc.constant(text.replace(/[^\x21-\x7e]/g, (c) => pct(c))) },
  );

// ------------------------------------------------------------------ sending

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(base: URL, r: FuzzRequest): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({ host: base.hostname, port: base.port, method: r.method, path: r.path, headers: r.headers, agent, timeout: 15_000 }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size < 64 * 1024) chunks.push(c);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), ms: Date.now() - t0 }));
        res.on("error", () => resolve({ status: -1, text: "response stream error", ms: Date.now() - t0 }));
      });
    } catch (e) {
      // node:http refused the request itself (an invalid header or path): not sent, not counted
      return resolve({ status: 0, text: (e as Error).message, ms: 0 });
    }
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ status: -1, text: `connection error: ${e.message}`, ms: Date.now() - t0 }));
    req.end(r.body);
  });
}

/** The error shape: exactly {"error":{"code","message"}} with a snake_case code. */
function inShape(text: string): boolean {
  try {
    const j = JSON.parse(text);
    return (
      j !== null &&
      typeof j === "object" &&
      Object.keys(j).length === 1 &&
      typeof j.error?.code === "string" &&
      /^[a-z0-9_]+$/.test(j.error.code) &&
      typeof j.error.message === "string"
    );
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ the suite

describe(`fuzz: every operation of /openapi.json with generated input (${dialectName})`, () => {
  let s: TestServer;
  let doc: Schema;
  let ops: Operation[];
  let base: URL;
  let room: OfficialRoom | undefined;
  const tokens: Record<Caller, string | null> = { apiKey: null, member: null, none: null, participant: null };
  /** Ids seen in responses (rooms, keys, webhooks, …), so generated paths reach real resources. */
  const pool = new Set<string>();
  /** Ids of the fixtures: never used in a mutating call's path (the suite keeps its callers and room). */
  const fixtures = new Set<string>();
  const ROOM = "fuzz-room";

  beforeAll(async () => {
    s = await startServer({
      env: {
        MESHAGENT_BODY_LIMIT: String(BODY_LIMIT),
        MESHAGENT_OTLP_BODY_LIMIT: String(OTLP_LIMIT),
        MESHAGENT_WEBHOOK_ALLOW_PRIVATE: "true",
        // budgets far above what the suite sends: the limiter runs, the fuzzer is not throttled
        MESHAGENT_RATE_LIMIT: "10000000",
        MESHAGENT_RATE_LIMIT_AUTH: "10000000",
        MESHAGENT_RATE_LIMIT_STORAGE: "10000000",
      },
    });
    base = new URL(s.url);
    const pid = s.admin.projectId;
    await s.client().createRoom({ projectId: pid, name: ROOM });
    const member = await s.user({});
    const joined = await connectAndJoin(s, ROOM);
    room = joined.room;
    Object.assign(tokens, { apiKey: s.admin.apiKey, member: member.token, none: null, participant: joined.info.jwt });
    for (const id of [pid, s.admin.userId, member.userId]) fixtures.add(id);
    for (const path of [`/accounts/projects/${pid}/api-keys`, `/accounts/projects/${pid}/rooms`, `/accounts/projects/${pid}/sessions`])
      harvest((await s.http("GET", path)).text, true);
    doc = (await s.http("GET", "/openapi.json")).json;
    ops = operations(doc);
  });
  afterAll(async () => {
    room?.dispose();
    agent.destroy();
    await s?.close();
  });

  /** Collect ids from a response body (fixtures: mark them as untouchable). */
  function harvest(text: string, asFixture = false) {
    if (!text || text[0] !== "{" || text.length > 200_000) return;
    const walk = (v: unknown, depth: number) => {
      if (depth > 6 || v === null || typeof v !== "object") return;
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (typeof x === "string" && x.length <= 100 && (k === "id" || k.endsWith("_id") || k === "address" || k === "name")) {
          if (asFixture) fixtures.add(x);
          else if (pool.size < 500) pool.add(x);
        } else walk(x, depth + 1);
      }
    };
    try {
      walk(JSON.parse(text), 0);
    } catch {
      // not JSON
    }
  }

  /** The arbitrary of one operation's requests. */
  function requestsOf(o: Operation): fc.Arbitrary<FuzzRequest> {
    // PUT and DELETE never name a fixture (the suite's room, callers and keys stay as they are).
    const mutating = o.method === "PUT" || o.method === "DELETE";
    const poolArb = fc.nat().map((n) => {
      const ids = [...pool].filter((x) => !(mutating && fixtures.has(x)));
      return ids.length ? ids[n % ids.length]! : "missing";
    });
    const named = (name: string): fc.Arbitrary<unknown> | undefined => {
      if (name === "project_id") return fc.constantFrom(s.admin.projectId, s.admin.projectId, s.admin.projectId, "11111111-1111-4111-8111-111111111111");
      if (name === "room_name" || name === "room") return fc.oneof(fc.constant(ROOM), fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/));
      if (name === "queue" || name === "queue_name") return fc.constantFrom("q", "fuzz-queue");
      if (name === "*" || name === "path")
        return fc.oneof(fc.constantFrom("a.txt", "dir/b.bin", "dir/", ""), fc.stringMatching(/^[a-z]{1,8}(\/[a-z]{1,8}){0,3}\.txt$/));
      if (name === "address")
        return fc.oneof(
          poolArb,
          fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/).map((l) => `${l}@mail.example.com`),
        );
      if (/(^|_)id$/.test(name)) return fc.oneof(poolArb, fc.uuid());
      // what the services check beyond the schema: names, URLs, secrets, scopes
      if (name === "name") return fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}[a-z0-9]$/), fc.string({ minLength: 1, maxLength: 40 }));
      if (name === "url") return fc.constantFrom("http://127.0.0.1:9/hook", "http://localhost:9/a?b=c", "https://example.invalid/x", "ftp://x");
      if (name === "secret") return fc.string({ minLength: 8, maxLength: 40 });
      if (name === "permissions" || name === "api") return fc.constantFrom({}, { queues: { list: true } }, { storage: {} });
      if (name === "email") return fc.emailAddress();
      return undefined;
    };
    const params = (o.op.parameters ?? []) as Schema[];
    const pathParams = params.filter((p) => p.in === "path");
    const queryParams = params.filter((p) => p.in === "query");
    const body = resolve(o.op.requestBody?.content?.["application/json"]?.schema, doc);
    const protectedDelete = o.method === "DELETE" && o.path === "/accounts/projects/{project_id}";

    const pathArb = fc
      .tuple(
        ...pathParams.map((p) =>
          textFor(named(p.name) ?? arbitraryFor(p.schema, doc)).chain((t) => {
            if (protectedDelete && t === s.admin.projectId) t = "11111111-1111-4111-8111-111111111111";
            if (mutating && fixtures.has(t) && p.name !== "project_id") t = "missing";
            if (p.name === "*") return fc.constant(t.split("/").map(pct).join("/"));
            return fc.oneof({ weight: 40, arbitrary: encodeArb(t) }, { weight: 1, arbitrary: fc.constant("a".repeat(1200)) });
          }),
        ),
      )
      .map((values) => pathParams.reduce((path, p, i) => path.replace(`{${p.name}}`, values[i]!), o.path));

    const queryArb = fc
      .tuple(
        fc.tuple(
          ...queryParams.map((p) =>
            fc.option(
              textFor(named(p.name) ?? arbitraryFor(p.schema, doc)).map((t) => `${pct(p.name)}=${pct(t)}`),
              { freq: p.required ? 12 : 2 },
            ),
          ),
        ),
        fc.option(
          fc.constantFrom(
            "a=%zz",
            "%=1",
            "x=%E0%A4%A",
            "offset=1e309",
            "limit=99999999999999999999",
            "a[b]=1&a[c]=2",
            "x=1&x=2&x=3",
            "&&&",
            "=",
            "token=t&signature=s",
          ),
          { freq: 12 },
        ),
      )
      .map(([ps, junk]) => {
        const parts = [...(ps.filter(Boolean) as string[]), ...(junk ? [junk] : [])];
        return parts.length ? `?${parts.join("&")}` : "";
      });

    // Bodies: valid for the schema with hostile leaves, wrong-typed, raw hostile JSON, or no body; sometimes compressed.
    const isOtlp = o.path.startsWith("/v1/");
    const jsonBody: fc.Arbitrary<{ text: string; type?: string }> = body
      ? fc.oneof(
          { weight: 6, arbitrary: arbitraryFor(body, doc, { named, mix: mixLeaf }).map((v) => ({ text: JSON.stringify(v) ?? "null" })) },
          { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_JSON_TEXT).map((text) => ({ text })) },
          { weight: 1, arbitrary: wrongType.map((v) => ({ text: JSON.stringify(v) ?? "null" })) },
          { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ text: JSON.stringify(v) })) },
        )
      : isOtlp
        ? fc.oneof(
            { weight: 4, arbitrary: otlpBody(o.path.slice(4)).map((v) => ({ text: JSON.stringify(v) })) },
            { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_JSON_TEXT).map((text) => ({ text })) },
            {
              weight: 1,
              arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => ({ text: Buffer.from(b).toString("latin1"), type: "application/x-protobuf" })),
            },
          )
        : fc.oneof(
            fc.constant({ text: "" }),
            fc.constantFrom(...HOSTILE_JSON_TEXT).map((text) => ({ text })),
            fc.string({ unit: "binary", maxLength: 200 }).map((text) => ({ text, type: "application/octet-stream" })),
          );
    const contentType = fc.oneof(
      { weight: 12, arbitrary: fc.constant<string | undefined>(undefined) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/json; charset=utf-16",
          "application/json; charset=latin1",
          "application/xml",
          "application/x-protobuf",
          "application/protobuf",
          "*/*",
          "application/json;" + "a".repeat(2000),
          "invalid",
          "",
        ),
      },
    );
    const encoding = fc.oneof(
      { weight: 14, arbitrary: fc.constant<"none" | "gzip" | "deflate" | "bomb" | "deflate-bomb" | "members-bomb" | "br" | "broken">("none") },
      { weight: 2, arbitrary: fc.constantFrom("gzip" as const, "deflate" as const) },
      { weight: 1, arbitrary: fc.constantFrom("bomb" as const, "deflate-bomb" as const, "members-bomb" as const, "br" as const, "broken" as const) },
    );
    const sendsBody = o.method !== "GET" && o.method !== "DELETE";
    const bodyArb = fc.tuple(fc.boolean(), jsonBody, contentType, encoding).map(([withBody, b, ct, enc]) => {
      // GET and DELETE: mostly no body, sometimes one (with its Content-Length: node:http sends none for them)
      if (!sendsBody && !withBody) return { body: undefined, headers: {} as Record<string, string> };
      let buf: Buffer = Buffer.from(b.text, b.type === "application/x-protobuf" ? "latin1" : "utf8");
      const headers: Record<string, string> = { "content-type": ct ?? b.type ?? "application/json" };
      if (enc === "gzip") buf = gzipSync(buf);
      else if (enc === "deflate") buf = deflateSync(buf);
      else if (enc === "bomb") buf = GZIP_BOMB;
      else if (enc === "deflate-bomb") buf = DEFLATE_BOMB;
      else if (enc === "members-bomb") buf = GZIP_MEMBERS_BOMB;
      else if (enc === "broken") buf = Buffer.concat([gzipSync(buf).subarray(0, 12), Buffer.from("garbage")]);
      if (enc !== "none") headers["content-encoding"] = enc === "broken" || enc.endsWith("bomb") ? (enc === "deflate-bomb" ? "deflate" : "gzip") : enc;
      headers["content-length"] = String(buf.length);
      return { body: buf, headers };
    });

    // Extra headers: hostile values for the headers routes read, and now and then one over Node's 16 KiB (→ 431).
    const extraHeaders = fc.oneof(
      {
        weight: 40,
        arbitrary: fc.dictionary(
          fc.constantFrom("idempotency-key", "x-request-id", "range", "if-none-match", "if-match", "if-range", "accept", "x-forwarded-for", "origin"),
          fc.oneof(
            fc.constantFrom(
              "",
              "bytes=0-",
              "bytes=-1",
              "bytes=99999999999999999999-",
              "bytes=5-1",
              "*",
              '"x"',
              'W/"x"',
              "Thu, 01 Jan 1970 00:00:00 GMT",
              "1e309",
              "-1",
              "0",
            ),
            fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
            fc.constant("k".repeat(300)),
          ),
          { maxKeys: 2 },
        ),
      },
      { weight: 1, arbitrary: fc.constant({ "x-big": "h".repeat(20_000) }) },
    );
    const callerArb = isOtlp
      ? fc.constantFrom<Caller>("participant", "participant", "participant", "apiKey", "none")
      : fc.constantFrom<Caller>("apiKey", "apiKey", "member", "none", "participant");
    const authArb = fc.oneof(
      { weight: 20, arbitrary: fc.constant<string | null>(null) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          "Bearer",
          "Bearer ",
          "Basic YTpi",
          "Bearer a.b.c",
          `Bearer ${"x".repeat(5000)}`,
          "bearer  x  y",
          "Bearer eyJhbGciOiJub25lIn0.e30.",
        ),
      },
    );

    return fc.record({ path: pathArb, query: queryArb, caller: callerArb, body: bodyArb, extra: extraHeaders, auth: authArb }).map((r) => {
      const headers: Record<string, string> = { ...r.extra, ...r.body.headers };
      const token = tokens[r.caller];
      if (r.auth !== null) headers.authorization = r.auth;
      else if (token) headers.authorization = `Bearer ${token}`;
      return { op: `${o.method} ${o.path}`, method: o.method, path: r.path + r.query, caller: r.caller, headers, body: r.body.body };
    });
  }

  /** OTLP/JSON export requests with hostile times, ids, values and nesting. */
  function otlpBody(signal: string): fc.Arbitrary<unknown> {
    const time = fc.oneof(
      fc.constantFrom<unknown>("1700000000000000000", "99999999999999999999999", 1e300, -1, "1e309", "", null, "18446744073709551615", 0),
      hostileNumber,
    );
    const id = fc.oneof(fc.constantFrom("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "", "zz"), hostileString);
    const value: fc.Arbitrary<unknown> = fc.oneof(
      fc.record({ stringValue: hostileString }),
      fc.record({ intValue: hostileNumber }),
      fc.record({ doubleValue: hostileNumber }),
      fc.record({
        kvlistValue: fc.record({ values: fc.array(fc.record({ key: fc.string(), value: fc.record({ boolValue: fc.boolean() }) }), { maxLength: 3 }) }),
      }),
      fc.constant({ arrayValue: { values: [{ arrayValue: { values: [{ arrayValue: { values: [] } }] } }] } }),
      wrongType,
    );
    const attrs = fc.array(fc.record({ key: fc.oneof(fc.string(), hostileString), value }), { maxLength: 3 });
    const resource = fc.record({ attributes: attrs });
    if (signal === "traces")
      return fc.record({
        resourceSpans: fc.array(
          fc.record({
            resource,
            scopeSpans: fc.array(
              fc.record({
                spans: fc.array(
                  fc.record({
                    traceId: id,
                    spanId: id,
                    parentSpanId: id,
                    name: fc.oneof(fc.string(), hostileString),
                    kind: fc.oneof(fc.integer({ min: 0, max: 5 }), hostileNumber),
                    startTimeUnixNano: time,
                    endTimeUnixNano: time,
                    attributes: attrs,
                    status: fc.record({ code: fc.oneof(fc.integer({ min: 0, max: 2 }), hostileNumber), message: hostileString }),
                  }),
                  { maxLength: 3 },
                ),
              }),
              { maxLength: 2 },
            ),
          }),
          { maxLength: 2 },
        ),
      });
    if (signal === "metrics") {
      const points = fc.record({
        dataPoints: fc.array(fc.record({ timeUnixNano: time, asDouble: hostileNumber, asInt: hostileNumber, attributes: attrs }), { maxLength: 3 }),
      });
      return fc.record({
        resourceMetrics: fc.array(
          fc.record({
            resource,
            scopeMetrics: fc.array(
              fc.record({
                metrics: fc.array(
                  fc.record({
                    name: hostileString,
                    unit: fc.string(),
                    gauge: points,
                    sum: fc.record({ dataPoints: points.map((p) => p.dataPoints), isMonotonic: fc.boolean(), aggregationTemporality: hostileNumber }),
                    histogram: fc.record({
                      dataPoints: fc.array(
                        fc.record({ timeUnixNano: time, count: hostileNumber, sum: hostileNumber, bucketCounts: fc.array(hostileNumber, { maxLength: 3 }) }),
                        { maxLength: 2 },
                      ),
                    }),
                  }),
                  { maxLength: 3 },
                ),
              }),
              { maxLength: 2 },
            ),
          }),
          { maxLength: 2 },
        ),
      });
    }
    return fc.record({
      resourceLogs: fc.array(
        fc.record({
          resource,
          scopeLogs: fc.array(
            fc.record({
              logRecords: fc.array(
                fc.record({
                  timeUnixNano: time,
                  observedTimeUnixNano: time,
                  severityNumber: hostileNumber,
                  severityText: hostileString,
                  body: value,
                  attributes: attrs,
                  traceId: id,
                }),
                { maxLength: 3 },
              ),
            }),
            { maxLength: 2 },
          ),
        }),
        { maxLength: 2 },
      ),
    });
  }

  it(`${REQUESTS} generated requests: no 5xx, every 4xx in the error shape, healthy throughout`, { timeout: 600_000 }, async () => {
    const byOp = new Map(ops.map((o) => [`${o.method} ${o.path}`, requestsOf(o)]));
    const anyRequest = fc.constantFrom(...byOp.keys()).chain((k) => byOp.get(k)!);
    let sent = 0;
    let fiveXx = 0;
    let offContract = 0;
    let refusedByClient = 0;
    let batches = 0;
    const statuses = new Map<number, number>();
    const perOp = new Map<string, number>();
    const failures: string[] = [];
    const t0 = Date.now();
    const succeeded = new Set<string>();
    const describeReq = (r: FuzzRequest, res: Result) =>
      `${r.method} ${r.path.slice(0, 200)} as ${r.caller} [${Object.entries(r.headers)
        .filter(([k]) => k !== "authorization")
        .map(([k, v]) => `${k}: ${v.slice(0, 60)}`)
        .join("; ")}] body ${r.body ? r.body.subarray(0, 120).toString("utf8") : "-"} → ${res.status} ${res.text.slice(0, 300)}`;

    const healthy = async () => {
      const h = await send(base, { op: "healthz", method: "GET", path: "/healthz", caller: "none", headers: {} });
      return h.status === 200 && h.text === '{"ok":true}';
    };

    // The OAuth protocol's endpoints answer errors as RFC 6749 says (`x-error-shape: oauth`): still never a 5xx.
    const protocolShaped = new Set(ops.filter((o) => o.op["x-error-shape"] === "oauth").map((o) => `${o.method} ${o.path}`));
    await fc.assert(
      fc.asyncProperty(fc.array(anyRequest, { minLength: CONCURRENCY, maxLength: CONCURRENCY }), async (batch) => {
        // Every batch's violations are collected (all of them, with the request that caused each) and asserted once
        // the run is over, so one run reports every class of failure, with its figures, instead of the first one.
        const results = await Promise.all(batch.map((r) => send(base, r)));
        batch.forEach((r, i) => {
          const res = results[i]!;
          if (res.status === 0) return void refusedByClient++;
          sent++;
          perOp.set(r.op, (perOp.get(r.op) ?? 0) + 1);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status >= 500 || res.status < 0) {
            fiveXx++;
            if (failures.length < 40) failures.push(`5xx: ${describeReq(r, res)}`);
          } else if (res.status >= 400 && !inShape(res.text) && !protocolShaped.has(r.op)) {
            offContract++;
            if (failures.length < 40) failures.push(`off-contract: ${describeReq(r, res)}`);
          } else if (res.status < 300) {
            succeeded.add(r.op);
            harvest(res.text);
          }
        });
        if (++batches % 50 === 0 && !(await healthy())) failures.push(`GET /healthz failed after ${sent} requests`);
      }),
      { numRuns: Math.ceil(REQUESTS / CONCURRENCY), seed: SEED, endOnFailure: true },
    );
    const healthyAtEnd = await healthy();
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    const untouched = ops.map((o) => `${o.method} ${o.path}`).filter((k) => !perOp.has(k));
    console.log(
      `fuzz (${dialectName}, seed ${SEED}): ${sent} requests over ${perOp.size}/${ops.length} operations ` +
        `(${succeeded.size} of them answered 2xx at least once) in ${seconds}s; ` +
        `5xx: ${fiveXx}; 4xx off-contract: ${offContract}; refused by the client library: ${refusedByClient}; ` +
        `statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
    );
    if (failures.length) console.log(failures.join("\n"));
    expect(failures).toEqual([]);
    expect(healthyAtEnd).toBe(true);
    expect(sent).toBeGreaterThanOrEqual(REQUESTS * 0.95);
    if (REQUESTS >= 5000) expect(untouched).toEqual([]);
  });
});
