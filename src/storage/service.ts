import { Readable } from "node:stream";
import { contentType as mimeContentType } from "mime-types";
import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { ApiError, badRequest, conflict, notFound, quote } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { newId } from "../core/ids.js";
import { inTx, type DB, type Dialect, type Queryable } from "../store/db.js";
import type { ProjectsService } from "../projects/service.js";
import {
  BlobAbortedError,
  BlobChangedError,
  BlobConflictError,
  blobKey,
  BlobTooLargeError,
  folderPrefix,
  scopeFromId,
  scopeId,
  scopePrefix,
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type PutResult,
  type StorageScope,
} from "../blobs/index.js";
import { meteredBody } from "../blobs/meter.js";
import { baseName, normalizeStoragePath, parentsOf } from "./paths.js";
import { storageRepo } from "./repo.js";
import type { StoragePermissions } from "./policy.js";

/** Deepest accepted path, in segments: each parent is checked on S3 with one request. */
export const MAX_PATH_DEPTH = 128;
/** The project settings key of the optional storage quota, in bytes. */
export const QUOTA_SETTING = "storage_quota_bytes";

export interface StorageOptions {
  maxUploadBytes: number;
  /** Uploads one project may have in progress in this process (MESHAGENT_MAX_CONCURRENT_UPLOADS; unset: no limit). */
  maxConcurrentUploads?: number;
  /** How long a pending write may go without renewal before recovery reconciles its path. */
  leaseMs?: number;
  log?: (msg: string, err?: unknown) => void;
}

export interface FileJson {
  name: string;
  path: string;
  is_folder: false;
  size: number;
  etag: string;
  content_type: string;
  created_at: null;
  updated_at: string;
}

export interface FolderJson {
  name: string;
  path: string;
  is_folder: true;
  size: null;
  created_at: null;
  updated_at: null;
}

/** What the route wants read once it saw the current version's info. */
export type ReadPlan = { body: false } | { body: true; range?: ByteRange };

export const contentTypeOf = (path: string) => mimeContentType(baseName(path)) || "application/octet-stream";

/**
 * Project (and, later, room) storage on top of a BlobStore. The blob store holds the bytes and is the truth for
 * what exists; the database keeps, per file, what it weighed when last counted (`storage_files`), the bytes per
 * project (`storage_usage`), and a row for every write in flight (`storage_pending`).
 *
 * A write goes: pending row → blob write (atomic publish) → one transaction that removes the pending row, locks the
 * project's usage row, re-reads the blob's current state, updates the file row and the usage, and publishes the
 * event. Re-reading under the lock makes concurrent writers of one path converge on what the store really holds; a
 * process that dies between the blob write and the commit leaves its pending row, whose lease runs out, and
 * `recover` reconciles that path the same way (publishing the event that was missed, if anything changed).
 */
export class StorageService {
  private timer?: NodeJS.Timeout;
  private readonly leaseMs: number;
  private maintenance?: Promise<void>;

  constructor(
    private readonly db: DB,
    private readonly dialect: Dialect,
    readonly blobs: BlobStore,
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly projects: ProjectsService,
    private readonly opts: StorageOptions,
  ) {
    this.leaseMs = opts.leaseMs ?? 60_000;
  }

  get maxUploadBytes() {
    return this.opts.maxUploadBytes;
  }

  /** Uploads in progress per project (this process). */
  private readonly uploading = new Map<string, number>();

  /**
   * Take one of the project's upload slots (MESHAGENT_MAX_CONCURRENT_UPLOADS), or throw 429 `too_many_uploads`. The
   * returned function gives the slot back; call it however the upload ends (it is idempotent).
   */
  uploadSlot(projectId: string): () => void {
    const max = this.opts.maxConcurrentUploads ?? Infinity;
    const n = this.uploading.get(projectId) ?? 0;
    if (n >= max)
      throw new ApiError(
        429,
        "too_many_uploads",
        `the project already has ${n} uploads in progress; at most ${max} may run at once (MESHAGENT_MAX_CONCURRENT_UPLOADS): retry when one has finished`,
      );
    this.uploading.set(projectId, n + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = (this.uploading.get(projectId) ?? 1) - 1;
      if (left > 0) this.uploading.set(projectId, left);
      else this.uploading.delete(projectId);
    };
  }

