import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";

const OAuthClient = Type.Object(
  {
    client_id: Type.String(),
    client_secret: Type.String({ description: "the secret in create's answer only; elsewhere an empty string" }),
    grant_types: Type.Array(Type.String()),
    response_types: Type.Array(Type.String()),
    redirect_uris: Type.Array(Type.String()),
    scope: Type.String(),
    project_id: Type.String(),
    metadata: Type.Record(Type.String(), Type.String()),
    official: Type.Boolean(),
  },
  { $id: "OAuthClient" },
);

const Fields = {
  grant_types: Nullable(Type.Array(Type.String(), { description: "authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:device_code" })),
  response_types: Nullable(Type.Array(Type.String(), { description: '["code"] with authorization_code, else []' })),
  redirect_uris: Nullable(Type.Array(Type.String(), { description: "https URLs, or http on localhost / 127.0.0.1 / [::1]; no fragment" })),
  scope: Nullable(Type.String({ description: "space-separated scopes the client may ask for" })),
  metadata: Nullable(Type.Record(Type.String(), Type.String())),
  official: Nullable(Type.Boolean({ description: "official clients skip the consent page: only a server administrator may set it (others get 403)" })),
};
const ClientParams = Type.Object({ project_id: Uuid, client_id: Type.String({ minLength: 1, maxLength: 200 }) });

export async function oauthClientRoutes(app: AreaApp, ctx: AppContext) {
  const { oauthClients } = ctx;

  app.post(
    "/accounts/projects/:project_id/oauth/clients",
    {
      config: { access: "admin" },
      schema: {
        summary: "create_oauth_client",
        description: "Returns the client with its `client_secret`, this once only (it is sealed at rest).",
        params: ProjectParams,
        body: Type.Object(Fields),
        response: { 201: Type.Ref("OAuthClient"), ...errors(400, 403) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return oauthClients.create(req.params.project_id, req.body, await ctx.auth.isServerAdmin(req.principal));
    },
  );

  app.get(
    "/accounts/projects/:project_id/oauth/clients",
    {
      config: { access: "admin" },
      schema: {
        summary: "list_oauth_clients",
        description: "Oldest first; `filter` matches the client id, scope or metadata (case-insensitive). `client_secret` is empty.",
        params: ProjectParams,
        querystring: Type.Object({ count: QueryInt(), offset: QueryInt(), filter: Type.Optional(Type.String({ maxLength: 200 })) }),
        response: { 200: Type.Object({ clients: Type.Array(Type.Ref("OAuthClient")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => oauthClients.list(req.params.project_id, req.query),
  );

  app.get(
    "/accounts/projects/:project_id/oauth/clients/:client_id",
    {
      config: { access: "admin" },
      schema: { summary: "get_oauth_client", params: ClientParams, response: { 200: Type.Ref("OAuthClient"), ...errors(404) } },
    },
    async (req) => oauthClients.get(req.params.project_id, req.params.client_id),
  );

  app.put(
    "/accounts/projects/:project_id/oauth/clients/:client_id",
    {
      config: { access: "admin" },
      schema: {
        summary: "update_oauth_client",
        description: "Changes the keys given; the client id and secret stay.",
        params: ClientParams,
        body: Type.Object(Fields),
        response: { 200: Ok, ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      await oauthClients.update(req.params.project_id, req.params.client_id, req.body, await ctx.auth.isServerAdmin(req.principal));
      return { ok: true };
    },
  );

  app.delete(
    "/accounts/projects/:project_id/oauth/clients/:client_id",
    {
      config: { access: "admin" },
      schema: {
        summary: "delete_oauth_client",
        description: "204.",
        params: ClientParams,
        response: { 204: Type.Null({ description: "no body" }), ...errors(404) },
      },
    },
    async (req, reply) => {
      await oauthClients.delete(req.params.project_id, req.params.client_id);
      return reply.code(204).send(null);
    },
  );
}

export const oauthClientSchemas = [OAuthClient];
