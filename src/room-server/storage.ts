import { PassThrough, type Readable } from "node:stream";
import { once } from "node:events";
import { ErrorCode, ToolError } from "./protocol.js";
import { ApiError } from "../core/errors.js";
import { blobKey, folderPrefix, roomScope, scopePrefix, type BlobHandle, type BlobStore, type StorageScope } from "../blobs/index.js";
import type { StorageService } from "../storage/service.js";

/** One entry of a listing or a stat. Times are epoch ms (null when unknown). */
export interface StorageEntry {
  name: string;
  is_folder: boolean;
  size: number | null;
  created_at: number | null;
  updated_at: number | null;
}

export interface StoredFile {
  name: string;
  mime_type: string;
  size: number;
  /** Read up to `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** An upload in progress: bytes go to a temporary object that appears at its path only on commit. */
export interface StorageWriter {
  write(data: Buffer): Promise<void>;
  readonly written: number;
  /** Make the file visible at its path, atomically and durably. */
  commit(): Promise<void>;
  /** Drop the upload (idempotent). */
  abort(): Promise<void>;
}

/**
 * Room-scoped storage as the room server's `storage` toolkit uses it. Paths are already normalized (no leading
 * slash, no `..`; "" is the room root). BlobRoomStorage keeps room files in the BlobStore (local directory or S3). Errors are ToolErrors with the protocol's storage codes.
 */
/** Which room (and project: usage and events are per project), and who acts (for storage.file.* events). */
export interface RoomRef {
  projectId: string;
  roomId: string;
  participantId?: string;
}

export interface RoomStorage {
  list(room: RoomRef, path: string): Promise<StorageEntry[]>;
  stat(room: RoomRef, path: string): Promise<StorageEntry | null>;
  delete(room: RoomRef, path: string, recursive: boolean): Promise<void>;
  move(room: RoomRef, from: string, to: string, overwrite: boolean): Promise<void>;
  /**
   * Take one of the project's upload slots (shared with project-storage uploads, MESHAGENT_MAX_CONCURRENT_UPLOADS);
   * throws when they are all taken. The returned function gives it back (idempotent).
   */
  uploadSlot(room: RoomRef): () => void;
  /** Start an upload; STORAGE_ALREADY_EXISTS when the path exists and `overwrite` is false. */
  createWriter(room: RoomRef, path: string, opts: { overwrite: boolean; name: string; mimeType: string }): Promise<StorageWriter>;
  /** Open a file for reading; STORAGE_NOT_FOUND when it is missing or a folder. */
  openRead(room: RoomRef, path: string): Promise<StoredFile>;
  /** Remove everything a room stored (room deletion). */
  deleteRoom(room: RoomRef): Promise<void>;
}

/** The client's extension table (storage-client.js), used when a file has no stored MIME type (e.g. mail attachments). */
const MIME_BY_EXT: Record<string, string> = {
  ".bin": "application/octet-stream",
  ".css": "text/css",
  ".csv": "text/csv",
  ".gif": "image/gif",
  ".gz": "application/gzip",
  ".htm": "text/html",
  ".html": "text/html",
  ".jpeg": "image/jpeg",
  ".jpg": "image/jpeg",
  ".js": "text/javascript",
  ".json": "application/json",
  ".md": "text/markdown",
  ".mp3": "audio/mpeg",
  ".mp4": "video/mp4",
  ".pdf": "application/pdf",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".tar": "application/x-tar",
  ".txt": "text/plain",
  ".ts": "text/typescript",
  ".tsx": "text/tsx",
  ".wasm": "application/wasm",
  ".webp": "image/webp",
  ".xml": "application/xml",
  ".yaml": "application/yaml",
  ".yml": "application/yaml",
  ".zip": "application/zip",
  ".tgz": "application/x-tar",
};

export function guessMimeType(name: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith(".tar.gz")) return "application/x-tar";
  const dot = lower.lastIndexOf(".");
  return (dot >= 0 && MIME_BY_EXT[lower.slice(dot)]) || "application/octet-stream";
}

