import { Readable } from "node:stream";
import { roomScope } from "../blobs/keys.js";
import type { StorageService } from "../storage/service.js";

/**
 * Where mail attachments go: a room's storage. The minimal interface the SMTP receiver needs; the server wires it to
 * the storage service, so attachments land in the configured BlobStore (local directory or S3) and count in usage.
 */
export interface AttachmentSink {
  /**
   * Write bytes at a room-relative storage path (`a/b/c.pdf`, already sanitized), durably and atomically:
   * a reader never sees a partial file, and the file exists after a crash once this resolved.
   */
  write(projectId: string, roomId: string, path: string, data: Buffer): Promise<void>;
}

/** The sink the server uses: room storage through the storage service (atomic publish, events, usage). */
export class StorageAttachmentSink implements AttachmentSink {
  constructor(private readonly storage: StorageService) {}

  async write(projectId: string, roomId: string, path: string, data: Buffer): Promise<void> {
    await this.storage.upload(roomScope(projectId, roomId), path, Readable.from([data]), { participantId: "mail", contentLength: data.length });
  }
}

/**
 * For writers inside an open transaction (the scheduler's run): the bytes go straight to the blob store and the
 * storage bookkeeping follows after the caller's transaction (StorageService.writeDetached).
 */
export class DetachedAttachmentSink implements AttachmentSink {
  constructor(private readonly storage: StorageService) {}

  async write(projectId: string, roomId: string, path: string, data: Buffer): Promise<void> {
    await this.storage.writeDetached(roomScope(projectId, roomId), path, data, "scheduler");
  }
}

// eslint-disable-next-line no-control-regex -- file names must not carry control characters
const UNSAFE = /[\u0000-\u001f\u007f<>:"/\\|?*]/g;

/**
 * A file name safe on every file system and in a storage path: the last path component only, no control or
 * reserved characters, no leading dots or spaces, at most 150 characters (the extension kept). Empty → fallback.
 */
export function safeFilename(name: string | undefined | null, fallback: string): string {
  let n = (name ?? "").split(/[/\\]/).pop() ?? "";
  n = n
    .replace(UNSAFE, "_")
    .replace(/^[.\s]+/, "")
    .replace(/[.\s]+$/, "");
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