  /** Uploads the project has in progress in this process. */
  uploadsInProgress(projectId: string): number {
    return this.uploading.get(projectId) ?? 0;
  }

  /** A file path, normalized, that fits the backend. */
  filePath(scope: StorageScope, raw: string | undefined | null): string {
    const path = normalizeStoragePath(raw);
    this.checkFits(scope, path);
    return path;
  }

  /** A folder path ("" = the root), normalized. */
  folderPath(scope: StorageScope, raw: string | undefined | null): string {
    const path = normalizeStoragePath(raw, { folder: true });
    if (path) this.checkFits(scope, path);
    return path;
  }

  private checkFits(scope: StorageScope, path: string) {
    if (path.split("/").length > MAX_PATH_DEPTH) throw badRequest(`path must have at most ${MAX_PATH_DEPTH} segments`);
    if (Buffer.byteLength(blobKey(scope, path)) > this.blobs.maxKeyBytes)
      throw badRequest(`path is too long for this storage backend (at most ${this.blobs.maxKeyBytes - Buffer.byteLength(scopePrefix(scope))} bytes)`);
  }

  // ---- reads -------------------------------------------------------------------------------------------------

  /**
   * Open the current version of a file, let `plan` decide what to send from its info (conditional requests,
   * ranges), and open the body. A version replaced between the two steps is retried, so info and bytes always match.
   */
  async read(scope: StorageScope, path: string, plan: (info: BlobInfo) => ReadPlan): Promise<{ info: BlobInfo; plan: ReadPlan; body?: Readable } | null> {
    for (let attempt = 0; ; attempt++) {
      const handle = await this.blobs.open(blobKey(scope, path));
      if (!handle) return null;
      const p = plan(handle.info);
      if (!p.body) {
        await handle.close();
        return { info: handle.info, plan: p };
      }
      try {
        return { info: handle.info, plan: p, body: await handle.read(p.range) };
      } catch (e) {
        await handle.close();
        if (e instanceof BlobChangedError && attempt < 3) continue;
        throw e;
      }
    }
  }

  fileJson(path: string, info: { size: number; etag: string; lastModified: number }): FileJson {
    return {
      name: baseName(path),
      path,
      is_folder: false,
      size: info.size,
      etag: info.etag,
      content_type: contentTypeOf(path),
      created_at: null,
      updated_at: iso(info.lastModified),
    };
  }

  private folderJson(path: string): FolderJson {
    return { name: baseName(path), path, is_folder: true, size: null, created_at: null, updated_at: null };
  }

  /** A file, a folder, or null. "" is the root folder, which always exists. */
  async stat(scope: StorageScope, path: string): Promise<FileJson | FolderJson | null> {
    if (path === "") return this.folderJson("");
    const info = await this.blobs.stat(blobKey(scope, path));
    if (info) return this.fileJson(path, info);
    if (await this.blobs.hasChildren(folderPrefix(scope, path))) return this.folderJson(path);
    return null;
  }

  /** One level of a folder, one page at a time (`after` = the previous page's `next`). */
  async list(scope: StorageScope, path: string, opts: { limit: number; after?: string }, perms: StoragePermissions) {
    if (opts.after !== undefined && Buffer.byteLength(opts.after) > 1024) throw badRequest("after must be at most 1024 bytes");
    const page = await this.blobs.list(folderPrefix(scope, path), { limit: opts.limit, after: opts.after });
    if (!page) {
      if (path === "") return { files: [], next: null };
      if (await this.blobs.stat(blobKey(scope, path))) throw badRequest("path is a file, not a folder");
      throw notFound("folder");
    }
    const files = [];
    for (const e of page.entries) {
      const p = path ? `${path}/${e.name}` : e.name;
      if (!perms.canSee(p, e.isFolder)) continue;
      files.push(e.isFolder ? this.folderJson(p) : this.fileJson(p, { size: e.size ?? 0, etag: e.etag ?? "", lastModified: e.lastModified ?? 0 }));
    }
    return { files, next: page.next ?? null };
  }

