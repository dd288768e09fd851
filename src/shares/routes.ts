import { Type } from "@sinclair/typebox";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { AnyObject, errors, Nullable, Ok, ProjectParams, QueryInt, Uuid } from "../core/http.js";

const Share = Type.Object(
  { id: Type.String(), project_id: Type.String(), settings: AnyObject, uses: Type.Integer(), created_at: Type.String() },
  { $id: "RoomShare", description: "`settings` exactly as given; `uses` counts successful connects" },
);
const ShareParams = Type.Object({ project_id: Uuid, share_id: Type.String({ minLength: 1 }) });
const SettingsBody = Type.Object({ settings: Nullable(AnyObject) });

export async function shareRoutes(app: AreaApp, ctx: AppContext) {
  const { shares } = ctx;

  app.post(
    "/accounts/projects/:project_id/shares",
    {
      config: { access: "developer" },
      schema: {
        summary: "create_share",
        description:
          "Settings keys read by the server: room (room name), role (user|agent|tool), api (ApiScope; default user_default), " +
          "name (participant name; default guest), expires_at (ISO 8601 or epoch seconds), max_uses, token_ttl (seconds). " +
          "Other keys are stored and returned as given.",
        params: ProjectParams,
        body: SettingsBody,
        response: { 201: Type.Ref("RoomShare"), ...errors(400) },
      },
    },
    async (req, reply) => {
      reply.code(201);
      return shares.create(req.params.project_id, req.body.settings);
    },
  );

  app.get(
    "/accounts/projects/:project_id/shares",
    {
      config: { access: "developer" },
      schema: {
        summary: "list_shares",
        params: ProjectParams,
        querystring: Type.Object({ limit: QueryInt({ maximum: 100000 }), offset: QueryInt() }),
        response: { 200: Type.Object({ shares: Type.Array(Type.Ref("RoomShare")), total: Type.Integer() }), ...errors(400) },
      },
    },
    async (req) => shares.list(req.params.project_id, req.query),
  );

  app.put(
    "/accounts/projects/:project_id/shares/:share_id",
    {
      config: { access: "developer" },
      schema: {
        summary: "update_share",
        description: "Replaces the settings (the use count so far is kept).",
        params: ShareParams,
        body: SettingsBody,
        response: { 200: Type.Ref("RoomShare"), ...errors(400) },
      },
    },
    async (req) => shares.update(req.params.project_id, req.params.share_id, req.body.settings),
  );

  app.delete(
    "/accounts/projects/:project_id/shares/:share_id",
    { config: { access: "developer" }, schema: { summary: "delete_share", params: ShareParams, response: { 200: Ok } } },
    async (req) => {
      await shares.delete(req.params.project_id, req.params.share_id);
      return { ok: true };
    },
  );

  app.post(
    "/shares/:share_id/connect",
    {
      config: { access: "public" },
      schema: {
        summary: "connect_share",
        description:
          "Needs no credentials (any bearer is ignored). Mints a participant token for the share's room with the share's terms. " +
          "404 for an unknown or deleted share, 410 once it expired or its max_uses are spent.",
        params: Type.Object({ share_id: Type.String({ minLength: 1 }) }),
        response: {
          200: Type.Object({ jwt: Type.String(), room_name: Type.String(), project_id: Type.String(), settings: AnyObject, room_url: Type.String() }),
          ...errors(402, 404, 410),
        },
      },
    },
    async (req) => shares.connect(req.params.share_id),
  );
}

export const shareSchemas = [Share];
