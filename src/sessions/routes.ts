import { Type } from "@sinclair/typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { AnyObject, errors, OrNull, ProjectParams, QueryInt, Uuid } from "../core/http.js";
import { isUuid } from "../core/ids.js";

const RoomSession = Type.Object(
  {
    id: Type.String(),
    room_id: OrNull(Type.String()),
    room_name: Type.String(),
    created_at: Type.String({ format: "date-time" }),
    is_active: Type.Boolean(),
    participants: Type.Record(Type.String(), Type.Integer(), {
      description: "Participants by role: connected now for an active session; everyone who joined for an ended one",
    }),
    ended_at: OrNull(Type.String({ format: "date-time" })),
  },
  { $id: "RoomSession", additionalProperties: true },
);

const SessionParams = Type.Object({ project_id: Uuid, session_id: Type.String() });

export const sessionSchemas = [RoomSession];

/** Sessions (wire-contract §6.6). Developers, admins and the project's API keys may read and terminate them. */
export async function sessionRoutes(app: AreaApp, ctx: AppContext) {
  const { sessions } = ctx;
  const Sessions = Type.Object({ sessions: Type.Array(Type.Ref("RoomSession")) });

  app.get(
    "/accounts/projects/:project_id/sessions/active",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_active_sessions",
        description: "Sessions running now (a room with participants, or empty for less than MESHAGENT_ROOM_EMPTY_TIMEOUT), newest first.",
        params: ProjectParams,
        response: { 200: Sessions },
      },
    },
    async (req) => ({ sessions: await sessions.listActive(req.params.project_id) }),
  );

  app.get(
    "/accounts/projects/:project_id/sessions",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_recent_sessions",
        description: "The latest sessions, newest first. `limit` defaults to 25 (at most 1000); `room_id` (an id, or a room name) narrows to one room.",
        params: ProjectParams,
        querystring: Type.Object({ limit: QueryInt({ minimum: 1 }), room_id: Type.Optional(Type.String()) }),
        response: { 200: Sessions, ...errors(400) },
      },
    },
    async (req) => {
      const pid = req.params.project_id;
      const limit = Math.min(req.query.limit ?? 25, 1000);
      let roomId: string | undefined;
      const ref = req.query.room_id;
      if (ref) {
        if (isUuid(ref)) roomId = ref;
        else {
          const room = await ctx.rooms.byRef(pid, ref).catch(() => null);
          if (!room) return { sessions: [] };
          roomId = room.id;
        }
      }
      return { sessions: await sessions.listRecent(pid, limit, roomId) };
    },
  );

  app.get(
    "/accounts/projects/:project_id/sessions/:session_id",
    {
      config: { access: "developer" },
      schema: {
        summary: "get_session",
        description: "One session: the RoomSession keys plus ended_at, end_reason, participant_seconds and participant_list.",
        params: SessionParams,
        response: { 200: AnyObject },
      },
    },
    async (req) => sessions.get(req.params.project_id, req.params.session_id),
  );

  app.get(
    "/accounts/projects/:project_id/sessions/:session_id/events",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_session_events",
        description:
          "The session's events in order: room.started, participant.joined, participant.left, error, log (OTLP logs), room.ended. " +
          "Each is {type, data, created_at}.",
        params: SessionParams,
        response: {
          200: Type.Object({ events: Type.Array(Type.Object({ type: Type.String(), data: Type.Unknown(), created_at: Type.String() })) }),
          ...errors(),
        },
      },
    },
    async (req) => ({ events: await sessions.listEvents(req.params.project_id, req.params.session_id) }),
  );

  app.get(
    "/accounts/projects/:project_id/sessions/:session_id/spans",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_session_spans",
        description:
          "Spans participants sent to POST /v1/traces during the session: trace_id, span_id, parent_span_id, span_name (and name), " +
          "created_at (start), duration (ns), span_attributes, resource_attributes, kind, status_code, status_message, participant_name.",
        params: SessionParams,
        response: { 200: Type.Object({ spans: Type.Array(AnyObject) }) },
      },
    },
    async (req) => ({ spans: await sessions.listSpans(req.params.project_id, req.params.session_id) }),
  );

  app.get(
    "/accounts/projects/:project_id/sessions/:session_id/metrics",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_session_metrics",
        description:
          "Metric points in order: {name, kind (gauge|sum|histogram|summary|exponential_histogram), unit, value, data?, attributes, " +
          "timestamp, source (server|otlp), participant_name}. The server records room.participants (gauge, at every join and leave) " +
          "and the cumulative sums room.messages, room.queue.sent, room.queue.received, room.bytes_in and room.bytes_out; " +
          "agents add theirs through POST /v1/metrics.",
        params: SessionParams,
        response: { 200: Type.Object({ metrics: Type.Array(AnyObject) }) },
      },
    },
    async (req) => ({ metrics: await sessions.listMetrics(req.params.project_id, req.params.session_id) }),
  );

  // terminate carries no body, with or without a JSON content type (the app-wide JSON parser takes an empty body).
  await app.register(async (plain) => {
    plain.withTypeProvider<TypeBoxTypeProvider>().post(
      "/accounts/projects/:project_id/sessions/:session_id/terminate",
      {
        config: { access: "developer" },
        schema: {
          summary: "terminate",
          description: "Ends the session: every participant's socket closes with code 1000 (the clients do not reconnect). Idempotent.",
          params: SessionParams,
          response: { 204: Type.Null() },
        },
      },
      async (req, reply) => {
        const row = await sessions.row(req.params.project_id, req.params.session_id);
        await ctx.roomServer.terminate(row);
        return reply.code(204).send(null);
      },
    );
  });
}
