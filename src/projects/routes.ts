import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { AnyObject, errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { callerUser } from "../auth/plugin.js";
import { requireRole } from "../auth/principal.js";
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

export async function projectRoutes(app: AreaApp, ctx: AppContext) {
  const { projects } = ctx;

  app.post(
    "/accounts/projects",
    {
      config: { access: "user" },
      schema: {
        summary: "create_project",
        body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), settings: Nullable(AnyObject) }),
        response: { 201: Type.Ref("Project"), ...errors(400) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return projects.create(callerUser(req).userId, req.body);
    },
  );

  app.get(
    "/accounts/projects",
    {
      config: { access: "principal" },
      schema: { summary: "list_projects", response: { 200: Type.Object({ projects: Type.Array(Type.Ref("Project")) }) } },
    },
    async (req) => {
      const p = req.principal;
      // An API key (or a participant token) sees the one project it belongs to; a user sees every project they are a member of.
      if (p.kind !== "user") return { projects: [projectJson(await projects.get(p.projectId))] };
      return { projects: await projects.listForUser(p.userId) };
    },
  );

  app.get(
    "/accounts/projects/:project_id",
    { config: { access: "member" }, schema: { summary: "get_project", params: ProjectParams, response: { 200: Type.Ref("Project"), ...errors(400) } } },
    async (req) => projectJson(await projects.get(req.params.project_id)),
  );

  app.put(
    "/accounts/projects/:project_id/settings",
    {
      config: { access: "admin" },
      schema: {
        summary: "update_project_settings",
        description: "The whole body is the new settings object; it replaces the old one and is returned as stored.",
        params: ProjectParams,
        body: AnyObject,
        response: { 200: AnyObject, ...errors(400) },
      },
    },
    async (req) => projects.updateSettings(req.params.project_id, req.body),
  );

  app.get(
    "/accounts/projects/:project_id/status",
    {
      config: { access: "member" },
      schema: { summary: "get_status", params: ProjectParams, response: { 200: Type.Object({ enabled: Type.Boolean() }), ...errors(400) } },
    },
    async (req) => ({ enabled: !!(await projects.get(req.params.project_id)).enabled }),
  );

  app.get(
    "/accounts/projects/:project_id/role",
    {
      config: { access: "member" },
      schema: {
        summary: "get_project_role",
        params: ProjectParams,
        response: {
          200: Type.Object({
            role: Type.Union([Type.Literal("admin"), Type.Literal("developer"), Type.Literal("member")]),
            can_create_rooms: Type.Boolean(),
            can_use_llm_proxy: Type.Boolean(),
          }),
          ...errors(400),
        },
      },
    },
    async (req) => projects.roleJson(req.projectAccess),
  );

  app.post(
    "/accounts/projects/:project_id/users",
    {
      config: { access: "admin", scopes: ["create_users"] },
      schema: {
        summary: "add_user_to_project",
        description: "Adds a member by user_id (or, as an extension, by email: an unknown email becomes an invited user). 409 if already a member.",
        params: ProjectParams,
        body: Type.Object({
          project_id: Nullable(Type.String()),
          user_id: Nullable(Type.String({ minLength: 1 })),
          email: Nullable(Type.String({ minLength: 3 })),
          ...Flags,
        }),
        response: { 200: Type.Object({ ok: Type.Boolean(), user_id: Type.String() }), ...errors(400, 404, 409) },
      },
    },
    async (req) => projects.addUser(req.params.project_id, req.body),
  );

  app.put(
    "/accounts/projects/:project_id/users/:user_id",
    {
      config: { access: "admin" },
      schema: { summary: "update_project_user", params: MemberParams, body: Type.Object(Flags), response: { 200: Ok, ...errors(400) } },
    },
    async (req) => projects.updateUser(req.params.project_id, req.params.user_id, req.body),
  );

  app.delete(
    "/accounts/projects/:project_id/users/:user_id",
    {
      config: { access: "member" },
      schema: { summary: "remove_user_from_project", params: MemberParams, response: { 200: Ok, ...errors(400, 403) } },
    },
    async (req) => {
      // Admins remove anyone but the owner; any member may leave on their own.
      if (req.projectAccess.userId !== req.params.user_id) requireRole(req.projectAccess, "admin");
      return projects.removeUser(req.params.project_id, req.params.user_id);
    },
  );

  app.get(
    "/accounts/projects/:project_id/users",
    {
      config: { access: "developer" },
      schema: {
        summary: "get_users_in_project",
        params: ProjectParams,
        querystring: Type.Object({ count: QueryInt(), offset: QueryInt(), filter: Type.Optional(Type.String()) }),
        response: { 200: Type.Object({ users: Type.Array(AnyObject), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => projects.members(req.params.project_id, req.query),
  );
}

export const projectSchemas = [Project];