  /** Stored bytes and files of a project (its project storage and its rooms' storage), for metering and quotas. */
  async usage(projectId: string): Promise<{ bytes: number; files: number }> {
    const u = await storageRepo.usage(this.db, projectId);
    return { bytes: Number(u?.bytes ?? 0), files: Number(u?.files ?? 0) };
  }

  /** The project's quota from its settings (`storage_quota_bytes`), or null when it has none. */
  async quota(projectId: string): Promise<number | null> {
    const p = await this.projects.get(projectId);
    let settings: Record<string, unknown>;
    try {
      settings = JSON.parse(p.settings) as Record<string, unknown>;
    } catch {
      return null;
    }
    const q = settings?.[QUOTA_SETTING];
    return typeof q === "number" && Number.isFinite(q) && q >= 0 ? Math.floor(q) : null;
  }

  // ---- writes ------------------------------------------------------------------------------------------------

  /**
   * Stream a body into a file. Refused before a byte is read when the path's shape conflicts (409) or the declared
   * length is over the limit (413); refused while streaming when the body grows over it (413). Nothing is visible
   * until the body ended completely; the previous version stays readable until then.
   */
  async upload(scope: StorageScope, path: string, body: Readable, o: { participantId: string; contentLength?: number }) {
    await this.checkShape(scope, path);
    const limit = await this.uploadLimit(scope, path);
    if (o.contentLength !== undefined && o.contentLength > limit.bytes) throw this.tooLarge(limit);
    const pending = await this.begin(scope, path, "upload", o.participantId);
    let put: PutResult;
    try {
      put = await this.blobs.put(blobKey(scope, path), meteredBody(body, { maxBytes: limit.bytes, expectedBytes: o.contentLength }), {
        contentType: contentTypeOf(path),
      });
    } catch (e) {
      pending.stop();
      // Nothing should be visible, but a backend may fail after publishing (fsync, a lost S3 reply): reconcile.
      await this.finish(pending.id, scope, path, o.participantId, null).catch((err) => this.opts.log?.("storage: reconcile after a failed upload", err));
      if (e instanceof BlobTooLargeError) throw this.tooLarge(limit);
      if (e instanceof BlobConflictError) throw conflict(e.message);
      if (e instanceof BlobAbortedError) throw new ApiError(400, "upload_incomplete", e.message);
      throw e;
    }
    pending.stop();
    const info = await this.finish(pending.id, scope, path, o.participantId, { type: "storage.file.updated", size: put.size, etag: put.etag });
    return { path, size: put.size, etag: put.etag, updated_at: iso(info?.lastModified ?? this.clock.now()) };
  }

  /**
   * Write a small file straight to the blob store, without touching the database, for writers that run inside a
   * transaction of their own (the scheduler writes storage_write_path files while its claim is open; on SQLite a
   * second transaction there would wait for the first forever). The file row, usage and `storage.file.updated`
   * follow in a transaction of their own, queued behind the caller's. A crash in between leaves the file stored but
   * not yet counted in usage.
   */
  async writeDetached(scope: StorageScope, path: string, data: Buffer, participantId: string): Promise<void> {
    await this.checkShape(scope, path);
    await this.blobs.put(blobKey(scope, path), Readable.from([data]), { contentType: contentTypeOf(path) });
    void inTx(this.db, async (tx) => (await this.reconcile(tx, scope, path, participantId, null)).after)
      .then((after) => after())
      .catch((err) => this.opts.log?.("storage: recording a detached write failed", err));
  }

