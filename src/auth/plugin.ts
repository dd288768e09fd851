import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler, RouteOptions } from "fastify";
import { errors } from "../core/http.js";
import { unauthorized } from "../core/errors.js";
import type { AuthService } from "./service.js";
import type { ParticipantPrincipal, Principal, ProjectAccess, Role } from "./principal.js";
import { checkScopes, scopeNeeds, type ScopeNeeds } from "./scopes.js";

/**
 * Who may call a route, declared on it as `config: { access }` and enforced by one preHandler:
 * - `public`: no credentials (a bearer, if sent, is ignored).
 * - `principal`: any valid bearer (API key, user token, participant JWT).
 * - `user`: a user token (account-level calls); API keys and participant tokens get 403.
 * - `member` | `developer` | `admin`: that role or more in the route's `:project_id` (API keys are admins of their
 *   own project, participant tokens members of theirs); no access to the project is 404, a lower role 403.
 * - `participant`: a participant JWT (room services: OTLP export); anything else is 401.
 * - `server_admin`: a user token of a server administrator (instance-wide settings, users); anyone else valid gets 403.
 */
export const ACCESS_LEVELS = ["public", "principal", "user", "member", "developer", "admin", "participant", "server_admin"] as const;
export type Access = (typeof ACCESS_LEVELS)[number];

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
    /** Scopes an OAuth token needs here besides those the access level and path imply (src/auth/scopes.ts). */
    scopes?: string[];
  }
  interface FastifyRequest {
    /** The caller; set by the access gate on every route whose access is not `public`. */
    principal: Principal;
    /** The caller's rights in `:project_id`; set on `member`, `developer` and `admin` routes. */
    projectAccess: ProjectAccess;
  }
}

const PROJECT_ROLES: Partial<Record<Access, Role>> = { member: "member", developer: "developer", admin: "admin" };

/** The error statuses a route's declared access can produce (added to its OpenAPI responses). */
export const ACCESS_ERRORS: Record<Access, number[]> = {
  public: [],
  principal: [401],
  user: [401, 403],
  member: [401, 403, 404],
  developer: [401, 403, 404],
  admin: [401, 403, 404],
  participant: [401],
  server_admin: [401, 403],
};

/** The user behind a `user` route (the gate has checked it is one). */
export const callerUser = (req: FastifyRequest) => req.principal as Extract<Principal, { kind: "user" }>;
/** The participant behind a `participant` route. */
export const callerParticipant = (req: FastifyRequest) => req.principal as ParticipantPrincipal;

function gate(auth: AuthService, access: Access, needs: ScopeNeeds): preHandlerAsyncHookHandler | null {
  const min = PROJECT_ROLES[access];
  const scoped = (req: FastifyRequest, p: Principal) => checkScopes(p, needs, req.params as Record<string, string>);
  if (min)
    return async (req) => {
      const projectId = (req.params as { project_id?: string }).project_id;
      req.projectAccess = await auth.projectAccess(req, projectId ?? "", min);
      req.principal = req.projectAccess.principal;
      scoped(req, req.principal);
    };
  switch (access) {
    case "public":
      return null;
    case "principal":
      return async (req) => {
        req.principal = await auth.principal(req);
        scoped(req, req.principal);
      };
    case "user":
      return async (req) => {
        req.principal = await auth.user(req);
        scoped(req, req.principal);
      };
    case "server_admin":
      return async (req) => {
        req.principal = await auth.serverAdmin(req);
        scoped(req, req.principal);
      };
    case "participant":
      return async (req) => {
        const p = await auth.principal(req).catch(() => null);
        if (!p || p.kind !== "participant") throw unauthorized("a participant token is required");
        req.principal = p;
      };
  }
  return null;
}

/**
 * Install the access gate: every route registered after this must declare `config.access` (startup fails
 * otherwise, naming the route); its preHandler resolves the caller once, and its OpenAPI operation gets the
 * `x-access` extension, the 401/403/404 responses that access implies, and `security: []` when public.
 * Routes hidden from the document (`schema.hide`) that declare nothing are infrastructure (health, docs).
 */
export function installAccessGate(app: FastifyInstance, auth: AuthService) {
  app.decorateRequest("principal", null as never);
  app.decorateRequest("projectAccess", null as never);
  app.addHook("onRoute", (route: RouteOptions) => {
    const access = route.config?.access;
    const schema = (route.schema ?? {}) as Record<string, unknown> & { hide?: boolean; response?: Record<string, unknown> };
    if (!access) {
      if (schema.hide) return;
      throw new Error(`route ${route.method} ${route.url} declares no access (config: { access: ... })`);
    }
    if (!ACCESS_LEVELS.includes(access)) throw new Error(`route ${route.method} ${route.url}: unknown access "${access}"`);
    if (PROJECT_ROLES[access] && !route.url.includes(":project_id"))
      throw new Error(`route ${route.method} ${route.url}: access "${access}" needs a :project_id path parameter`);
    schema["x-access"] = access;
    if (access === "public") schema.security = [];
    schema.response = { ...errors(...ACCESS_ERRORS[access]), ...(schema.response ?? {}) };
    route.schema = schema;
    const check = gate(auth, access, scopeNeeds(route.url, access, route.config?.scopes));
    if (check) {
      const own = route.preHandler ? (Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]) : [];
      route.preHandler = [check, ...own];
    }
  });
}
