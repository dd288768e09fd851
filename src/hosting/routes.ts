import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { errors, Uuid } from "../core/http.js";
import { ApiError } from "../core/errors.js";
import { hostingStatus } from "./host.js";

const States = ["pending", "pulling", "starting", "running", "restarting", "failed", "stopped", "no_runtime"];
const Status = Type.Object(
  {
    service_id: Type.String(),
    room_name: Type.String(),
    session_id: Type.Optional(Type.String({ description: "the session the state belongs to" })),
    state: Type.String({ description: `one of ${States.join(", ")}` }),
    container_id: Type.Optional(Type.String()),
    restart_count: Type.Integer(),
    restart_scheduled_at: Type.Optional(Type.Number({ description: "seconds since the epoch" })),
    started_at: Type.Optional(Type.Number({ description: "seconds since the epoch" })),
    last_exit_code: Type.Optional(Type.Integer()),
    last_exit_at: Type.Optional(Type.Number({ description: "seconds since the epoch" })),
    last_error: Type.Optional(Type.String({ description: "why it is failed, restarting or no_runtime (never a secret value)" })),
  },
  { $id: "ServiceStatus" },
);
const ServiceP = Type.Object({ project_id: Uuid, service_id: Type.String({ minLength: 1, maxLength: 64 }) });
const RoomServiceP = Type.Object({ project_id: Uuid, room_name: Type.String({ minLength: 1 }), service_id: Type.String({ minLength: 1, maxLength: 64 }) });

/** The runtime state of services (src/hosting): per room, from any process. A developer's business, like services. */
export async function hostingRoutes(app: AreaApp, ctx: AppContext) {
  const access = { access: "developer" } as const;
  const isNotFound = (e: unknown) => e instanceof ApiError && e.status === 404;

  app.get(
    "/accounts/projects/:project_id/services/:service_id/status",
    {
      config: access,
      schema: {
        summary: "get_service_status",
        description:
          "The project service's state in every room it ran in (newest first): pending, pulling, starting, running, restarting, failed, stopped or no_runtime.",
        params: ServiceP,
        response: { 200: Type.Object({ service_id: Type.String(), rooms: Type.Array(Type.Ref("ServiceStatus")) }), ...errors(400) },
      },
    },
    async (req) => {
      const { project_id, service_id } = req.params;
      await ctx.services.getText(project_id, null, service_id);
      return { service_id, rooms: await hostingStatus.ofService(ctx.store.db, project_id, service_id) };
    },
  );

  app.get(
    "/accounts/projects/:project_id/rooms/:room_name/services/:service_id/status",
    {
      config: access,
      schema: {
        summary: "get_room_service_status",
        description: "The state of a service (the room's own, or a project service) in this room; `stopped` when it never ran there.",
        params: RoomServiceP,
        response: { 200: Type.Ref("ServiceStatus"), ...errors(400) },
      },
    },
    async (req) => {
      const { project_id, room_name, service_id } = req.params;
      const room = await ctx.rooms.byName(project_id, room_name);
      try {
        await ctx.services.getText(project_id, room_name, service_id);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        await ctx.services.getText(project_id, null, service_id);
      }
      return hostingStatus.inRoom(ctx.store.db, room.id, room.name, service_id);
    },
  );
}

export const hostingSchemas = [Status];
