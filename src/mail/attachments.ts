import { mkdir, open, rename, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join, resolve, sep } from "node:path";

/**
 * Where mail attachments go: a room's storage. The minimal interface the SMTP receiver needs, so the room
 * storage (BlobStore: local directory or S3) can stand behind it.
 */
export interface AttachmentSink {
  /**
   * Write bytes at a room-relative storage path (`a/b/c.pdf`, already sanitized), durably and atomically:
   * a reader never sees a partial file, and the file exists after a crash once this resolved.
   */
  write(roomId: string, path: string, data: Buffer): Promise<void>;
}

/**
 * The default sink: files under `<root>/<room_id>/<path>` where root is `MESHAGENT_DATA_DIR/storage/rooms`.
 * Each file is written to a hidden temporary name in the same directory, fsynced, then renamed into place
 * (and the directory fsynced), so it appears whole or not at all.
 */
export class FileAttachmentSink implements AttachmentSink {
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

const UNSAFE = /[\u0000-\u001f\u007f<>:"/\\|?*]/g;

/**
 * A file name safe on every file system and in a storage path: the last path component only, no control or
 * reserved characters, no leading dots or spaces, at most 150 characters (the extension kept). Empty → fallback.
 */
export function safeFilename(name: string | undefined | null, fallback: string): string {
  let n = (name ?? "").split(/[/\\]/).pop() ?? "";
  n = n.replace(UNSAFE, "_").replace(/^[.\s]+/, "").replace(/[.\s]+$/, "");
  if (!n) return fallback;
  if (n.length > 150) {
    const dot = n.lastIndexOf(".");
    const ext = dot > 0 && n.length - dot <= 16 ? n.slice(dot) : "";
    n = n.slice(0, 150 - ext.length) + ext;
  }
  return n;
}

/** `name.ext`, `name (2).ext`, `name (3).ext`, … : the first not in `taken` (compared case-insensitively). */
export function uniqueName(name: string, taken: Set<string>): string {
  let candidate = name;
  const dot = name.lastIndexOf(".");
  const base = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : "";
  for (let i = 2; taken.has(candidate.toLowerCase()); i++) candidate = `${base} (${i})${ext}`;
  taken.add(candidate.toLowerCase());
  return candidate;
}
