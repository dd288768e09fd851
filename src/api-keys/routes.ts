import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { actorId } from "../auth/principal.js";
import { errors, Nullable, Ok, ProjectParams, Uuid } from "../core/http.js";

const ApiKey = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  created_by: Type.Optional(Type.String()),
  created_at: Type.String(),
});

export async function apiKeyRoutes(app: AreaApp, ctx: AppContext) {
  app.post(
    "/accounts/projects/:project_id/api-keys",
    {
      config: { access: "admin" },
      schema: {
        summary: "create_api_key",
        description: "Returns the full key in `value`, this once only.",
        params: ProjectParams,
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), description: Nullable(Type.String({ maxLength: 2000 })) }),
        response: { 201: Type.Intersect([ApiKey, Type.Object({ value: Type.String() })]), ...errors(400) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return ctx.apiKeys.create(req.params.project_id, req.body, actorId(req.principal));
    },
  );
  app.get(
    "/accounts/projects/:project_id/api-keys",
    {
      config: { access: "admin" },
      schema: { summary: "list_api_keys", params: ProjectParams, response: { 200: Type.Object({ keys: Type.Array(ApiKey) }) } },
    },
    async (req) => ({ keys: await ctx.apiKeys.list(req.params.project_id) }),
  );
  app.delete(
    "/accounts/projects/:project_id/api-keys/:id",
    {
      config: { access: "admin" },
      schema: {
        summary: "delete_api_key",
        description: "Revokes the key at once, in every server process.",
        params: Type.Object({ project_id: Uuid, id: Type.String() }),
        response: { 200: Ok },
      },
    },
    async (req) => {
      await ctx.apiKeys.delete(req.params.project_id, req.params.id);
      return { ok: true };
    },
  );
}