const notFound = (path: string) => new ToolError(`file not found: ${path || "/"}`, ErrorCode.STORAGE_NOT_FOUND);
const exists = (path: string) => new ToolError(`the path already exists: ${path}`, ErrorCode.STORAGE_ALREADY_EXISTS);

const baseName = (path: string) => path.slice(path.lastIndexOf("/") + 1);

/** The storage service speaks HTTP errors; the toolkit speaks the protocol's storage codes. */
function toolError(e: unknown, path: string): unknown {
  if (!(e instanceof ApiError)) return e;
  if (e.status === 404) return notFound(path);
  if (e.code === "recursive_required")
    return new ToolError(`"${path}" is a folder that is not empty; delete it with recursive`, ErrorCode.STORAGE_RECURSIVE_REQUIRED);
  if (e.status === 409) return new ToolError(`${path}: ${e.message}`, ErrorCode.STORAGE_INVALID_PATH);
  if (e.status === 413) return new ToolError(e.message, ErrorCode.INVALID_REQUEST);
  if (e.status === 400) return new ToolError(`${path}: ${e.message}`, ErrorCode.INVALID_REQUEST);
  return e;
}

/** Read exactly `n` bytes from a paused stream (fewer only at its end). */
async function readUpTo(stream: Readable, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const c = stream.read() as Buffer | null;
    if (c !== null) {
      parts.push(c);
      got += c.length;
      continue;
    }
    if (stream.errored) throw stream.errored;
    if (stream.readableEnded || stream.destroyed) break;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        stream.off("readable", done).off("end", done).off("close", done).off("error", fail);
        resolve();
      };
      const fail = (err: Error) => {
        stream.off("readable", done).off("end", done).off("close", done).off("error", fail);
        reject(err);
      };
      stream.on("readable", done).on("end", done).on("close", done).on("error", fail);
    });
  }
  const all = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  if (all.length > n) stream.unshift(all.subarray(n));
  return all.subarray(0, n);
}

/**
 * Room files in the project's BlobStore under `rooms/<room_id>/<path>` (blobs/keys.ts), the key space of project
 * storage, mail attachments and scheduler files, on the local directory backend or S3. Writes and deletes go through
 * StorageService, so they are counted in the project's storage usage, survive crashes the same way (pending rows) and
 * publish storage.file.updated / storage.file.deleted (with room_id). The MIME type comes from the file name (the
 * client's extension table), so files written by mail or the scheduler get one too.
 */
export class BlobRoomStorage implements RoomStorage {
  private readonly blobs: BlobStore;

  constructor(private readonly storage: StorageService) {
    this.blobs = storage.blobs;
  }

  private scope(room: RoomRef, path: string): StorageScope {
    if (!room.roomId || /[/\\]/.test(room.roomId) || room.roomId === "." || room.roomId === "..")
      throw new ToolError("invalid room", ErrorCode.STORAGE_INVALID_PATH);
    const scope = roomScope(room.projectId, room.roomId);
    if (path) {
      if (path.split("/").some((s) => Buffer.byteLength(s) > 255))
        throw new ToolError(`a segment of "${path}" is longer than 255 bytes`, ErrorCode.STORAGE_INVALID_PATH);
      const max = this.blobs.maxKeyBytes - Buffer.byteLength(scopePrefix(scope));
      if (Buffer.byteLength(path) > max)
        throw new ToolError(`the path is longer than ${max} bytes, the most this storage backend takes`, ErrorCode.STORAGE_INVALID_PATH);
    }
    return scope;
  }

  private participant(room: RoomRef) {
    return room.participantId ?? "room";
  }