  /** Delete a file, or a folder with everything in it when `recursive`. Resolves to the number of files removed. */
  async delete(scope: StorageScope, path: string, o: { participantId: string; recursive?: boolean }): Promise<number> {
    if (path === "") throw badRequest("the root folder cannot be deleted");
    const info = await this.blobs.stat(blobKey(scope, path));
    if (info) {
      await this.deleteOne(scope, path, o.participantId);
      return 1;
    }
    const prefix = folderPrefix(scope, path);
    if (!(await this.blobs.hasChildren(prefix))) throw notFound("file");
    if (!o.recursive) throw new ApiError(409, "recursive_required", "path is a folder; pass recursive=true to delete it with everything in it");
    let n = 0;
    const base = scopePrefix(scope);
    for await (const b of this.blobs.walk(prefix)) {
      await this.deleteOne(scope, b.key.slice(base.length), o.participantId);
      n++;
    }
    return n;
  }

  private async deleteOne(scope: StorageScope, path: string, participantId: string) {
    const pending = await this.begin(scope, path, "delete", participantId);
    try {
      await this.blobs.delete(blobKey(scope, path));
    } finally {
      pending.stop();
      await this.finish(pending.id, scope, path, participantId, { type: "storage.file.deleted" });
    }
  }

  private tooLarge(limit: { bytes: number; reason: "max" | "quota" }) {
    return limit.reason === "quota"
      ? new ApiError(413, "storage_quota_exceeded", `the upload would exceed the project's storage quota (${limit.bytes} bytes left for this file)`)
      : new ApiError(413, "payload_too_large", `uploads are limited to ${limit.bytes} bytes`);
  }

  /** The most bytes this upload may have: the server's limit, or what the quota leaves (counting the old version as freed). */
  private async uploadLimit(scope: StorageScope, path: string): Promise<{ bytes: number; reason: "max" | "quota" }> {
    const max = this.opts.maxUploadBytes;
    const quota = await this.quota(scope.projectId);
    if (quota === null) return { bytes: max, reason: "max" };
    const used = (await this.usage(scope.projectId)).bytes;
    const old = Number((await storageRepo.file(this.db, scopeId(scope), path))?.size ?? 0);
    const room = Math.max(0, quota - (used - old));
    return room < max ? { bytes: room, reason: "quota" } : { bytes: max, reason: "max" };
  }

  /** A path is a file or a folder, never both: no parent may be a file, and the path may not be a folder. */
  private async checkShape(scope: StorageScope, path: string) {
    // The local filesystem refuses both by itself (and the backend maps that to a conflict); S3 needs the checks.
    if (this.blobs.kind === "file") return;
    const parents = parentsOf(path);
    const found = await Promise.all(parents.map((p) => this.blobs.stat(blobKey(scope, p))));
    const i = found.findIndex((f) => f !== null);
    if (i >= 0) throw conflict(`${quote(parents[i])} is a file, so it cannot contain other files`);
    if (await this.blobs.hasChildren(folderPrefix(scope, path))) throw conflict("path is a folder");
  }

  private async begin(scope: StorageScope, path: string, op: "upload" | "delete", participantId: string) {
    const id = newId();
    const now = this.clock.now();
    await storageRepo.insertPending(this.db, {
      id,
      project_id: scope.projectId,
      scope: scopeId(scope),
      path,
      op,
      participant_id: participantId,
      started_at: now,
      lease_until: now + this.leaseMs,
    });
    const timer = setInterval(
      () => {
        storageRepo.renewPending(this.db, id, this.clock.now() + this.leaseMs).catch((err) => this.opts.log?.("storage: lease renewal failed", err));
      },
      Math.max(1000, Math.floor(this.leaseMs / 3)),
    );
    timer.unref();
    return { id, stop: () => clearInterval(timer) };
  }

  /** Remove the pending row and reconcile the path in one transaction; then notify. */
  private async finish(
    pendingId: string,
    scope: StorageScope,
    path: string,
    participantId: string,
    event: { type: "storage.file.updated"; size: number; etag: string } | { type: "storage.file.deleted" } | null,
  ): Promise<BlobInfo | null> {
    let truth: BlobInfo | null = null;
    const after = await inTx(this.db, async (tx) => {
      if (!(await storageRepo.deletePending(tx, pendingId))) return () => {};
      const r = await this.reconcile(tx, scope, path, participantId, event);
      truth = r.truth;
      return r.after;
    });
    after();
    return truth;
  }

