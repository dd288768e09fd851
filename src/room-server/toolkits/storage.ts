import type { Toolkit, ToolCall, ToolStream } from "../connection.js";
import { binary, control, empty, ErrorCode, errorContent, invalid, json, ToolError, type Content } from "../protocol.js";
import { normalizePath } from "../scope.js";
import type { RoomRef, RoomStorage, StorageEntry, StorageWriter, StoredFile } from "../storage.js";
import type { ActiveRoom } from "../room.js";
import { isoOrNull } from "../../core/clock.js";

export const DEFAULT_CHUNK = 64 * 1024;
const MAX_CHUNK = 1024 * 1024;

export interface StorageHooks {
  /** A file changed: tell the room (storage.file.* messages) and the bus (webhooks). */
  changed(room: ActiveRoom, event: "storage.file.updated" | "storage.file.deleted" | "storage.file.moved", data: Record<string, unknown>): void;
  /** A signed URL that downloads the file over HTTP. */
  downloadUrl(roomId: string, path: string): string;
  /** Largest upload in bytes. */
  maxUploadBytes: number;
  /** Why `path` may not be replaced, deleted or moved now (an open sync document), or null. */
  busy?: (room: ActiveRoom, path: string) => string | null;
}

/** Refuse to change a path another part of the room holds (an open sync document). */
function checkBusy(hooks: StorageHooks, room: ActiveRoom, ...paths: string[]) {
  for (const p of paths) {
    const why = hooks.busy?.(room, p);
    if (why) throw new ToolError(why, ErrorCode.INVALID_STATE);
  }
}

const entryJson = (e: StorageEntry) => ({
  name: e.name,
  is_folder: e.is_folder,
  size: e.size,
  created_at: isoOrNull(e.created_at),
  updated_at: isoOrNull(e.updated_at),
});

/** The room, its project and the acting participant, for the storage calls. */
const roomRef = (call: ToolCall): RoomRef => ({ projectId: call.room.room.project_id, roomId: call.room.id, participantId: call.conn.id });

