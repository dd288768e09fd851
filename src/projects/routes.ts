import { Type } from "@sinclair/typebox";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { AppContext } from "../context.js";
import { AnyObject, errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { projectJson } from "./service.js";

const Project = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    owner_user_id: Type.Optional(Type.String()),
    project_key: Type.String(),
    created_at: Type.String(),
    enabled: Type.Boolean(),
    settings: AnyObject,
  },
  { $id: "Project" },
);

const Flags = {
  is_admin: Nullable(Type.Boolean()),
  is_developer: Nullable(Type.Boolean()),
  can_create_rooms: Nullable(Type.Boolean()),
  can_use_llm_proxy: Nullable(Type.Boolean()),
};

const MemberParams = Type.Object({ project_id: Uuid, user_id: Type.String({ minLength: 1 }) });

export const projectRoutes =
  (ctx: AppContext): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { auth, projects } = ctx;
    const tags = ["projects"];

    app.post(
      "/accounts/projects",
      {
        schema: {
          tags,
          summary: "create_project",
          body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), settings: Nullable(AnyObject) }),
          response: { 201: Type.Ref("Project"), ...errors(400, 401, 403) },
        },
      },
      async (req, reply) => {
        const user = await auth.user(req);
        reply.code(201);
        return projects.create(user.userId, req.body);
      },
    );

    app.get(
      "/accounts/projects",
      { schema: { tags, summary: "list_projects", response: { 200: Type.Object({ projects: Type.Array(Type.Ref("Project")) }), ...errors(401) } } },
      async (req) => {
        const p = await auth.principal(req);
        // An API key (or a participant token) sees the one project it belongs to; a user sees every project they are a member of.
        if (p.kind !== "user") return { projects: [projectJson(await projects.get(p.projectId))] };
        return { projects: await projects.listForUser(p.userId) };
      },
    );

    app.get(
      "/accounts/projects/:project_id",
      { schema: { tags, summary: "get_project", params: ProjectParams, response: { 200: Type.Ref("Project"), ...errors(400, 401, 404) } } },
      async (req) => {
        await auth.projectAccess(req, req.params.project_id);
        return projectJson(await projects.get(req.params.project_id));
      },
    );

    app.put(
      "/accounts/projects/:project_id/settings",
      {
        schema: {
          tags,
          summary: "update_project_settings",
          description: "The whole body is the new settings object; it replaces the old one and is returned as stored.",
          params: ProjectParams,
          body: AnyObject,
          response: { 200: AnyObject, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        await auth.projectAccess(req, req.params.project_id, "admin");
        return projects.updateSettings(req.params.project_id, req.body);
      },
    );

    app.get(
      "/accounts/projects/:project_id/status",
      {
        schema: { tags, summary: "get_status", params: ProjectParams, response: { 200: Type.Object({ enabled: Type.Boolean() }), ...errors(400, 401, 404) } },
      },
      async (req) => {
        await auth.projectAccess(req, req.params.project_id);
        return { enabled: !!(await projects.get(req.params.project_id)).enabled };
      },
    );

    app.get(
      "/accounts/projects/:project_id/role",
      {
        schema: {
          tags,
          summary: "get_project_role",
          params: ProjectParams,
          response: {
            200: Type.Object({
              role: Type.Union([Type.Literal("admin"), Type.Literal("developer"), Type.Literal("member")]),
              can_create_rooms: Type.Boolean(),
              can_use_llm_proxy: Type.Boolean(),
            }),
            ...errors(400, 401, 404),
          },
        },
      },
      async (req) => projects.roleJson(await auth.projectAccess(req, req.params.project_id)),
    );

    app.post(
      "/accounts/projects/:project_id/users",
      {
        schema: {
          tags,
          summary: "add_user_to_project",
          description: "Adds a member by user_id (or, as an extension, by email: an unknown email becomes an invited user). 409 if already a member.",
          params: ProjectParams,
          body: Type.Object({ project_id: Nullable(Type.String()), user_id: Nullable(Type.String({ minLength: 1 })), email: Nullable(Type.String({ minLength: 3 })), ...Flags }),
          response: { 200: Type.Object({ ok: Type.Boolean(), user_id: Type.String() }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => {
        await auth.projectAccess(req, req.params.project_id, "admin");
        return projects.addUser(req.params.project_id, req.body);
      },
    );

    app.put(
      "/accounts/projects/:project_id/users/:user_id",
      {
        schema: { tags, summary: "update_project_user", params: MemberParams, body: Type.Object(Flags), response: { 200: Ok, ...errors(400, 401, 403, 404) } },
      },
      async (req) => {
        await auth.projectAccess(req, req.params.project_id, "admin");
        return projects.updateUser(req.params.project_id, req.params.user_id, req.body);
      },
    );

    app.delete(
      "/accounts/projects/:project_id/users/:user_id",
      { schema: { tags, summary: "remove_user_from_project", params: MemberParams, response: { 200: Ok, ...errors(400, 401, 403, 404) } } },
      async (req) => {
        const access = await auth.projectAccess(req, req.params.project_id);
        // Admins remove anyone but the owner; any member may leave on their own.
        if (access.userId !== req.params.user_id) await auth.projectAccess(req, req.params.project_id, "admin");
        return projects.removeUser(req.params.project_id, req.params.user_id);
      },
    );

    app.get(
      "/accounts/projects/:project_id/users",
      {
        schema: {
          tags,
          summary: "get_users_in_project",
          params: ProjectParams,
          querystring: Type.Object({ count: QueryInt(), offset: QueryInt(), filter: Type.Optional(Type.String()) }),
          response: { 200: Type.Object({ users: Type.Array(AnyObject), total: Type.Integer() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => {
        await auth.projectAccess(req, req.params.project_id, "developer");
        return projects.members(req.params.project_id, req.query);
      },
    );
  };

export const projectSchemas = [Project];
