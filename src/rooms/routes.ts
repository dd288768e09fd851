import { Type } from "@sinclair/typebox";
import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { atLeast, type ProjectAccess } from "../auth/principal.js";
import { forbidden } from "../core/errors.js";
import { AnyObject, errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { userDefaultScope } from "../tokens/scope.js";
import { roomJson, type RoomRow } from "./service.js";

export const Room = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    metadata: AnyObject,
    annotations: Type.Record(Type.String(), Type.String()),
    created_at: Type.String(),
  },
  { $id: "Room", description: "wire-contract §7.2; `metadata` is always present" },
);

const ByName = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }) });
const ById = Type.Object({ project_id: Uuid, room_id: Type.String({ minLength: 1 }) });

/** Admins, developers and API keys see every room; a member sees rooms they hold a grant on; a participant its own room. */
export function seesAllRooms(a: ProjectAccess) {
  return a.principal.kind !== "participant" && atLeast(a.role, "developer");
}

export async function roomRoutes(app: AreaApp, ctx: AppContext) {
  const { rooms, grants } = ctx;

  /** A room a member/participant may read: 403 without a grant (or for a participant of another room). */
  async function readableRoom(req: FastifyRequest, name: string): Promise<RoomRow> {
    const a = req.projectAccess;
    const room = await rooms.byName(a.projectId, name);
    if (seesAllRooms(a)) return room;
    if (a.principal.kind === "participant") {
      if (a.principal.room !== room.name) throw forbidden("a participant token may only read its own room");
      return room;
    }
    if (!(await grants.scopeOf(room.id, a.userId!))) throw forbidden("you have no grant on this room");
    return room;
  }

  app.post(
    "/accounts/projects/:project_id/rooms",
    {
      config: { access: "member", scopes: ["create_rooms"] },
      schema: {
        summary: "create_room",
        description:
          "Creates a room. `permissions` = initial grants keyed by user id (each an ApiScope). With `if_not_exists` an existing room " +
          "is returned unchanged (200); otherwise a duplicate name is 409. Admins, developers and API keys may create rooms; members " +
          "need can_create_rooms, may name only themselves in `permissions`, and get a grant (user_default scope) on the room they create.",
        params: ProjectParams,
        body: Type.Object({
          name: Type.String(),
          if_not_exists: Nullable(Type.Boolean()),
          metadata: Nullable(AnyObject),
          annotations: Nullable(AnyObject),
          permissions: Nullable(AnyObject),
        }),
        response: { 200: Type.Ref("Room"), 201: Type.Ref("Room"), ...errors(400, 403, 409) },
      },
    },
    async (req, reply) => {
      const pid = req.params.project_id;
      const a = req.projectAccess;
      if (!a.canCreateRooms) throw forbidden("creating rooms needs the developer role or can_create_rooms");
      const initial = grants.checkInitial(req.body.permissions);
      if (!atLeast(a.role, "developer")) {
        const others = Object.keys(initial).filter((u) => u !== a.userId);
        if (others.length) throw forbidden("members may only grant themselves permissions on a room they create");
        if (a.userId && !initial[a.userId]) initial[a.userId] = userDefaultScope();
      }
      const { room, created } = await rooms.create(pid, req.body as never, (tx, room) => grants.putInitial(tx, room, initial));
      reply.code(created ? 201 : 200);
      return roomJson(room);
    },
  );

  app.get(
    "/accounts/projects/:project_id/rooms",
    {
      config: { access: "member" },
      schema: {
        summary: "list_rooms",
        description:
          "Pages of rooms ordered by `room_name` (default) or `created_at` (oldest first), `filter` = substring of the name. " +
          "Members see only the rooms they hold a grant on. `total` counts every match.",
        params: ProjectParams,
        querystring: Type.Object({
          limit: QueryInt({ maximum: 100000 }),
          offset: QueryInt(),
          order_by: Type.Optional(Type.String()),
          filter: Type.Optional(Type.String()),
        }),
        response: { 200: Type.Object({ rooms: Type.Array(Type.Ref("Room")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => {
      const a = req.projectAccess;
      const scope = seesAllRooms(a) ? {} : a.principal.kind === "participant" ? { onlyName: a.principal.room ?? "" } : { grantedTo: a.userId! };
      return rooms.list(req.params.project_id, { ...req.query, ...scope });
    },
  );

  app.get(
    "/accounts/projects/:project_id/rooms/:room_name",
    {
      config: { access: "member" },
      schema: {
        summary: "get_room",
        description: "A room by name. Members need a grant on it (403 otherwise); a participant token reads its own room.",
        params: ByName,
        response: { 200: Type.Ref("Room"), ...errors(403) },
      },
    },
    async (req) => roomJson(await readableRoom(req, req.params.room_name)),
  );

  app.put(
    "/accounts/projects/:project_id/rooms/:room_id",
    {
      config: { access: "developer", scopes: ["update_room"] },
      schema: {
        summary: "update_room",
        description: "Renames a room (grants, shares and everything else stay with it) and replaces metadata/annotations when given.",
        params: ById,
        body: Type.Object({ name: Type.String(), metadata: Nullable(AnyObject), annotations: Nullable(AnyObject) }),
        response: { 200: Type.Ref("Room"), ...errors(400, 409) },
      },
    },
    async (req) => roomJson(await rooms.update(req.params.project_id, req.params.room_id, req.body as never)),
  );

  app.delete(
    "/accounts/projects/:project_id/rooms/:room_id",
    {
      config: { access: "developer", scopes: ["delete_room"] },
      schema: {
        summary: "delete_room",
        description: "Deletes the room and, in the same transaction, everything that belongs to it (grants, shares, and other areas' rows).",
        params: ById,
        response: { 200: Ok },
      },
    },
    async (req) => {
      await rooms.delete(req.params.project_id, req.params.room_id);
      return { ok: true };
    },
  );

  app.post(
    "/accounts/projects/:project_id/rooms/:room_name/connect",
    {
      // Not in the audit log: minting a token changes nothing stored, and it is the hot path of every join.
      config: { access: "member", audit: false, scopes: ["connect_room"] },
      schema: {
        summary: "connect_room",
        description:
          "Mints a participant JWT for the room (HS256; claims name, grants room/role/api, sub, kid, version, exp). Admins, developers " +
          "and API keys get the full ApiScope; a member gets their room grant's scope (403 without one). API-key callers' tokens are " +
          "signed with that key (kid = key id), users' with the project's signing key.",
        params: ByName,
        response: {
          200: Type.Object({ jwt: Type.String(), room_name: Type.String(), project_id: Type.String(), room_url: Type.String() }),
          ...errors(402, 403),
        },
      },
    },
    async (req) => {
      // MESHAGENT_BILLING_ENFORCE: a project with a negative balance and no subscription is refused (402).
      await ctx.billing.enforce(req.params.project_id);
      return ctx.roomConnector.connect(req.projectAccess, req.params.room_name);
    },
  );
}

export const roomSchemas = [Room];
