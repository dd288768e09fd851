import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join, resolve, sep } from "node:path";
import { ErrorCode, ToolError } from "./protocol.js";

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
 * slash, no `..`; "" is the room root). The BlobStore (local directory or S3) can stand behind this interface;
 * LocalRoomStorage is the default. Errors are ToolErrors with the protocol's storage codes.
 */
export interface RoomStorage {
  list(roomId: string, path: string): Promise<StorageEntry[]>;
  stat(roomId: string, path: string): Promise<StorageEntry | null>;
  delete(roomId: string, path: string, recursive: boolean): Promise<void>;
  move(roomId: string, from: string, to: string, overwrite: boolean): Promise<void>;
  /** Start an upload; STORAGE_ALREADY_EXISTS when the path exists and `overwrite` is false. */
  createWriter(roomId: string, path: string, opts: { overwrite: boolean; name: string; mimeType: string }): Promise<StorageWriter>;
  /** Open a file for reading; STORAGE_NOT_FOUND when it is missing or a folder. */
  openRead(roomId: string, path: string): Promise<StoredFile>;
  /** Remove everything a room stored (room deletion). */
  deleteRoom(roomId: string): Promise<void>;
}

const TEMP_RE = /^\.[0-9a-f]{16}\.tmp$/;

/** The client's extension table (storage-client.js), used when a file has no stored MIME type (e.g. mail attachments). */
const MIME_BY_EXT: Record<string, string> = {
  ".bin": "application/octet-stream", ".css": "text/css", ".csv": "text/csv", ".gif": "image/gif", ".gz": "application/gzip",
  ".htm": "text/html", ".html": "text/html", ".jpeg": "image/jpeg", ".jpg": "image/jpeg", ".js": "text/javascript",
  ".json": "application/json", ".md": "text/markdown", ".mp3": "audio/mpeg", ".mp4": "video/mp4", ".pdf": "application/pdf",
  ".png": "image/png", ".svg": "image/svg+xml", ".tar": "application/x-tar", ".txt": "text/plain", ".ts": "text/typescript",
  ".tsx": "text/tsx", ".wasm": "application/wasm", ".webp": "image/webp", ".xml": "application/xml", ".yaml": "application/yaml",
  ".yml": "application/yaml", ".zip": "application/zip", ".tgz": "application/x-tar",
};

export function guessMimeType(name: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith(".tar.gz")) return "application/x-tar";
  const dot = lower.lastIndexOf(".");
  return (dot >= 0 && MIME_BY_EXT[lower.slice(dot)]) || "application/octet-stream";
}

const notFound = (path: string) => new ToolError(`file not found: ${path || "/"}`, ErrorCode.STORAGE_NOT_FOUND);
const exists = (path: string) => new ToolError(`the path already exists: ${path}`, ErrorCode.STORAGE_ALREADY_EXISTS);