  /**
   * Make the file row and the project's usage match what the blob store holds for the path, under the usage lock.
   * `event` is the write this transaction completes (always published); with null, an event is published only when
   * the store differs from the row (recovery of a write whose process died).
   */
  private async reconcile(
    tx: Queryable,
    scope: StorageScope,
    path: string,
    participantId: string,
    event: { type: "storage.file.updated"; size: number; etag: string } | { type: "storage.file.deleted" } | null,
  ): Promise<{ truth: BlobInfo | null; after: () => void }> {
    const now = this.clock.now();
    const sid = scopeId(scope);
    await storageRepo.lockUsage(tx, this.dialect, scope.projectId, now);
    const truth = await this.blobs.stat(blobKey(scope, path));
    const row = await storageRepo.file(tx, sid, path);
    let dBytes = 0;
    let dFiles = 0;
    if (truth) {
      if (!row || row.etag !== truth.etag || Number(row.size) !== truth.size) {
        await storageRepo.upsertFile(tx, { scope: sid, path, project_id: scope.projectId, size: truth.size, etag: truth.etag, updated_at: now });
        dBytes = truth.size - Number(row?.size ?? 0);
        dFiles = row ? 0 : 1;
      }
    } else if (row) {
      await storageRepo.deleteFile(tx, sid, path);
      dBytes = -Number(row.size);
      dFiles = -1;
    }
    if (dBytes || dFiles) await storageRepo.addUsage(tx, scope.projectId, dBytes, dFiles, now);

    const base = { path, participant_id: participantId, ...(scope.kind === "room" ? { room_id: scope.roomId } : {}) };
    let data: Record<string, unknown> | null = null;
    let type = "";
    if (event?.type === "storage.file.updated") {
      type = event.type;
      data = { ...base, size: event.size, etag: event.etag };
    } else if (event?.type === "storage.file.deleted") {
      type = event.type;
      data = { ...base, size: Number(row?.size ?? 0), etag: row?.etag ?? null };
    } else if (truth && (!row || row.etag !== truth.etag)) {
      type = "storage.file.updated";
      data = { ...base, size: truth.size, etag: truth.etag };
    } else if (!truth && row) {
      type = "storage.file.deleted";
      data = { ...base, size: Number(row.size), etag: row.etag };
    }
    const after = data ? await this.bus.publish(tx, { type, project_id: scope.projectId, data }) : () => {};
    return { truth, after };
  }

  // ---- maintenance -------------------------------------------------------------------------------------------

  /** Reconcile the paths of writes whose process died (lease expired). Returns how many were recovered. */
  async recover(limit = 100): Promise<number> {
    const rows = await storageRepo.expiredPending(this.db, this.clock.now(), limit);
    let n = 0;
    for (const row of rows) {
      const scope = scopeFromId(row.scope, row.project_id);
      const after = await inTx(this.db, async (tx) => {
        if (!(await storageRepo.deletePending(tx, row.id))) return null;
        return (await this.reconcile(tx, scope, row.path, row.participant_id, null)).after;
      });
      if (after) {
        after();
        n++;
      }
    }
    return n;
  }

  /** One maintenance pass: drop dead uploads' leftovers, recover expired pending writes. */
  runMaintenance(): Promise<void> {
    this.maintenance ??= (async () => {
      try {
        await this.blobs.sweep();
        while ((await this.recover()) > 0);
      } catch (err) {
        this.opts.log?.("storage: maintenance failed", err);
      } finally {
        this.maintenance = undefined;
      }
    })();
    return this.maintenance;
  }

  /** Run maintenance now and then every `intervalMs` (servers only; CLI commands don't). */
  start(intervalMs = 30_000) {
    void this.runMaintenance();
    this.timer = setInterval(() => void this.runMaintenance(), intervalMs);
    this.timer.unref();
  }

  async stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.maintenance;
  }
}
