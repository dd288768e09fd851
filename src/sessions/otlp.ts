import { createRequire } from "node:module";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { badRequest, notFound, unauthorized } from "../core/errors.js";
import { MAX_JSON_DEPTH, isObj, jsonTooDeep, type Obj } from "../core/json.js";
import { inflatingBodies } from "../core/inflate.js";
import { callerParticipant } from "../auth/plugin.js";
import type { NewMetric, NewSpan } from "./repo.js";

/**
 * OTLP/HTTP receiver (POST /v1/traces, /v1/metrics, /v1/logs), JSON or protobuf, optionally gzip/deflate encoded.
 * The bearer is a participant JWT; what arrives is attached to the session of the token's room (the running one,
 * else the latest). The protobuf schema is the official opentelemetry-proto, as generated in
 * @opentelemetry/otlp-transformer.
 */

interface PbType {
  decode(b: Uint8Array): unknown;
  toObject(m: unknown, o: Record<string, unknown>): Record<string, unknown>;
  encode(m: unknown): { finish(): Uint8Array };
  fromObject(o: unknown): unknown;
}
type Root = {
  opentelemetry: {
    proto: { collector: Record<"trace" | "metrics" | "logs", { v1: Record<string, PbType> }> };
  };
};
const root = createRequire(import.meta.url)("@opentelemetry/otlp-transformer/build/src/generated/root.js") as Root;
const collector = root.opentelemetry.proto.collector;

const SIGNALS = {
  traces: { req: collector.trace.v1.ExportTraceServiceRequest, res: collector.trace.v1.ExportTraceServiceResponse, rejected: "rejectedSpans" },
  metrics: { req: collector.metrics.v1.ExportMetricsServiceRequest, res: collector.metrics.v1.ExportMetricsServiceResponse, rejected: "rejectedDataPoints" },
  logs: { req: collector.logs.v1.ExportLogsServiceRequest, res: collector.logs.v1.ExportLogsServiceResponse, rejected: "rejectedLogRecords" },
} as const;
type Signal = keyof typeof SIGNALS;

/** Most items one request may store; the rest is reported back as rejected (partial success). */
const MAX_ITEMS = 10_000;

const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);

/** OTLP/JSON allows snake_case field names too; object keys only (attribute keys live in values). */
function camelize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelize);
  if (!isObj(v)) return v;
  const out: Obj = {};
  for (const [k, val] of Object.entries(v)) out[k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = camelize(val);
  return out;
}

/** A finite number (JSON's 1e309 is Infinity, protobuf doubles may be NaN: neither is stored). */
function num(v: unknown): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return null;
}

/** Text for a text column: NUL, which PostgreSQL's text cannot hold, becomes U+FFFD (JSON columns escape it). */
const text = (v: unknown, fallback = "") => (typeof v === "string" ? v.replaceAll("\u0000", "\ufffd") : fallback);

/** An enum or status code for an integer column: a 32-bit integer, else 0. */
const int32 = (v: unknown) => {
  const n = num(v);
  return n !== null && Number.isInteger(n) && Math.abs(n) <= 2 ** 31 - 1 ? n : 0;
};

/** OTLP times are fixed64 nanoseconds: a larger value (only OTLP/JSON can send one) is clamped to the largest fixed64. */
const MAX_NANOS = 2n ** 64n - 1n;
/** A span's duration, in ns, fits an int64 column and a JS number exactly. */
const MAX_DURATION_NS = BigInt(Number.MAX_SAFE_INTEGER);

/** OTLP time in ns, clamped to [0, 2^64-1]: its ms value is always a representable date (the store's range, core/clock.ts). */
function nanos(v: unknown): bigint {
  let n = 0n;
  try {
    if (typeof v === "string" && /^\d{1,400}$/.test(v)) n = BigInt(v);
    else if (typeof v === "number" && Number.isFinite(v) && v >= 0) n = BigInt(Math.floor(v));
  } catch {
    // fall through
  }
  return n > MAX_NANOS ? MAX_NANOS : n;
}

/** Ids: hex in OTLP/JSON, base64 after protobuf's toObject. Empty → null. */
function hexId(v: unknown, proto: boolean): string | null {
  if (typeof v !== "string" || !v) return null;
  if (!proto && /^[0-9a-fA-F]+$/.test(v) && (v.length === 32 || v.length === 16)) return v.toLowerCase();
  const hex = Buffer.from(v, "base64").toString("hex");
  return hex && !/^0+$/.test(hex) ? hex : null;
}