function code(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

async function fsyncDir(dir: string) {
  const d = await open(dir, "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Files under `<root>/<room_id>/<path>` where root is `MESHAGENT_DATA_DIR/storage/rooms`.
 * Each file is written to a hidden temporary name in the same directory, fsynced, then renamed into place
 * (and the directory fsynced), so it appears whole or not at all.
 */
class FileAttachmentSink {
  constructor(readonly root: string) {}

  fullPath(roomId: string, path: string): string {
    const roomDir = resolve(this.root, roomId);
    const full = resolve(roomDir, ...path.split("/"));
    if (!roomId || roomId.includes("/") || roomId.includes("\\") || !full.startsWith(roomDir + sep)) throw new Error(`invalid storage path ${path}`);
    return full;
  }

  async write(roomId: string, path: string, data: Buffer): Promise<void> {
    const full = this.fullPath(roomId, path);
    const dir = dirname(full);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${randomBytes(8).toString("hex")}.tmp`);
    const fh = await open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    try {
      await rename(tmp, full);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}


/**
 * Files in a local directory: `<root>/<room_id>/<path>`, the layout of the mail FileAttachmentSink (root is
 * `MESHAGENT_DATA_DIR/storage/rooms`), so attachments that arrive by mail are room files. Writes go to a hidden
 * temporary name in the target folder, are fsynced, then renamed into place: a file appears whole or not at all.
 * The MIME type and display name of an upload live in a mirror tree `<metaRoot>/<room_id>/<path>` (a file there
 * exactly where the data file is, so the two trees never collide); without one the type comes from the extension.
 */
export class LocalRoomStorage implements RoomStorage {
  private readonly sink: FileAttachmentSink;
  constructor(
    readonly root: string,
    readonly metaRoot: string,
  ) {
    this.sink = new FileAttachmentSink(root);
  }

  private full(roomId: string, path: string): string {
    if (!path) {
      const dir = join(this.root, roomId);
      if (!roomId || /[/\\]/.test(roomId)) throw new ToolError("invalid room", ErrorCode.STORAGE_INVALID_PATH);
      return dir;
    }
    if (path.split("/").some((s) => TEMP_RE.test(s))) throw new ToolError(`reserved name in path: ${path}`, ErrorCode.STORAGE_INVALID_PATH);
    try {
      return this.sink.fullPath(roomId, path);
    } catch {
      throw new ToolError(`invalid path: ${path}`, ErrorCode.STORAGE_INVALID_PATH);
    }
  }

  private meta(roomId: string, path: string): string {
    return join(this.metaRoot, roomId, ...path.split("/"));
  }

  private entry(name: string, st: Awaited<ReturnType<typeof stat>>): StorageEntry {
    const folder = st.isDirectory();
    return {
      name,
      is_folder: folder,
      size: folder ? null : Number(st.size),
      created_at: Math.round(Number(st.birthtimeMs) || Number(st.ctimeMs)),
      updated_at: Math.round(Number(st.mtimeMs)),
    };
  }

  async list(roomId: string, path: string): Promise<StorageEntry[]> {
    const dir = this.full(roomId, path);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (code(e) === "ENOENT" && !path) return []; // a room that never stored anything
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") throw notFound(path);
      throw e;
    }
    const out: StorageEntry[] = [];
    for (const n of names) {
      if (TEMP_RE.test(n)) continue;
      try {
        out.push(this.entry(n, await stat(join(dir, n))));
      } catch {
        // removed while listing
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(roomId: string, path: string): Promise<StorageEntry | null> {
    try {
      const st = await stat(this.full(roomId, path));
      return this.entry(path ? path.slice(path.lastIndexOf("/") + 1) : "", st);
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return null;
      throw e;
    }
  }

  async delete(roomId: string, path: string, recursive: boolean): Promise<void> {
    if (!path) throw new ToolError("the room root cannot be deleted", ErrorCode.STORAGE_INVALID_PATH);
    const full = this.full(roomId, path);
    const st = await this.stat(roomId, path);
    if (!st) throw notFound(path);
    if (st.is_folder) {
      if (!recursive && (await readdir(full)).some((n) => !TEMP_RE.test(n)))
        throw new ToolError(`"${path}" is a folder that is not empty; delete it with recursive`, ErrorCode.STORAGE_RECURSIVE_REQUIRED);
      await rm(full, { recursive: true, force: true });
    } else await rm(full, { force: true });
    await rm(this.meta(roomId, path), { recursive: true, force: true });
    await fsyncDir(dirname(full)).catch(() => {});
  }

  async move(roomId: string, from: string, to: string, overwrite: boolean): Promise<void> {
    if (!from || !to) throw new ToolError("the room root cannot be moved", ErrorCode.STORAGE_INVALID_PATH);
    if (to === from) return;
    if (to.startsWith(from + "/")) throw new ToolError("a folder cannot be moved into itself", ErrorCode.STORAGE_INVALID_PATH);
    const src = this.full(roomId, from);
    const dst = this.full(roomId, to);
    const s = await this.stat(roomId, from);
    if (!s) throw notFound(from);
    const d = await this.stat(roomId, to);
    if (d) {
      if (!overwrite) throw exists(to);
      if (d.is_folder !== s.is_folder) throw new ToolError(`cannot replace a ${d.is_folder ? "folder" : "file"} with a ${s.is_folder ? "folder" : "file"}`, ErrorCode.CONFLICT);
      if (d.is_folder) await rm(dst, { recursive: true, force: true });
    }
    await mkdir(dirname(dst), { recursive: true });
    await rename(src, dst);
    const mSrc = this.meta(roomId, from);
    const mDst = this.meta(roomId, to);
    await rm(mDst, { recursive: true, force: true });
    try {
      await mkdir(dirname(mDst), { recursive: true });
      await rename(mSrc, mDst);
    } catch (e) {
      if (code(e) !== "ENOENT") throw e;
    }
    await fsyncDir(dirname(dst)).catch(() => {});
    if (dirname(src) !== dirname(dst)) await fsyncDir(dirname(src)).catch(() => {});
  }

  async createWriter(roomId: string, path: string, opts: { overwrite: boolean; name: string; mimeType: string }): Promise<StorageWriter> {
    if (!path) throw new ToolError("an upload needs a file path", ErrorCode.STORAGE_INVALID_PATH);
    const full = this.full(roomId, path);
    const existing = await this.stat(roomId, path);
    if (existing && (existing.is_folder || !opts.overwrite)) throw exists(path);
    const dir = dirname(full);
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      if (code(e) === "EEXIST" || code(e) === "ENOTDIR") throw new ToolError(`a parent of "${path}" is a file`, ErrorCode.STORAGE_INVALID_PATH);
      throw e;
    }
    const tmp = join(dir, `.${randomBytes(8).toString("hex")}.tmp`);
    const fh: FileHandle = await open(tmp, "wx", 0o644);
    let written = 0;
    let done = false;
    const metaFile = this.meta(roomId, path);
    return {
      get written() {
        return written;
      },
      async write(data: Buffer) {
        if (done) throw new Error("upload already finished");
        let off = 0;
        while (off < data.length) {
          const { bytesWritten } = await fh.write(data, off, data.length - off);
          off += bytesWritten;
        }
        written += data.length;
      },
      async commit() {
        if (done) throw new Error("upload already finished");
        done = true;
        try {
          await fh.sync();
          await fh.close();
          if (!opts.overwrite && (await stat(full).then(() => true, () => false))) throw exists(path);
          await mkdir(dirname(metaFile), { recursive: true });
          const metaTmp = join(dirname(metaFile), `.${randomBytes(8).toString("hex")}.tmp`);
          await writeFile(metaTmp, JSON.stringify({ mime_type: opts.mimeType, name: opts.name }));
          await rename(metaTmp, metaFile);
          await rename(tmp, full);
          await fsyncDir(dir);
        } catch (e) {
          await rm(tmp, { force: true });
          throw e;
        }
      },
      async abort() {
        if (done) return;
        done = true;
        await fh.close().catch(() => {});
        await rm(tmp, { force: true });
      },
    };
  }

  async openRead(roomId: string, path: string): Promise<StoredFile> {
    if (!path) throw notFound(path);
    const full = this.full(roomId, path);
    let fh: FileHandle;
    try {
      fh = await open(full, "r");
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR" || code(e) === "EISDIR") throw notFound(path);
      throw e;
    }
    const st = await fh.stat();
    if (st.isDirectory()) {
      await fh.close();
      throw notFound(path);
    }
    const base = path.slice(path.lastIndexOf("/") + 1);
    let meta: { mime_type?: unknown; name?: unknown } = {};
    try {
      meta = JSON.parse(await readFile(this.meta(roomId, path), "utf8"));
    } catch {
      // no stored metadata: mail attachments, files written by other parts
    }
    return {
      name: typeof meta.name === "string" && meta.name ? meta.name : base,
      mime_type: typeof meta.mime_type === "string" && meta.mime_type ? meta.mime_type : guessMimeType(base),
      size: st.size,
      async read(offset: number, length: number) {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        return buf.subarray(0, bytesRead);
      },
      close: () => fh.close(),
    };
  }

  async deleteRoom(roomId: string): Promise<void> {
    if (!roomId || /[/\\.]/.test(roomId)) return;
    await rm(join(this.root, roomId), { recursive: true, force: true });
    await rm(join(this.metaRoot, roomId), { recursive: true, force: true });
  }
}
