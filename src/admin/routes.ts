import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { callerUser } from "../auth/plugin.js";
import { errors, Nullable, QueryInt } from "../core/http.js";
import { SIGNUP_POLICIES } from "./service.js";

const AdminUser = Type.Object(
  {
    id: Type.String(),
    email: Type.String(),
    first_name: Type.Optional(Type.String()),
    last_name: Type.Optional(Type.String()),
    is_server_admin: Type.Boolean(),
    disabled: Type.Boolean(),
    disabled_at: Type.Optional(Type.String()),
    invited: Type.Boolean({ description: "invited by email and not signed up yet" }),
    created_at: Type.String(),
  },
  { $id: "AdminUser" },
);
const Settings = Type.Object(
  { signup_policy: Type.String({ enum: [...SIGNUP_POLICIES], description: "open: anyone may sign up; invite: invited people only; closed: nobody new" }) },
  { $id: "ServerSettings" },
);

export async function adminRoutes(app: AreaApp, ctx: AppContext) {
  const { admin } = ctx;

  app.get(
    "/admin/users",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "admin_list_users",
        description: "Every user of the server, oldest first; `filter` matches email or names (case-insensitive).",
        querystring: Type.Object({ count: QueryInt(), offset: QueryInt(), filter: Type.Optional(Type.String({ maxLength: 200 })) }),
        response: { 200: Type.Object({ users: Type.Array(Type.Ref("AdminUser")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => admin.users(req.query),
  );

  app.put(
    "/admin/users/:user_id",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "admin_update_user",
        description:
          "Make or unmake a server administrator, disable or enable an account. A disabled user's tokens are refused at once, in every " +
          "process. You cannot disable yourself; the last enabled administrator cannot be disabled or demoted (409).",
        params: Type.Object({ user_id: Type.String({ minLength: 1, maxLength: 100 }) }),
        body: Type.Object({ is_server_admin: Nullable(Type.Boolean()), disabled: Nullable(Type.Boolean()) }),
        response: { 200: Type.Ref("AdminUser"), ...errors(400, 404, 409) },
      },
    },
    async (req) => admin.updateUser(callerUser(req).userId, req.params.user_id, req.body),
  );

  app.get(
    "/admin/settings",
    { config: { access: "server_admin" }, schema: { summary: "admin_get_settings", response: { 200: Type.Ref("ServerSettings") } } },
    async () => admin.settings(),
  );

  app.put(
    "/admin/settings",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "admin_update_settings",
        description: "Changes the settings given.",
        body: Type.Object({ signup_policy: Nullable(Type.String()) }),
        response: { 200: Type.Ref("ServerSettings"), ...errors(400) },
      },
    },
    async (req) => admin.updateSettings(req.body),
  );

  app.get(
    "/admin/oauth/clients",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "admin_list_oauth_clients",
        description: "The instance-wide OAuth clients (not a project's): the official CLI's, registered at first start, and those added here.",
        response: { 200: Type.Object({ clients: Type.Array(Type.Ref("ServerOAuthClient")) }) },
      },
    },
    async () => ({ clients: await ctx.oauthServer.serverClients() }),
  );

  app.post(
    "/admin/oauth/clients",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "admin_create_oauth_client",
        description:
          "Registers an instance-wide client: `public` (PKCE, no secret: apps on a device, single-page apps) or confidential (its " +
          "`client_secret` is in this answer only). `official` (default true) skips the consent page.",
        body: Type.Object({
          redirect_uris: Type.Array(Type.String(), { maxItems: 20 }),
          grant_types: Type.Optional(Type.Array(Type.String(), { maxItems: 3 })),
          scope: Type.Optional(Type.String({ maxLength: 2000 })),
          name: Type.Optional(Type.String({ maxLength: 200 })),
          public: Type.Optional(Type.Boolean()),
          official: Type.Optional(Type.Boolean()),
        }),
        response: {
          201: Type.Object({ ...ServerOAuthClient.properties, client_secret: Type.Optional(Type.String()) }),
          ...errors(400),
        },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return ctx.oauthServer.createServerClient(req.body);
    },
  );

  app.delete(
    "/admin/oauth/clients/:client_id",
    {
      config: { access: "server_admin" },
      schema: {
        summary: "admin_delete_oauth_client",
        description: "Deletes an instance-wide client; every token it was given stops working at once (204).",
        params: Type.Object({ client_id: Type.String({ minLength: 1, maxLength: 200 }) }),
        response: { 204: Type.Null({ description: "no body" }), ...errors(404) },
      },
    },
    async (req, reply) => {
      await ctx.oauthServer.deleteServerClient(req.params.client_id);
      return reply.code(204).send(null);
    },
  );
}

const ServerOAuthClient = Type.Object(
  {
    client_id: Type.String(),
    public: Type.Boolean(),
    grant_types: Type.Array(Type.String()),
    redirect_uris: Type.Array(Type.String()),
    scope: Type.String(),
    metadata: Type.Record(Type.String(), Type.String()),
    official: Type.Boolean(),
    created_at: Type.String(),
  },
  { $id: "ServerOAuthClient" },
);

export const adminSchemas = [AdminUser, Settings, ServerOAuthClient];
