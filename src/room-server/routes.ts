import { Type } from "@sinclair/typebox";
import { Readable } from "node:stream";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { badRequest, forbidden, notFound } from "../core/errors.js";
import { errors } from "../core/http.js";
import { MAX_TIME_MS } from "../core/clock.js";
import { normalizePath } from "./scope.js";

/** The HTTP side of the room server: the signed URLs that `storage.download_url` hands out. */
export async function roomServerRoutes(app: AreaApp, ctx: AppContext) {
  app.get(
    "/room-storage/:room_id/*",
    {
      config: { access: "public" },
      schema: {
        summary: "room_storage_download",
        description: "Downloads a room file through a URL from storage.download_url (signed, valid for one hour; no bearer).",
        params: Type.Object({ room_id: Type.String(), "*": Type.String() }),
        querystring: Type.Object({ expires: Type.Integer({ minimum: 0, maximum: MAX_TIME_MS }), signature: Type.String({ maxLength: 128 }) }),
        response: { 200: Type.Unknown(), ...errors(400, 403, 404) },
      },
    },
    async (req, reply) => {
      let path: string;
      try {
        path = normalizePath(req.params["*"], "path", false);
      } catch {
        throw badRequest("invalid file path");
      }
      if (!ctx.roomServer.verifyDownload(req.params.room_id, path, req.query.expires, req.query.signature))
        throw forbidden("the download URL is invalid or expired");
      const projectId = await ctx.rooms.projectOfRoomId(req.params.room_id);
      if (projectId === null) throw notFound("file");
      let file;
      try {
        file = await ctx.roomStorage.openRead({ projectId, roomId: req.params.room_id }, path);
      } catch {
        throw notFound("file");
      }
      const f = file;
      let offset = 0;
      const body = new Readable({
        async read() {
          try {
            const chunk = offset < f.size ? await f.read(offset, Math.min(256 * 1024, f.size - offset)) : Buffer.alloc(0);
            offset += chunk.length;
            if (chunk.length) this.push(chunk);
            else {
              this.push(null);
              await f.close();
            }
          } catch (e) {
            this.destroy(e as Error);
          }
        },
        destroy(err, cb) {
          void f.close().catch(() => {});
          cb(err);
        },
      });
      reply.header("content-type", f.mime_type);
      reply.header("content-length", String(f.size));
      reply.header("content-disposition", `attachment; filename*=UTF-8''${encodeURIComponent(f.name)}`);
      return reply.send(body);
    },
  );
}
