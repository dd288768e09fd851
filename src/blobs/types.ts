import type { Readable } from "node:stream";

/**
 * Blob storage: one interface, two backends (a local directory, an S3-compatible bucket).
 *
 * Keys are relative, "/"-separated UTF-8 strings without empty, "." or ".." segments (see keys.ts for how project
 * and room keys are derived). The contract every backend keeps:
 * - `put` streams (it never holds the whole body in memory) and publishes atomically: until it resolves, readers see
 *   the previous version (or nothing); if it rejects or the process dies, nothing new is visible.
 * - `open` pins one version: the info and the bytes read through the handle belong to the same version, even if a
 *   new one is published meanwhile.
 * - A key is either a file or a "folder" (a prefix of other keys), never both: `put` refuses to turn one into the
 *   other where the backend can tell (the local filesystem always can; the service checks first for S3).
 */
export interface BlobInfo {
  key: string;
  size: number;
  /** A strong entity tag, without quotes. Changes whenever a new version is published. */
  etag: string;
  /** Epoch milliseconds. */
  lastModified: number;
}

export interface PutResult {
  size: number;
  etag: string;
}

export interface PutOptions {
  contentType?: string;
}

export interface ByteRange {
  /** Inclusive. */
  start: number;
  /** Inclusive. */
  end: number;
}

/** An open version of a blob. Call `read` at most once, or `close` if you don't read. */
export interface BlobHandle {
  info: BlobInfo;
  read(range?: ByteRange): Promise<Readable>;
  close(): Promise<void>;
}

export interface BlobEntry {
  /** The name relative to the listed folder (one segment). */
  name: string;
  isFolder: boolean;
  size?: number;
  etag?: string;
  lastModified?: number;
}

export interface ListPage {
  entries: BlobEntry[];
  /** Pass as `after` to get the next page; absent on the last page. */
  next?: string;
}

export interface BlobStore {
  readonly kind: "file" | "s3";
  /** The longest key (UTF-8 bytes) this backend can store. */
  readonly maxKeyBytes: number;
  put(key: string, body: Readable, opts?: PutOptions): Promise<PutResult>;
  open(key: string): Promise<BlobHandle | null>;
  stat(key: string): Promise<BlobInfo | null>;
  /** Removes the blob; resolves false when there was none. */
  delete(key: string): Promise<boolean>;
  /**
   * One level of a folder: `prefix` is "" or ends with "/". Entries are ordered by `name` plus "/" for folders, in
   * UTF-8 byte order (S3's order); `after` is exclusive and compares the same way. null when the folder does not exist.
   */
  list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage | null>;
  /** Every blob under a prefix ("" or ending with "/"), recursively. */
  walk(prefix: string): AsyncIterable<BlobInfo>;
  /** Whether any blob exists under `prefix` (which ends with "/"). */
  hasChildren(prefix: string): Promise<boolean>;
  /** Remove leftovers of uploads that died (temp files, incomplete multipart uploads). */
  sweep(): Promise<void>;
  close(): Promise<void>;
}

/** The body grew past the allowed size while streaming. */
export class BlobTooLargeError extends Error {
  constructor(public readonly limit: number) {
    super(`the body is larger than ${limit} bytes`);
  }
}

/** The body ended before the declared length, or the client went away. */
export class BlobAbortedError extends Error {}

/** The key is a folder, or one of its parents is a file. */
export class BlobConflictError extends Error {}

/** The version changed between open and read (S3 only; the local handle pins the inode). */
export class BlobChangedError extends Error {}

/** Keys are built by keys.ts from validated paths; this is a last line of defence against escaping the root. */
export function assertKey(key: string) {
  if (!key || key.startsWith("/") || key.endsWith("/") || key.includes("\\") || key.includes("\0")) throw new Error(`invalid blob key: ${JSON.stringify(key)}`);
  for (const seg of key.split("/")) if (seg === "" || seg === "." || seg === "..") throw new Error(`invalid blob key: ${JSON.stringify(key)}`);
}

export function assertPrefix(prefix: string) {
  if (prefix === "") return;
  if (!prefix.endsWith("/")) throw new Error(`invalid blob prefix: ${JSON.stringify(prefix)}`);
  assertKey(prefix.slice(0, -1));
}

/** S3's listing order: UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
