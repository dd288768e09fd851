import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { errors, OrNull, ProjectParams, QueryInt } from "../core/http.js";

export const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    actor: OrNull(Type.String({ description: 'a user id, "api_key:<key id>", "participant:<kid>"; null for an anonymous public call' })),
    project_id: OrNull(Type.String()),
    operation: Type.String({ description: "the operation's OpenAPI summary (e.g. create_room), else `METHOD /route`" }),
    method: Type.String(),
    route: Type.String({ description: "the route pattern, e.g. /accounts/projects/{project_id}/rooms/{room_id}" }),
    target_id: OrNull(Type.String({ description: "the last path parameter other than project_id, else the created resource's id" })),
    request_id: Type.String(),
    ip: OrNull(Type.String()),
    status: Type.Integer({ description: "the HTTP status of the answer" }),
    outcome: Type.Union([Type.Literal("ok"), Type.Literal("error")]),
    created_at: Type.String({ format: "date-time" }),
  },
  { $id: "AuditEntry", description: "one mutating call; never a body, header or query string" },
);

const Filter = Type.Optional(Type.String({ maxLength: 500 }));

export async function auditRoutes(app: AreaApp, ctx: AppContext) {
  app.get(
    "/accounts/projects/:project_id/audit-log",
    {
      config: { access: "admin" },
      schema: {
        summary: "list_audit_log",
        description:
          "Every mutating call (POST, PUT, PATCH, DELETE) on the project, newest first. Filters: `actor`, `operation`, `target` " +
          "(exact matches) and `since`/`until` (ISO 8601 date-times, inclusive). `limit` defaults to 100 (at most 1000); " +
          "`total` counts every match. Entries are kept MESHAGENT_AUDIT_RETENTION_DAYS days.",
        params: ProjectParams,
        querystring: Type.Object({
          limit: QueryInt(),
          offset: QueryInt(),
          actor: Filter,
          operation: Filter,
          target: Filter,
          since: Filter,
          until: Filter,
        }),
        response: { 200: Type.Object({ entries: Type.Array(Type.Ref("AuditEntry")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => ctx.audit.list(req.params.project_id, req.query),
  );
}