  async list(room: RoomRef, path: string): Promise<StorageEntry[]> {
    const scope = this.scope(room, path);
    const out: StorageEntry[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.blobs.list(folderPrefix(scope, path), { limit: 1000, after });
      if (!page) {
        if (!path) return []; // a room that never stored anything
        throw notFound(path);
      }
      for (const e of page.entries)
        out.push({
          name: e.name,
          is_folder: e.isFolder,
          size: e.isFolder ? null : (e.size ?? 0),
          created_at: e.isFolder ? null : (e.lastModified ?? null),
          updated_at: e.isFolder ? null : (e.lastModified ?? null),
        });
      if (!page.next) break;
      after = page.next;
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(room: RoomRef, path: string): Promise<StorageEntry | null> {
    const scope = this.scope(room, path);
    if (!path) return { name: "", is_folder: true, size: null, created_at: null, updated_at: null };
    const info = await this.blobs.stat(blobKey(scope, path));
    if (info) return { name: baseName(path), is_folder: false, size: info.size, created_at: info.lastModified, updated_at: info.lastModified };
    if (await this.blobs.hasChildren(folderPrefix(scope, path)))
      return { name: baseName(path), is_folder: true, size: null, created_at: null, updated_at: null };
    return null;
  }

  async delete(room: RoomRef, path: string, recursive: boolean): Promise<void> {
    if (!path) throw new ToolError("the room root cannot be deleted", ErrorCode.STORAGE_INVALID_PATH);
    const scope = this.scope(room, path);
    try {
      await this.storage.delete(scope, path, { participantId: this.participant(room), recursive });
    } catch (e) {
      throw toolError(e, path);
    }
  }

  /** Copy one file's current version to another path through the storage service (usage, events). */
  private async copyFile(room: RoomRef, scope: StorageScope, from: string, to: string) {
    const handle = await this.blobs.open(blobKey(scope, from));
    if (!handle) throw notFound(from);
    let body: Readable;
    try {
      body = await handle.read();
    } catch (e) {
      await handle.close();
      throw e;
    }
    try {
      await this.storage.upload(scope, to, body, { participantId: this.participant(room), contentLength: handle.info.size });
    } catch (e) {
      body.destroy();
      throw toolError(e, to);
    }
  }

  /** The blob store has no rename: each file is copied, then the source deleted. */
  async move(room: RoomRef, from: string, to: string, overwrite: boolean): Promise<void> {
    if (!from || !to) throw new ToolError("the room root cannot be moved", ErrorCode.STORAGE_INVALID_PATH);
    if (to === from) return;
    if (to.startsWith(from + "/")) throw new ToolError("a folder cannot be moved into itself", ErrorCode.STORAGE_INVALID_PATH);
    const scope = this.scope(room, from);
    this.scope(room, to);
    const s = await this.stat(room, from);
    if (!s) throw notFound(from);
    const d = await this.stat(room, to);
    if (d) {
      if (!overwrite) throw exists(to);
      if (d.is_folder !== s.is_folder)
        throw new ToolError(`cannot replace a ${d.is_folder ? "folder" : "file"} with a ${s.is_folder ? "folder" : "file"}`, ErrorCode.CONFLICT);
      if (d.is_folder) await this.delete(room, to, true);
    }
    await this.checkParents(scope, to);
    if (!s.is_folder) {
      await this.copyFile(room, scope, from, to);
      await this.delete(room, from, false);
      return;
    }
    const base = scopePrefix(scope);
    const files: string[] = [];
    for await (const b of this.blobs.walk(folderPrefix(scope, from))) files.push(b.key.slice(base.length));
    for (const p of files) {
      const dest = to + p.slice(from.length);
      await this.copyFile(room, scope, p, dest);
      await this.delete(room, p, false);
    }
  }

  /** No parent of `path` may be a file. */
  private async checkParents(scope: StorageScope, path: string) {
    const segs = path.split("/");
    const parents: string[] = [];
    for (let i = 1; i < segs.length; i++) parents.push(segs.slice(0, i).join("/"));
    const found = await Promise.all(parents.map((p) => this.blobs.stat(blobKey(scope, p))));
    const i = found.findIndex((f) => f !== null);
    if (i >= 0) throw new ToolError(`a parent of "${path}" is a file: ${parents[i]}`, ErrorCode.STORAGE_INVALID_PATH);
  }

  uploadSlot(room: RoomRef): () => void {
    try {
      return this.storage.uploadSlot(room.projectId);
    } catch (e) {
      if (e instanceof ApiError) throw new ToolError(e.message, ErrorCode.INVALID_STATE);
      throw e;
    }
  }

  /**
   * The upload streams into StorageService.upload through a PassThrough: the blob is published only when `commit`
   * ends the stream (the blob store's put is atomic), and `abort` destroys the stream, so nothing becomes visible.
   */
  async createWriter(room: RoomRef, path: string, opts: { overwrite: boolean; name: string; mimeType: string }): Promise<StorageWriter> {
    if (!path) throw new ToolError("an upload needs a file path", ErrorCode.STORAGE_INVALID_PATH);
    const scope = this.scope(room, path);
    const existing = await this.stat(room, path);
    if (existing && (existing.is_folder || !opts.overwrite)) throw exists(path);
    await this.checkParents(scope, path);
    const body = new PassThrough({ highWaterMark: 256 * 1024 });
    let failure: unknown = null;
    const upload = this.storage.upload(scope, path, body, { participantId: this.participant(room) }).then(
      () => {},
      (e) => {
        failure = toolError(e, path);
        throw failure;
      },
    );
    upload.catch(() => {});
    let written = 0;
    let done = false;
    const blobs = this.blobs;
    return {
      get written() {
        return written;
      },
      async write(data: Buffer) {
        if (done) throw new Error("upload already finished");
        if (failure) throw failure;
        written += data.length;
        if (!body.write(data)) await Promise.race([once(body, "drain"), upload]);
        if (failure) throw failure;
      },
      async commit() {
        if (done) throw new Error("upload already finished");
        done = true;
        if (failure) throw failure;
        if (!opts.overwrite && (await blobs.stat(blobKey(scope, path)))) {
          body.destroy();
          await upload.catch(() => {});
          throw exists(path);
        }
        body.end();
        await upload;
      },
      async abort() {
        if (done) return;
        done = true;
        body.destroy();
        await upload.catch(() => {});
      },
    };
  }

  async openRead(room: RoomRef, path: string): Promise<StoredFile> {
    if (!path) throw notFound(path);
    const scope = this.scope(room, path);
    const key = blobKey(scope, path);
    const first = await this.blobs.open(key);
    if (!first) throw notFound(path);
    const { size, etag } = first.info;
    const blobs = this.blobs;
    let handle: BlobHandle | null = first;
    let stream: Readable | null = null;
    let pos = 0;
    const drop = () => {
      stream?.destroy();
      stream = null;
    };
    return {
      name: baseName(path),
      mime_type: guessMimeType(baseName(path)),
      size,
      async read(offset: number, length: number) {
        if (length <= 0 || offset >= size) return Buffer.alloc(0);
        if (!stream || offset !== pos) {
          // Sequential reads share one stream; a jump opens the same version again at the new offset.
          drop();
          let h: BlobHandle | null = handle;
          handle = null;
          if (!h) {
            h = await blobs.open(key);
            if (!h || h.info.etag !== etag) {
              await h?.close();
              throw new ToolError("the file changed while it was downloaded", ErrorCode.OPERATION_FAILED);
            }
          }
          try {
            stream = await h.read({ start: offset, end: size - 1 });
          } catch (e) {
            await h.close();
            throw e;
          }
          pos = offset;
        }
        const data = await readUpTo(stream, Math.min(length, size - offset));
        pos += data.length;
        return data;
      },
      async close() {
        drop();
        const h = handle;
        handle = null;
        await h?.close();
      },
    };
  }

  async deleteRoom(room: RoomRef): Promise<void> {
    const scope = this.scope(room, "");
    const base = scopePrefix(scope);
    const paths: string[] = [];
    for await (const b of this.blobs.walk(base)) paths.push(b.key.slice(base.length));
    for (const p of paths) {
      await this.storage.delete(scope, p, { participantId: this.participant(room) }).catch((err) => {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      });
    }
  }
}
