import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { Ajv, type ValidateFunction } from "ajv";
import SerializerSelector from "@fastify/fast-json-stringify-compiler";
import addFormats from "ajv-formats";
import { randomUUID } from "node:crypto";
import type { AppContext } from "./context.js";
import { ApiError, errorBody } from "./core/errors.js";
import { ErrorResponse } from "./core/http.js";
import { MAX_JSON_DEPTH, jsonHasNul, jsonTooDeep } from "./core/json.js";
import { isDataException } from "./store/errors.js";
import { pendingMigrations } from "./store/db.js";
import { redactUrl, requestSerializer } from "./core/redact.js";
import { errorCodeOf, requestLogLine } from "./core/logging.js";
import { normalizeOpenApi } from "./core/openapi.js";
import { MAX_PARAM_LENGTH, clientErrorHandler, frameworkErrors, refuseNulInUrl } from "./core/client-errors.js";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { installAccessGate } from "./auth/plugin.js";
import { installIdempotency } from "./idempotency/index.js";
import { installUsageMeter } from "./billing/hook.js";
import { installAuditLog } from "./audit/hook.js";
import { installRateLimits } from "./auth/rate-limit.js";
import { domains } from "./domains.js";
import { SERVER_VERSION } from "./version.js";

function makeAjv(coerce: boolean) {
  const ajv = new Ajv({ coerceTypes: coerce, useDefaults: true, removeAdditional: true, allErrors: false, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv;
}

const buildSerializers = SerializerSelector();
/** Fastify's serializer factory, each route's serializer compiled when first used. */
function lazySerializers(external: unknown, options: unknown) {
  const compile = (buildSerializers as unknown as (e: unknown, o: unknown) => (route: unknown) => (data: unknown) => string)(external, options);
  return (route: unknown) => {
    let fn: ((data: unknown) => string) | undefined;
    return (data: unknown) => (fn ??= compile(route))(data);
  };
}

/** The error code of each error answer, for its log line. */
const errorCodes = new WeakMap<object, string | undefined>();

/** Builds the HTTP app from a context, without listening: `main.ts` listens, tests use it the same way. */
export async function buildApp(ctx: AppContext, opts: { logger?: boolean; logStream?: { write(line: string): void } } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // The process's root logger (JSON lines, or pretty on a terminal: src/core/logging.ts); `logStream`: tests read the
    // log. Its request serializer logs method, url and ids, never headers (bearer tokens stay out of logs), and redacts
    // the query string's secrets (signature, token, code, *key*, *secret*: src/core/redact.ts).
    ...(opts.logger === false
      ? { logger: false }
      : opts.logStream
        ? { logger: { level: ctx.config.logLevel, serializers: { req: requestSerializer }, stream: opts.logStream } }
        : { loggerInstance: ctx.log as FastifyBaseLogger }),
    // One log line per request ("GET /path 200 1.2ms": the onResponse hook below) instead of Fastify's two (incoming +
    // completed): half the logging cost of every call.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ctx.config.bodyLimitBytes,
    // Behind a reverse proxy (MESHAGENT_TRUST_PROXY): req.ip is the client's address from X-Forwarded-For.
    trustProxy: ctx.config.trustProxy as boolean | string[], // a hop count works too (request.js); the types omit it
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    // Errors raised before a route runs (bad percent-encoding, over-long parameters, what Node's HTTP parser refuses:
    // oversized headers → 431) are answered in the API's error shape too (src/core/client-errors.ts).
    frameworkErrors,
    clientErrorHandler,
    forceCloseConnections: true,
    // Plugins register in well under a second; on a loaded machine (CI running suites in parallel) Fastify's 10 s default
    // was not always enough. A plugin that truly hangs still fails the start.
    pluginTimeout: 60_000,
    // A client that stops sending (a stalled upload) or reading does not hold its connection forever. WebSocket
    // connections are not affected: `ws` turns the timeout off on the sockets it takes over.
    connectionTimeout: ctx.config.httpIdleTimeoutMs,
    // Response serializers (fast-json-stringify) are built on a route's first answer, not at start-up: building all
    // of them was over half of the start-up time.
    schemaController: { compilersFactory: { buildSerializer: lazySerializers } },
  });

  // Bodies are validated strictly (a number is not a string); query strings and params arrive as text and are coerced.
  const strict = makeAjv(false);
  const coercing = makeAjv(true);
  // Compiled on a route's first request, not at start-up (compiling every route's schemas took most of a second).
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const ajv = httpPart === "body" ? strict : coercing;
    let fn: ValidateFunction | undefined;
    // Fastify reads `errors` off the function it was given after a failed validation.
    const validate = (data: unknown) => {
      fn ??= ajv.compile(schema as object);
      const ok = fn(data);
      validate.errors = fn.errors;
      return ok;
    };
    validate.errors = null as ValidateFunction["errors"];
    return validate as never;
  });

  app.addHook("onRequest", (req, reply, done) => {
    reply.header("x-request-id", req.id);
    done();
  });
  app.addHook("onRequest", refuseNulInUrl);
  // Requests by route and status, with their latency (GET /metrics).
  ctx.metrics?.install(app);
  // An error answer's code goes on its log line ("GET /rooms/x 404 not_found 0.4ms").
  app.addHook("onSend", (_req, reply, payload, done) => {
    if (reply.statusCode >= 400) errorCodes.set(reply, errorCodeOf(payload));
    done(null, payload);
  });
  app.addHook("onResponse", (req, reply, done) => {
    const code = errorCodes.get(reply);
    const { level, msg } = requestLogLine(req.method, req.url, reply.statusCode, reply.elapsedTime, code);
    // A short line (the method and path are in msg): the client's address, and the URL only when it has a query
    // (its secrets redacted). What each request costs in logging is what each line costs.
    const enabled = (req.log as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled;
    if (!enabled || enabled.call(req.log, level))
      req.log[level](
        {
          statusCode: reply.statusCode,
          responseTime: Math.round(reply.elapsedTime * 10) / 10,
          ip: req.ip,
          ...(code ? { code } : {}),
          ...(req.url.includes("?") ? { url: redactUrl(req.url) } : {}),
        },
        msg,
      );
    done();
  });

  // The Python client sends `Content-Type: application/json` on body-less calls too (terminate, some POSTs):
  // an empty JSON body is "no body", not an error. Everything else goes to Fastify's own (prototype-safe) parser.
  const parseJson = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  // Bodies nest at most MAX_JSON_DEPTH deep (checked on the text, before parsing): no handler walks a deeper value.
  // No route takes a compressed JSON body: a Content-Encoding other than identity is a 415.
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    const enc = String(req.headers["content-encoding"] ?? "identity")
      .trim()
      .toLowerCase();
    if (enc !== "identity" && enc !== "")
      return done(new ApiError(415, "unsupported_media_type", "JSON bodies are accepted without Content-Encoding only"), undefined);
    if (body === "" || (typeof body === "string" && body.trim() === "")) return done(null, undefined);
    if (jsonTooDeep(body as string)) return done(new ApiError(400, "invalid_request", `the JSON body nests deeper than ${MAX_JSON_DEPTH} levels`), undefined);
    if (jsonHasNul(body as string)) return done(new ApiError(400, "invalid_request", "JSON strings must not contain NUL characters (\\u0000)"), undefined);
    parseJson(req, body as string, done);
  });

  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send(errorBody(err.code, err.message));
    const fe = err as FastifyError;
    if (fe.validation) {
      const v = fe.validation[0];
      const where = (fe.validationContext ?? "request") + (v?.instancePath || "");
      const missing = v?.keyword === "required" ? `/${(v.params as { missingProperty?: string }).missingProperty}` : "";
      return reply.code(400).send(errorBody("invalid_request", `${where}${missing} ${v?.message ?? "is invalid"}`.trim()));
    }
    if (fe.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      const limit = req.url.startsWith("/v1/") ? ctx.config.rooms.otlpBodyLimit : ctx.config.bodyLimitBytes;
      return reply.code(413).send(errorBody("payload_too_large", `request body is larger than ${limit} bytes`));
    }
    if (fe.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE")
      return reply
        .code(415)
        .send(
          errorBody("unsupported_media_type", `${fe.message}: send the body as JSON with Content-Type: application/json (or the type the route documents)`),
        );
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)
      return reply.code(fe.statusCode).send(errorBody(fe.code ? fe.code.toLowerCase().replace(/^fst_err_/, "") : "bad_request", fe.message));
    // A value the store cannot hold (PostgreSQL data exceptions, integers too large to bind) is the input's fault.
    if (isDataException(err)) {
      req.log.warn({ err }, "a request value could not be stored");
      return reply.code(400).send(errorBody("invalid_request", "a value of the request cannot be stored (out of range or not representable)"));
    }
    req.log.error({ err }, "unhandled error");
    return reply.code(500).send(errorBody("internal", "internal server error"));
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(errorBody("not_found", `no route for ${req.method} ${req.url.split("?")[0]}`));
  });

  // Shared schemas, named by their $id: the OpenAPI document lists them under components.schemas.
  app.addSchema(ErrorResponse);
  for (const d of domains) for (const s of d.schemas ?? []) app.addSchema(s);

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "MeshAgent self-hosted API", version: SERVER_VERSION, description: "Wire-compatible with the MeshAgent clients 0.39.9" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    // Shared schemas appear under their own names (Room, ProjectRoomGrant, …) instead of def-0, def-1, …
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`),
    },
  });
  await app.register(swaggerUi, {
    routePrefix: "/docs",
    transformSpecification: (spec) => normalizeOpenApi(spec as Record<string, unknown>, ctx.config.publicUrl),
  });

  app.get("/healthz", { schema: { hide: true } }, async () => ({ ok: true }));
  // Readiness (for load balancers and orchestrators): the store answers, every migration is applied, and the
  // background loops this process is configured to run are running. 503 with the failing checks otherwise.
  app.get("/readyz", { schema: { hide: true } }, async (_req, reply) => {
    const failed: string[] = [];
    const checks: Record<string, boolean | "off"> = { store: false, migrations: false };
    try {
      const pending = await pendingMigrations(ctx.store);
      checks.store = true;
      checks.migrations = pending.length === 0;
      if (pending.length) failed.push(`migrations not applied: ${pending.join(", ")} (run npm run migrate)`);
    } catch (e) {
      failed.push(`store unreachable: ${(e as Error).message}`);
    }
    checks.webhook_dispatcher = ctx.config.webhooks.dispatcher ? ctx.webhookDispatcher.isRunning : "off";
    checks.scheduler = ctx.config.scheduler.enabled ? ctx.schedulerEngine.running : "off";
    for (const k of ["webhook_dispatcher", "scheduler"]) if (checks[k] === false) failed.push(`${k} is not running`);
    return reply.code(failed.length ? 503 : 200).send({ ready: failed.length === 0, checks, ...(failed.length ? { failed } : {}) });
  });
  // Valid OpenAPI 3.1 (src/core/openapi.ts merges the paths that differ only in a parameter's name), built once.
  let openapi: object | undefined;
  app.get(
    "/openapi.json",
    { schema: { hide: true } },
    async () => (openapi ??= normalizeOpenApi(app.swagger() as unknown as Record<string, unknown>, ctx.config.publicUrl)),
  );

  // Rate limits on every route registered from here on (the health check and the docs above are not limited).
  await installRateLimits(app, ctx.auth, ctx.config.rateLimit);
  // Idempotency-Key on every POST from here on. Installed before the gate, whose check then runs first (it puts it in
  // front of a route's preHandlers): the key is claimed once the caller is known.
  installIdempotency(app, ctx.idempotency, ctx.auth);
  // Every route from here on declares its access (config.access); one preHandler enforces it.
  installAccessGate(app, ctx.auth);
  // Every mutating call on those routes is recorded in the audit log before its answer goes out.
  installAuditLog(app, ctx.audit, ctx.auth);
  // API requests are metered per project and client (usage_type "api").
  installUsageMeter(app, ctx.meter);
  for (const d of domains) {
    const routes = d.routes;
    if (!routes) continue;
    await app.register(async (area) => {
      // Each area's operations are grouped under its tag in the OpenAPI document.
      area.addHook("onRoute", (route) => {
        const schema = (route.schema ??= {}) as { tags?: string[] };
        schema.tags ??= [d.tag ?? d.name];
      });
      await routes(area.withTypeProvider<TypeBoxTypeProvider>(), ctx);
    });
  }

  // The room server: WebSocket upgrades on /rooms/{room_name}; it registers itself once the server listens and
  // closes its sockets (1012, clients reconnect) before the HTTP server closes.
  ctx.roomServer.attach(app.server, app.log);
  app.addHook("onReady", async () => {
    await ctx.roomServer.recover();
    // Containers of sessions that ended while no server ran (kill -9) go, before rooms start new ones.
    ctx.hosting.start();
  });
  app.addHook("onListen", async () => {
    const a = app.server.address();
    if (a && typeof a === "object") {
      const host = a.address === "0.0.0.0" || a.address === "::" ? "127.0.0.1" : a.family === "IPv6" ? `[${a.address}]` : a.address;
      await ctx.roomServer.start(`http://${host}:${a.port}`);
    }
  });
  app.addHook("preClose", async () => {
    await ctx.roomServer.stop();
    await ctx.hosting.close();
    await ctx.documents.close();
  });
  return app;
}
