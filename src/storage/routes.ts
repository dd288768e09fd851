import { Type } from "@sinclair/typebox";
import type { FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import type { AreaApp } from "../domain.js";
import { badRequest, errorBody, forbidden, notFound } from "../core/errors.js";
import { errors, Nullable, OrNull, ProjectParams } from "../core/http.js";
import { projectScope } from "../blobs/keys.js";
import type { ByteRange } from "../blobs/types.js";
import { rawQueryParam } from "./paths.js";
import { participantIdOf, projectStoragePermissions } from "./policy.js";
import { contentTypeOf } from "./service.js";
import { contentDisposition, ifRangeMatches, notModified, parseRange } from "./conditional.js";

const PathQuery = Type.Object({ path: Type.String({ description: "relative file path, e.g. docs/report.pdf" }) });

const FileEntry = Type.Object(
  {
    name: Type.String(),
    path: Type.String(),
    is_folder: Type.Boolean(),
    size: OrNull(Type.Integer()),
    etag: Type.Optional(Type.String()),
    content_type: Type.Optional(Type.String()),
    created_at: Type.Null(),
    updated_at: OrNull(Type.String()),
  },
  { $id: "StorageEntry" },
);

export const storageSchemas = [FileEntry];

const UploadResult = Type.Object({ path: Type.String(), size: Type.Integer(), etag: Type.String(), updated_at: Type.String() });

/** An unread request body left after an error: drain small ones (keep-alive), close the connection on large ones. */
const DRAIN_LIMIT = 8 * 1024 * 1024;

function declaredLength(req: FastifyRequest): number | undefined {
  const raw = req.headers["content-length"];
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw badRequest("Content-Length must be a non-negative integer");
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw badRequest("Content-Length is too large");
  return n;
}

export async function storageRoutes(app: AreaApp, ctx: AppContext) {
  const { storage } = ctx;

  // Uploads stream: no parser may buffer a body in this scope, and the app's JSON body limit does not apply.
  // Every content type (or none) hands the raw request stream to the handler untouched.
  app.removeAllContentTypeParsers();
  const passThrough = (_req: FastifyRequest, payload: unknown, done: (err: null, body: unknown) => void) => done(null, payload);
  app.addContentTypeParser("application/octet-stream", passThrough);
  app.addContentTypeParser("*", passThrough);

  app.addHook("onSend", async (req, reply) => {
    if (req.method !== "POST" || req.raw.complete) return;
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (!(declared <= DRAIN_LIMIT)) reply.header("connection", "close");
  });

  async function access(req: FastifyRequest) {
    const a = req.projectAccess;
    return { access: a, scope: projectScope(a.projectId), perms: await projectStoragePermissions(a) };
  }

  app.post(
    "/projects/:project_id/storage/upload",
    {
      // The body streams into storage, unhashed: Idempotency-Key does not apply (README "Idempotency").
      config: { access: "member", idempotency: false },
      schema: {
        summary: "upload",
        description:
          "Streams the raw request body (any Content-Type; the official clients send application/octet-stream) into the file at `path`, " +
          "replacing it atomically once the body is complete. 413 above MESHAGENT_MAX_UPLOAD_BYTES or the project's storage quota; " +
          "429 `too_many_uploads` while the project already has MESHAGENT_MAX_CONCURRENT_UPLOADS uploads in progress.",
        params: ProjectParams,
        querystring: PathQuery,
        response: { 200: UploadResult, ...errors(400, 403, 409, 413, 429) },
      },
    },
    async (req) => {
      const { access: a, scope, perms } = await access(req);
      const path = storage.filePath(scope, rawQueryParam(req.url, "path"));
      if (!perms.canWrite(path)) throw forbidden("you may not write this path in the project's storage");
      const contentLength = declaredLength(req);
      // Held until the upload ends in any way: stored, refused, failed, or the client went away (the body errors).
      const release = storage.uploadSlot(a.projectId);
      try {
        return await storage.upload(scope, path, req.raw, { participantId: participantIdOf(a), contentLength });
      } finally {
        release();
      }
    },
  );

  const downloadSchema = {
    summary: "download",
    description:
      "The file's bytes, with Content-Type from its extension, Content-Length, ETag and Last-Modified. " +
      "Supports a single `Range: bytes=…` (206, 416), If-Range and If-None-Match (304). HEAD gives the headers only.",
    params: ProjectParams,
    querystring: PathQuery,
    response: { ...errors(400, 403, 416) },
  };
  // HEAD is its own route: Fastify's automatic HEAD would answer Content-Length: 0.
  for (const method of ["GET", "HEAD"] as const)
    app.route({
      config: { access: "member" },
      method,
      url: "/projects/:project_id/storage/download",
      schema: method === "GET" ? downloadSchema : { ...downloadSchema, hide: true },
      exposeHeadRoute: false,
      handler: async (req, reply) => {
        const { scope, perms } = await access(req);
        const path = storage.filePath(scope, rawQueryParam(req.url, "path"));
        if (!perms.canRead(path)) throw forbidden("you may not read this path in the project's storage");
        let outcome = "full" as "not_modified" | "unsatisfiable" | "full" | "partial";
        let range: ByteRange | undefined;
        const r = await storage.read(scope, path, (info) => {
          range = undefined;
          if (notModified(req.headers["if-none-match"], info.etag)) {
            outcome = "not_modified";
            return { body: false };
          }
          const parsed = ifRangeMatches(req.headers["if-range"] as string | undefined, info.etag, info.lastModified)
            ? parseRange(req.headers.range, info.size)
            : null;
          if (parsed === "unsatisfiable") {
            outcome = "unsatisfiable";
            return { body: false };
          }
          range = parsed ?? undefined;
          outcome = range ? "partial" : "full";
          return req.method === "HEAD" ? { body: false } : { body: true, range };
        });
        if (!r) throw notFound("file");
        const { info } = r;
        reply.header("etag", `"${info.etag}"`);
        reply.header("last-modified", new Date(info.lastModified).toUTCString());
        reply.header("cache-control", "private, no-cache");
        reply.header("accept-ranges", "bytes");
        if (outcome === "not_modified") return reply.code(304).send();
        if (outcome === "unsatisfiable") {
          reply.header("content-range", `bytes */${info.size}`);
          return reply.code(416).send(errorBody("range_not_satisfiable", `the file has ${info.size} bytes`));
        }
        reply.header("content-type", contentTypeOf(path));
        reply.header("x-content-type-options", "nosniff");
        reply.header("content-disposition", contentDisposition(path.slice(path.lastIndexOf("/") + 1)));
        const rng = range as ByteRange | undefined;
        if (rng) {
          reply.code(206);
          reply.header("content-range", `bytes ${rng.start}-${rng.end}/${info.size}`);
        }
        reply.header("content-length", String(rng ? rng.end - rng.start + 1 : info.size));
        return reply.send(r.body);
      },
    });

  app.get(
    "/projects/:project_id/storage/list",
    {
      config: { access: "member" },
      schema: {
        summary: "list",
        description:
          "One level of a folder (`path` omitted or empty = the root): files and subfolders, ordered by name (folders as `name/`, UTF-8 byte order). " +
          "Pages: pass the answer's `next` as `after` to continue.",
        params: ProjectParams,
        querystring: Type.Object({
          path: Type.Optional(Type.String()),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 })),
          after: Type.Optional(Type.String({ maxLength: 1024 })),
        }),
        response: { 200: Type.Object({ files: Type.Array(Type.Ref("StorageEntry")), next: Nullable(Type.String()) }), ...errors(400, 403) },
      },
    },
    async (req) => {
      const { scope, perms } = await access(req);
      const path = storage.folderPath(scope, rawQueryParam(req.url, "path"));
      if (path && !perms.canSee(path, true)) throw forbidden("you may not read this path in the project's storage");
      return storage.list(scope, path, { limit: req.query.limit ?? 1000, after: rawQueryParam(req.url, "after") }, perms);
    },
  );

  app.get(
    "/projects/:project_id/storage/stat",
    {
      config: { access: "member" },
      schema: {
        summary: "stat",
        description: "A file's metadata, or `is_folder: true` for a folder; 404 when nothing is at `path`.",
        params: ProjectParams,
        querystring: PathQuery,
        response: { 200: Type.Ref("StorageEntry"), ...errors(400, 403) },
      },
    },
    async (req) => {
      const { scope, perms } = await access(req);
      const path = storage.folderPath(scope, rawQueryParam(req.url, "path"));
      if (!perms.canSee(path, true)) throw forbidden("you may not read this path in the project's storage");
      const s = await storage.stat(scope, path);
      if (!s || !perms.canSee(path, s.is_folder)) throw notFound("file");
      return s;
    },
  );

  app.delete(
    "/projects/:project_id/storage/delete",
    {
      config: { access: "member" },
      schema: {
        summary: "delete",
        description: "Deletes a file, or with `recursive=true` a folder and everything in it. 409 for a folder without `recursive`.",
        params: ProjectParams,
        querystring: Type.Object({ path: Type.String(), recursive: Type.Optional(Type.Boolean()) }),
        response: { 200: Type.Object({ ok: Type.Boolean(), deleted: Type.Integer() }), ...errors(400, 403, 409) },
      },
    },
    async (req) => {
      const { access: a, scope, perms } = await access(req);
      const path = storage.folderPath(scope, rawQueryParam(req.url, "path"));
      if (!perms.canWrite(path)) throw forbidden("you may not write this path in the project's storage");
      const deleted = await storage.delete(scope, path, { participantId: participantIdOf(a), recursive: req.query.recursive === true });
      return { ok: true, deleted };
    },
  );

  app.get(
    "/projects/:project_id/storage/usage",
    {
      config: { access: "member" },
      schema: {
        summary: "storage usage",
        description: "Stored bytes and files of the project (project storage and its rooms' storage), its quota and the upload limit.",
        params: ProjectParams,
        response: {
          200: Type.Object({ bytes: Type.Integer(), files: Type.Integer(), quota_bytes: Nullable(Type.Integer()), max_upload_bytes: Type.Integer() }),
          ...errors(400),
        },
      },
    },
    async (req) => {
      const { access: a } = await access(req);
      const u = await storage.usage(a.projectId);
      return { ...u, quota_bytes: await storage.quota(a.projectId), max_upload_bytes: storage.maxUploadBytes };
    },
  );
}