/** An AnyValue as JSON; nesting beyond MAX_JSON_DEPTH (a protobuf body can nest deeper than JSON may) becomes null. */
function anyValue(v: unknown, depth = 0): unknown {
  if (!isObj(v) || depth > MAX_JSON_DEPTH) return null;
  if ("stringValue" in v) return v.stringValue;
  if ("boolValue" in v) return v.boolValue;
  if ("intValue" in v) {
    const n = num(v.intValue);
    return n !== null && Number.isSafeInteger(n) ? n : String(v.intValue);
  }
  if ("doubleValue" in v) return num(v.doubleValue);
  if ("arrayValue" in v) return list(isObj(v.arrayValue) ? v.arrayValue.values : []).map((x) => anyValue(x, depth + 1));
  if ("kvlistValue" in v) return attributes(isObj(v.kvlistValue) ? v.kvlistValue.values : [], depth + 1);
  if ("bytesValue" in v) return v.bytesValue;
  return null;
}

function attributes(kvs: unknown, depth = 0): Obj {
  const out: Obj = {};
  for (const kv of list(kvs)) if (typeof kv.key === "string") out[kv.key] = anyValue(kv.value, depth);
  return out;
}

const msOf = (ns: bigint) => Number(ns / 1_000_000n);

async function decode(req: FastifyRequest, signal: Signal): Promise<{ body: Obj; proto: boolean }> {
  // A compressed body arrives inflated already (the preParsing hook, under the body limit).
  let raw = req.body as Buffer;
  if (!Buffer.isBuffer(raw)) raw = Buffer.alloc(0);
  const type = String(req.headers["content-type"] ?? "")
    .split(";")[0]
    .trim()
    .toLowerCase();
  if (type === "application/x-protobuf" || type === "application/protobuf") {
    const T = SIGNALS[signal].req;
    try {
      const m = T.decode(raw);
      return { body: T.toObject(m, { longs: String, bytes: String, enums: Number, defaults: false }), proto: true };
    } catch (e) {
      throw badRequest(`the body is not a protobuf ${signal} export request: ${(e as Error).message}`);
    }
  }
  let parsed: unknown;
  const text = raw.toString("utf8");
  if (jsonTooDeep(text)) throw badRequest(`the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    parsed = raw.length ? JSON.parse(text) : {};
  } catch {
    throw badRequest("the body is not valid JSON");
  }
  if (!isObj(parsed)) throw badRequest("the body must be a JSON object");
  return { body: camelize(parsed) as Obj, proto: false };
}

function spansOf(body: Obj, proto: boolean, sessionId: string, who: string): NewSpan[] {
  const out: NewSpan[] = [];
  for (const rs of list(body.resourceSpans)) {
    const resource = attributes(isObj(rs.resource) ? rs.resource.attributes : []);
    for (const ss of list(rs.scopeSpans ?? rs.instrumentationLibrarySpans)) {
      for (const sp of list(ss.spans)) {
        const start = nanos(sp.startTimeUnixNano);
        const end = nanos(sp.endTimeUnixNano);
        const status = isObj(sp.status) ? sp.status : {};
        out.push({
          session_id: sessionId,
          trace_id: hexId(sp.traceId, proto) ?? "",
          span_id: hexId(sp.spanId, proto) ?? "",
          parent_span_id: hexId(sp.parentSpanId, proto),
          name: text(sp.name),
          kind: int32(sp.kind),
          start_ms: msOf(start),
          duration_ns: end > start ? Number(end - start > MAX_DURATION_NS ? MAX_DURATION_NS : end - start) : 0,
          status_code: int32(status.code),
          status_message: text(status.message) || null,
          attributes: JSON.stringify(attributes(sp.attributes)),
          resource_attributes: JSON.stringify(resource),
          participant_name: text(who),
        });
      }
    }
  }
  return out;
}

function metricsOf(body: Obj, sessionId: string, who: string, now: number): NewMetric[] {
  const out: NewMetric[] = [];
  for (const rm of list(body.resourceMetrics)) {
    const resource = attributes(isObj(rm.resource) ? rm.resource.attributes : []);
    for (const sm of list(rm.scopeMetrics ?? rm.instrumentationLibraryMetrics)) {
      for (const m of list(sm.metrics)) {
        const name = text(m.name);
        const unit = text(m.unit);
        const kinds: [string, unknown][] = [
          ["gauge", m.gauge],
          ["sum", m.sum],
          ["histogram", m.histogram],
          ["exponential_histogram", m.exponentialHistogram],
          ["summary", m.summary],
        ];
        for (const [kind, data] of kinds) {
          if (!isObj(data)) continue;
          for (const dp of list(data.dataPoints)) {
            const t = nanos(dp.timeUnixNano);
            let value: number;
            let extra: Obj | null = null;
            if (kind === "gauge" || kind === "sum") value = num(dp.asDouble) ?? num(dp.asInt) ?? 0;
            else {
              value = num(dp.sum) ?? 0;
              extra = { count: num(dp.count) ?? 0 };
              for (const k of ["min", "max", "bucketCounts", "explicitBounds", "scale", "zeroCount", "quantileValues"])
                if (dp[k] !== undefined) extra[k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase())] = dp[k];
            }
            if (kind === "sum") extra = { monotonic: data.isMonotonic === true, aggregation_temporality: num(data.aggregationTemporality) ?? 0 };
            out.push({
              session_id: sessionId,
              name,
              kind,
              unit,
              value,
              data: extra ? JSON.stringify({ ...extra, resource }) : JSON.stringify({ resource }),
              attributes: JSON.stringify(attributes(dp.attributes)),
              time: t > 0n ? msOf(t) : now,
              source: "otlp",
              participant_name: text(who),
            });
          }
        }
      }
    }
  }
  return out;
}

function logsOf(body: Obj, proto: boolean, who: string, now: number) {
  const out: { type: string; data: unknown; at: number }[] = [];
  for (const rl of list(body.resourceLogs)) {
    const resource = attributes(isObj(rl.resource) ? rl.resource.attributes : []);
    for (const sl of list(rl.scopeLogs ?? rl.instrumentationLibraryLogs)) {
      for (const lr of list(sl.logRecords)) {
        const t = nanos(lr.timeUnixNano) || nanos(lr.observedTimeUnixNano);
        out.push({
          type: "log",
          at: t > 0n ? msOf(t) : now,
          data: {
            severity_number: num(lr.severityNumber) ?? 0,
            severity_text: typeof lr.severityText === "string" ? lr.severityText : "",
            body: anyValue(lr.body),
            attributes: attributes(lr.attributes),
            resource_attributes: resource,
            trace_id: hexId(lr.traceId, proto),
            span_id: hexId(lr.spanId, proto),
            participant_name: who,
          },
        });
      }
    }
  }
  return out;
}

function respond(reply: FastifyReply, signal: Signal, proto: boolean, rejected: number, message: string) {
  const partial = rejected > 0 ? { partialSuccess: { [SIGNALS[signal].rejected]: rejected, errorMessage: message } } : {};
  if (proto) {
    const T = SIGNALS[signal].res;
    return reply
      .code(200)
      .type("application/x-protobuf")
      .send(Buffer.from(T.encode(T.fromObject(partial)).finish()));
  }
  return reply.code(200).type("application/json").send(partial);
}

/** An LLM token count reported by an agent: what the `gen_ai.client.token.usage` metric's points add. */
export interface LlmTokens {
  provider: string | null;
  model: string | null;
  unit: "input_token" | "output_token";
  quantity: number;
  series: string;
  cumulative: boolean;
}

/**
 * The OpenTelemetry GenAI token metric (`gen_ai.client.token.usage`, a histogram of tokens per call): each point's sum,
 * by `gen_ai.token.type` (input | output), provider (`gen_ai.provider.name`, else `gen_ai.system`) and model
 * (`gen_ai.response.model`, else `gen_ai.request.model`). Cumulative points carry totals: `series` keys them so the
 * caller counts only what grew.
 */
export function llmTokensOf(body: Obj): LlmTokens[] {
  const out: LlmTokens[] = [];
  for (const rm of list(body.resourceMetrics))
    for (const sm of list(rm.scopeMetrics ?? rm.instrumentationLibraryMetrics))
      for (const m of list(sm.metrics)) {
        if (text(m.name) !== "gen_ai.client.token.usage") continue;
        const data = isObj(m.histogram) ? m.histogram : isObj(m.sum) ? m.sum : null;
        if (!data) continue;
        const cumulative = num(data.aggregationTemporality) === 2;
        for (const dp of list(data.dataPoints)) {
          const a = attributes(dp.attributes);
          const type = a["gen_ai.token.type"];
          if (type !== "input" && type !== "output") continue;
          const quantity = num(dp.sum) ?? num(dp.asInt) ?? num(dp.asDouble) ?? 0;
          const str = (v: unknown) => (typeof v === "string" && v ? v.slice(0, 200) : null);
          const provider = str(a["gen_ai.provider.name"]) ?? str(a["gen_ai.system"]);
          const model = str(a["gen_ai.response.model"]) ?? str(a["gen_ai.request.model"]);
          out.push({
            provider,
            model,
            unit: `${type}_token`,
            quantity,
            cumulative,
            series: JSON.stringify([provider, model, type, text(dp.startTimeUnixNano)]),
          });
        }
      }
  return out;
}

export async function otlpRoutes(app: AreaApp, ctx: AppContext) {
  // The last total of each cumulative token series, per session and participant (to count only what grew).
  const totals = new Map<string, number>();
  // Every body arrives as bytes: protobuf, JSON, or either one compressed (inflated as it streams in, the body limit
  // enforced on the inflated bytes: src/core/inflate.ts).
  app.addHook("preParsing", inflatingBodies(ctx.config.rooms.otlpBodyLimit));
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: ctx.config.rooms.otlpBodyLimit }, (_req, body, done) => done(null, body));

  /** The caller's session: a participant JWT with a room grant, the room, its running (else latest) session. */
  async function sessionFor(req: FastifyRequest) {
    const p = callerParticipant(req);
    if (p.room === undefined) throw unauthorized("the token has no room grant");
    const room = await ctx.rooms.byName(p.projectId, p.room);
    const session = await ctx.sessions.currentForRoom(room.id);
    if (!session) throw notFound("session");
    return { session, who: p.name };
  }

  /**
   * How many of an export's `n` items to store: at most MAX_ITEMS per request, and no more than the session's OTLP cap
   * (MESHAGENT_OTLP_MAX_ROWS_PER_SESSION) leaves. The rest is answered as rejected (partial success), which exporters
   * log and do not retry; a 429 would make them retry something that can never fit.
   */
  async function admit(sessionId: string, n: number, what: string) {
    const cap = ctx.config.rooms.otlpMaxRowsPerSession;
    const wanted = Math.min(n, MAX_ITEMS);
    const keep = await ctx.sessions.otlpAllowance(sessionId, wanted, cap);
    const message =
      keep < wanted
        ? `the session has reached its limit of ${cap} OTLP rows (spans, metric data points and log records; MESHAGENT_OTLP_MAX_ROWS_PER_SESSION)`
        : `at most ${MAX_ITEMS} ${what} per request`;
    return { keep, rejected: n - keep, message };
  }

  const schema = (signal: Signal) => ({
    tags: ["telemetry"],
    summary: `otlp_${signal}`,
    description:
      `OTLP/HTTP ${signal} export (application/x-protobuf or application/json, optionally gzip). The bearer is a participant JWT; ` +
      `the data is attached to its room's running session (else the latest) and read back with list_session_${signal === "traces" ? "spans" : signal === "metrics" ? "metrics" : "events"}.`,
  });

  app.post("/v1/traces", { config: { access: "participant", audit: false }, schema: schema("traces") }, async (req, reply) => {
    const { session, who } = await sessionFor(req);
    const { body, proto } = await decode(req, "traces");
    const spans = spansOf(body, proto, session.id, who);
    const a = await admit(session.id, spans.length, "spans");
    await ctx.sessions.addSpans(session.id, spans.slice(0, a.keep));
    return respond(reply, "traces", proto, a.rejected, a.message);
  });

  app.post("/v1/metrics", { config: { access: "participant", audit: false }, schema: schema("metrics") }, async (req, reply) => {
    const { session, who } = await sessionFor(req);
    const { body, proto } = await decode(req, "metrics");
    const points = metricsOf(body, session.id, who, ctx.clock.now());
    const a = await admit(session.id, points.length, "data points");
    await ctx.sessions.addMetrics(session.id, points.slice(0, a.keep));
    // LLM tokens agents report (OTel GenAI semantic conventions) are metered as usage (usage_type "llm").
    for (const t of llmTokensOf(body)) {
      let quantity = t.quantity;
      if (t.cumulative) {
        const key = `${session.id}\0${who}\0${t.series}`;
        const last = totals.get(key) ?? 0;
        quantity = t.quantity >= last ? t.quantity - last : t.quantity;
        if (totals.size > 100_000) totals.clear();
        totals.set(key, t.quantity);
      }
      if (quantity > 0) await ctx.sessions.llmUsage(session, { provider: t.provider, model: t.model, unit: t.unit, quantity, participant_name: text(who) });
    }
    return respond(reply, "metrics", proto, a.rejected, a.message);
  });

  app.post("/v1/logs", { config: { access: "participant", audit: false }, schema: schema("logs") }, async (req, reply) => {
    const { session, who } = await sessionFor(req);
    const { body, proto } = await decode(req, "logs");
    const logs = logsOf(body, proto, who, ctx.clock.now());
    const a = await admit(session.id, logs.length, "log records");
    await ctx.sessions.events(session.id, logs.slice(0, a.keep));
    return respond(reply, "logs", proto, a.rejected, a.message);
  });
}
