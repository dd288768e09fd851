import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { actorId, type Principal } from "../auth/principal.js";
import type { AuthService } from "../auth/service.js";
import { errorBody } from "../core/errors.js";
import { isUuid } from "../core/ids.js";
import type { AuditService } from "./service.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** `false`: calls are not recorded (telemetry ingest: OTLP exports are data, not changes a person made). */
    audit?: false;
  }
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
/** Longest target id kept (path parameters are short already: Fastify's maxParamLength is 100). */
const MAX_TARGET = 200;

/** A created resource's id, read from the response object before it is serialized. */
const createdIds = new WeakMap<FastifyRequest, string>();

/**
 * Record every mutating call (POST, PUT, PATCH, DELETE on any route) in the audit log. Installed once, before the
 * areas register their routes: each mutating route gets two hooks of its own, so reads pay nothing.
 *
 * - preSerialization: remembers a top-level `id` of the response object (the created resource), nothing else.
 * - onSend: writes the row and only then lets the response go, so an acknowledged write always has its entry; if
 *   the row cannot be written the caller gets a 500 instead of the acknowledgement (the call may have taken effect).
 *
 * What a row holds: actor, project, operation (the route's OpenAPI summary), method, route pattern, target id (the
 * last path parameter other than project_id, else the created id), request id, IP, status. Never a body, a header or
 * a query string, so no secret (API key values, webhook secrets, tokens, signatures) can reach it.
 *
 * Failed calls of a caller that could not be identified (401s, and requests refused before the access gate without
 * valid credentials) are not recorded: there is no actor to attribute them to, and anyone could write any number of
 * them. Anonymous calls to public routes are recorded (actor null) when they succeed. Calls refused by the rate
 * limiter (429) are not recorded either.
 */
export function installAuditLog(app: FastifyInstance, audit: AuditService, auth: AuthService) {
  app.addHook("onRoute", (route: RouteOptions) => {
    const methods = [route.method].flat();
    if (!methods.some((m) => MUTATING.has(m)) || route.config?.audit === false) return;
    const pattern = route.url.replace(/:(\w+)/g, "{$1}");
    const summary = (route.schema as { summary?: string } | undefined)?.summary;
    const targetParam = [...route.url.matchAll(/:(\w+)/g)]
      .map((m) => m[1])
      .filter((p) => p !== "project_id")
      .at(-1);
    const isPublic = route.config?.access === "public";

    const capture = async (req: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
      const id = (payload as { id?: unknown } | null)?.id;
      if (typeof id === "string" || typeof id === "number") createdIds.set(req, String(id));
      return payload;
    };

    const write = async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      if (!MUTATING.has(req.method)) return payload;
      const status = reply.statusCode;
      // Refused by the rate limiter: no effect, and recording it would let a throttled caller keep writing rows.
      if (status === 429) return payload;
      let principal: Principal | null = req.principal ?? null;
      // Refused by the gate (403/404) or before it (a 400 on the path): the bearer, if valid, still names the caller.
      if (!principal && !isPublic) principal = await auth.principal(req).catch(() => null);
      if (!principal && status >= 400) return payload;
      const params = (req.params ?? {}) as Record<string, unknown>;
      const pid = params.project_id;
      const projectId = typeof pid === "string" && isUuid(pid) ? pid : principal && principal.kind !== "user" ? principal.projectId : null;
      const param = targetParam === undefined ? undefined : params[targetParam];
      const target = typeof param === "string" && param !== "" ? param : createdIds.get(req);
      try {
        await audit.record({
          project_id: projectId,
          actor: principal ? actorId(principal) : null,
          operation: summary ?? `${req.method} ${pattern}`,
          method: req.method,
          route: pattern,
          // NUL cannot be stored in PostgreSQL text (the URL refuses %00; a created id never has one): replaced, not lost.
          target_id: target === undefined ? null : target.replaceAll("\u0000", "\ufffd").slice(0, MAX_TARGET),
          request_id: req.id,
          ip: req.ip ?? null,
          status,
        });
      } catch (err) {
        req.log.error({ err }, "audit log write failed");
        reply.code(500).header("content-type", "application/json; charset=utf-8");
        return JSON.stringify(errorBody("internal", "the audit log could not be written; the call may have taken effect"));
      }
      return payload;
    };

    route.preSerialization = [...hooks(route.preSerialization), capture];
    route.onSend = [...hooks(route.onSend), write];
  });
}

function hooks<T>(h: T | T[] | undefined): T[] {
  return h === undefined ? [] : Array.isArray(h) ? h : [h];
}