function bool(call: ToolCall, key: string, fallback: boolean) {
  const v = call.args[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw invalid(`${key} must be a boolean`);
  return v;
}

/** Report a failure on a stream the way the client expects: an error chunk, then close. */
function fail(out: (c: Content) => void, e: unknown, conn: ToolCall["conn"], what: string) {
  const c = conn.errorFor(e, what);
  out(c.type === "error" ? c : errorContent(String(e), ErrorCode.OPERATION_FAILED));
  out(control("close", 1000));
}

/**
 * The `storage` toolkit on room-scoped storage. Reads need canRead on the path, writes canWrite (a move: write on
 * both ends). Uploads and downloads are streamed (room-protocol.md §3.3): the server pulls upload data a chunk at a
 * time and answers download pulls with at most `chunk_size` bytes.
 */
export function storageToolkit(storage: RoomStorage, hooks: StorageHooks): Toolkit {
  return {
    tools: {
      async list(call) {
        const path = normalizePath(call.args.path ?? "");
        call.conn.scope.storageRead(path);
        const st = path ? await storage.stat(roomRef(call), path) : null;
        if (path && (!st || !st.is_folder))
          throw new ToolError(st ? `"${path}" is a file, not a folder` : `folder not found: ${path}`, ErrorCode.STORAGE_NOT_FOUND);
        return json({ files: (await storage.list(roomRef(call), path)).map(entryJson) });
      },
      async stat(call) {
        const path = normalizePath(call.args.path);
        call.conn.scope.storageRead(path);
        const st = await storage.stat(roomRef(call), path);
        return json(st ? { exists: true, ...entryJson(st) } : { exists: false });
      },
      async exists(call) {
        const path = normalizePath(call.args.path);
        call.conn.scope.storageRead(path);
        return json({ exists: !!(await storage.stat(roomRef(call), path)) });
      },
      async delete(call) {
        const path = normalizePath(call.args.path, "path", false);
        call.conn.scope.storageWrite(path);
        checkBusy(hooks, call.room, path);
        await storage.delete(roomRef(call), path, bool(call, "recursive", false));
        hooks.changed(call.room, "storage.file.deleted", { path, participant_id: call.conn.id });
        return empty();
      },
      async move(call) {
        const from = normalizePath(call.args.source_path, "source_path", false);
        const to = normalizePath(call.args.destination_path, "destination_path", false);
        call.conn.scope.storageWrite(from);
        call.conn.scope.storageWrite(to);
        checkBusy(hooks, call.room, from, to);
        await storage.move(roomRef(call), from, to, bool(call, "overwrite", false));
        hooks.changed(call.room, "storage.file.moved", { source_path: from, destination_path: to, participant_id: call.conn.id });
        return empty();
      },
      async download_url(call) {
        const path = normalizePath(call.args.path, "path", false);
        call.conn.scope.storageRead(path);
        const st = await storage.stat(roomRef(call), path);
        if (!st || st.is_folder) throw new ToolError(`file not found: ${path}`, ErrorCode.STORAGE_NOT_FOUND);
        return json({ url: hooks.downloadUrl(call.room.id, path) });
      },
    },
    streams: {
      upload: (call, out) => uploadStream(call, out, storage, hooks),
      download: (call, out) => downloadStream(call, out, storage),
    },
  };
}

function uploadStream(call: ToolCall, out: (c: Content) => void, storage: RoomStorage, hooks: StorageHooks): ToolStream {
  // One of the project's upload slots: taken when the call opens (a refusal answers the invoke itself), given back
  // however the upload ends (committed, failed, closed early, or the socket went away).
  const release = storage.uploadSlot(roomRef(call));
  let writer: StorageWriter | null = null;
  let path = "";
  let size: number | null = null;
  let done = false;
  const finish = async () => {
    done = true;
    const w = writer!;
    writer = null;
    try {
      try {
        checkBusy(hooks, call.room, path);
      } catch (e) {
        await w.abort();
        throw e;
      }
      await w.commit();
    } finally {
      release();
    }
    hooks.changed(call.room, "storage.file.updated", { path, participant_id: call.conn.id });
    out(control("close", 1000));
  };
  const pull = () => out(binary({ kind: "pull", chunk_size: DEFAULT_CHUNK }));
  return {
    async chunk(c) {
      if (done) return;
      try {
        if (!writer) {
          if (c.type === "control") {
            done = true;
            release();
            if (c.method === "close") out(control("close", 1000));
            return;
          }
          if (c.type !== "binary" || c.headers.kind !== "start") throw invalid("an upload starts with a binary chunk of kind start");
          path = normalizePath(c.headers.path, "path", false);
          call.conn.scope.storageWrite(path);
          checkBusy(hooks, call.room, path);
          const s = c.headers.size;
          if (s !== undefined && s !== null && (typeof s !== "number" || !Number.isInteger(s) || s < 0))
            throw invalid("size must be a non-negative integer or null");
          size = typeof s === "number" ? s : null;
          if (size !== null && size > hooks.maxUploadBytes)
            throw new ToolError(`uploads are limited to ${hooks.maxUploadBytes} bytes`, ErrorCode.INVALID_REQUEST);
          const name = typeof c.headers.name === "string" && c.headers.name ? c.headers.name : path.slice(path.lastIndexOf("/") + 1);
          const mimeType = typeof c.headers.mime_type === "string" && c.headers.mime_type ? c.headers.mime_type : "application/octet-stream";
          writer = await storage.createWriter(roomRef(call), path, { overwrite: c.headers.overwrite === true, name, mimeType });
          if (size === 0) return await finish();
          return pull();
        }
        if (c.type === "control") {
          if (c.method !== "close") throw invalid("unexpected control chunk in an upload");
          if (size !== null && writer.written !== size) throw invalid(`the upload announced ${size} bytes but sent ${writer.written}`);
          return await finish();
        }
        if (c.type !== "binary" || c.headers.kind !== "data") throw invalid("upload data comes as binary chunks of kind data");
        if (writer.written + c.data.length > (size ?? hooks.maxUploadBytes))
          throw new ToolError(
            size !== null ? `the upload sent more than the ${size} bytes it announced` : `uploads are limited to ${hooks.maxUploadBytes} bytes`,
            ErrorCode.INVALID_REQUEST,
          );
        await writer.write(c.data);
        if (size !== null && writer.written === size) return await finish();
        pull();
      } catch (e) {
        done = true;
        await writer?.abort().catch(() => {});
        writer = null;
        release();
        fail(out, e, call.conn, "storage.upload");
      }
    },
    async abort() {
      // The slot goes back at once: the participant is gone, whatever the writer's cleanup still waits for.
      done = true;
      release();
      const w = writer;
      writer = null;
      await w?.abort();
    },
  };
}

function downloadStream(call: ToolCall, out: (c: Content) => void, storage: RoomStorage): ToolStream {
  let file: StoredFile | null = null;
  let offset = 0;
  let chunkSize = DEFAULT_CHUNK;
  let done = false;
  const close = async () => {
    done = true;
    const f = file;
    file = null;
    await f?.close().catch(() => {});
  };
  return {
    async chunk(c) {
      if (done) return;
      try {
        if (c.type === "control") {
          if (c.method === "close") {
            await close();
            out(control("close", 1000));
          }
          return;
        }
        if (c.type !== "binary") throw invalid("download chunks are binary");
        if (!file) {
          if (c.headers.kind !== "start") throw invalid("a download starts with a binary chunk of kind start");
          const path = normalizePath(c.headers.path, "path", false);
          call.conn.scope.storageRead(path);
          const cs = c.headers.chunk_size;
          if (typeof cs === "number" && Number.isInteger(cs) && cs > 0) chunkSize = Math.min(cs, MAX_CHUNK);
          file = await storage.openRead(roomRef(call), path);
          out(binary({ kind: "start", name: file.name, mime_type: file.mime_type, size: file.size }));
          if (file.size === 0) {
            await close();
            out(control("close", 1000));
          }
          return;
        }
        if (c.headers.kind !== "pull") throw invalid("expected a pull chunk");
        const data = await file.read(offset, Math.min(chunkSize, file.size - offset));
        if (data.length === 0) throw new ToolError("the file changed while it was downloaded", ErrorCode.OPERATION_FAILED);
        offset += data.length;
        out(binary({ kind: "data" }, data));
        if (offset >= file.size) {
          await close();
          out(control("close", 1000));
        }
      } catch (e) {
        await close();
        fail(out, e, call.conn, "storage.download");
      }
    },
    abort: close,
  };
}
