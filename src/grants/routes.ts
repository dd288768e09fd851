import { Type } from "@sinclair/typebox";
import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { atLeast } from "../auth/principal.js";
import { forbidden } from "../core/errors.js";
import { AnyObject, errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";

const Grant = Type.Object(
  { room: Type.Ref("Room"), user_id: Type.String(), permissions: AnyObject },
  { $id: "ProjectRoomGrant", description: "`permissions` is the ApiScope exactly as stored" },
);
const GrantsPage = Type.Object({ room_grants: Type.Array(Type.Ref("ProjectRoomGrant")), total: Type.Integer() });
const Paging = { limit: QueryInt({ maximum: 100000 }), offset: QueryInt() };
const RoomUser = Type.Object({ project_id: Uuid, room_id: Type.String({ minLength: 1 }), user_id: Type.String({ minLength: 1 }) });

export async function grantRoutes(app: AreaApp, ctx: AppContext) {
  const { grants } = ctx;
  /** Developers, admins and API keys read any grant; a member (a user) reads only their own. */
  const readFor = (req: FastifyRequest, userId: string) => {
    const a = req.projectAccess;
    if (a.principal.kind !== "participant" && atLeast(a.role, "developer")) return;
    if (a.userId && a.userId === userId) return;
    throw forbidden("members may read only their own room grants");
  };

  app.post(
    "/accounts/projects/:project_id/room-grants",
    {
      config: { access: "developer" },
      schema: {
        summary: "create_room_grant / create_room_grant_by_email",
        description:
          "Grants a user an ApiScope on a room (`room_id` = room id or name). By `email`, an unknown address becomes an invited user " +
          "whose grant applies once they sign up. The grantee becomes a project member if not one yet. 409 if the grant exists. " +
          "`invite_redirect_url` is accepted and ignored (this server sends no invitation mail).",
        params: ProjectParams,
        body: Type.Object({
          room_id: Type.String({ minLength: 1 }),
          user_id: Nullable(Type.String({ minLength: 1 })),
          email: Nullable(Type.String({ minLength: 3, maxLength: 320 })),
          permissions: Nullable(AnyObject),
          invite_redirect_url: Nullable(Type.String()),
        }),
        response: { 201: Type.Ref("ProjectRoomGrant"), ...errors(400, 409) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return grants.create(req.params.project_id, req.body);
    },
  );

  app.put(
    "/accounts/projects/:project_id/room-grants/:grant_id",
    {
      config: { access: "developer" },
      schema: {
        summary: "update_room_grant",
        description: "Replaces the grant's ApiScope. Keyed on (room_id, user_id) from the body; `grant_id` is ignored.",
        params: Type.Object({ project_id: Uuid, grant_id: Type.String() }),
        body: Type.Object({ room_id: Type.String({ minLength: 1 }), user_id: Type.String({ minLength: 1 }), permissions: Nullable(AnyObject) }),
        response: { 200: Type.Ref("ProjectRoomGrant"), ...errors(400) },
      },
    },
    async (req) => grants.update(req.params.project_id, req.body),
  );

  app.get(
    "/accounts/projects/:project_id/room-grants",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_room_grants",
        params: ProjectParams,
        querystring: Type.Object({ ...Paging, order_by: Type.Optional(Type.String({ description: "room_name (default) or created_at" })) }),
        response: { 200: GrantsPage, ...errors(400) },
      },
    },
    async (req) => grants.list(req.params.project_id, req.query),
  );

  app.get(
    "/accounts/projects/:project_id/room-grants/by-room",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_unique_rooms_with_grants",
        params: ProjectParams,
        querystring: Type.Object(Paging),
        response: {
          200: Type.Object({ rooms: Type.Array(Type.Object({ room: Type.Ref("Room"), count: Type.Integer() })), total: Type.Integer() }),
          ...errors(400),
        },
      },
    },
    async (req) => grants.roomsWithGrants(req.params.project_id, req.query),
  );

  app.get(
    "/accounts/projects/:project_id/room-grants/by-room/:room",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_room_grants_by_room",
        description: "`room` is a room name or id.",
        params: Type.Object({ project_id: Uuid, room: Type.String({ minLength: 1 }) }),
        querystring: Type.Object(Paging),
        response: { 200: GrantsPage, ...errors(400) },
      },
    },
    async (req) => grants.listByRoom(req.params.project_id, req.params.room, req.query),
  );

  app.get(
    "/accounts/projects/:project_id/room-grants/by-user",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_unique_users_with_grants",
        params: ProjectParams,
        querystring: Type.Object({ ...Paging, filter: Type.Optional(Type.String()) }),
        response: {
          200: Type.Object({
            users: Type.Array(
              Type.Object({
                user_id: Type.String(),
                count: Type.Integer(),
                email: Type.String(),
                first_name: Type.Optional(Type.String()),
                last_name: Type.Optional(Type.String()),
              }),
            ),
            total: Type.Integer(),
          }),
          ...errors(400),
        },
      },
    },
    async (req) => grants.usersWithGrants(req.params.project_id, req.query),
  );

  app.get(
    "/accounts/projects/:project_id/room-grants/by-user/:user_id",
    {
      config: { access: "member" },
      schema: {
        summary: "list_room_grants_by_user",
        description: "A member may list their own grants.",
        params: Type.Object({ project_id: Uuid, user_id: Type.String({ minLength: 1 }) }),
        querystring: Type.Object({ ...Paging, order_by: Type.Optional(Type.String()), filter: Type.Optional(Type.String()) }),
        response: { 200: GrantsPage, ...errors(400, 403) },
      },
    },
    async (req) => {
      readFor(req, req.params.user_id);
      return grants.list(req.params.project_id, { ...req.query, userId: req.params.user_id }, 100);
    },
  );

  app.get(
    "/accounts/projects/:project_id/room-grants/:room_id/:user_id",
    {
      config: { access: "member" },
      schema: {
        summary: "get_room_grant",
        description: "`room_id` is a room id or name. A member may read their own grant.",
        params: RoomUser,
        response: { 200: Type.Ref("ProjectRoomGrant"), ...errors(403) },
      },
    },
    async (req) => {
      readFor(req, req.params.user_id);
      return grants.get(req.params.project_id, req.params.room_id, req.params.user_id);
    },
  );

  app.delete(
    "/accounts/projects/:project_id/room-grants/:room_id/:user_id",
    { config: { access: "developer" }, schema: { summary: "delete_room_grant", params: RoomUser, response: { 200: Ok } } },
    async (req) => {
      await grants.remove(req.params.project_id, req.params.room_id, req.params.user_id);
      return { ok: true };
    },
  );
}

export const grantSchemas = [Grant];
