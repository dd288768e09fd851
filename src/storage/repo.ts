import type { Dialect, Queryable } from "../store/db.js";
import type { StorageFilesTable, StoragePendingTable } from "../store/schema.js";
import { sha256Hex } from "../core/crypto.js";

export type StorageFileRow = StorageFilesTable;
export type StoragePendingRow = StoragePendingTable;

export const pathHash = (path: string) => sha256Hex(path);

export const storageRepo = {
  file: (q: Queryable, scope: string, path: string) =>
    q.selectFrom("storage_files").selectAll().where("scope", "=", scope).where("path_hash", "=", pathHash(path)).executeTakeFirst(),

  upsertFile: (q: Queryable, row: Omit<StorageFileRow, "path_hash">) =>
    q
      .insertInto("storage_files")
      .values({ ...row, path_hash: pathHash(row.path) })
      .onConflict((oc) => oc.columns(["scope", "path_hash"]).doUpdateSet({ size: row.size, etag: row.etag, updated_at: row.updated_at }))
      .execute(),

  deleteFile: (q: Queryable, scope: string, path: string) =>
    q.deleteFrom("storage_files").where("scope", "=", scope).where("path_hash", "=", pathHash(path)).execute(),

  /**
   * The project's usage row, created when missing and locked for the rest of the transaction (on SQLite the
   * single connection already serializes transactions). Every change to a project's files takes this lock first.
   */
  lockUsage: async (q: Queryable, dialect: Dialect, projectId: string, now: number) => {
    await q
      .insertInto("storage_usage")
      .values({ project_id: projectId, bytes: 0, files: 0, updated_at: now })
      .onConflict((oc) => oc.column("project_id").doNothing())
      .execute();
    let sel = q.selectFrom("storage_usage").selectAll().where("project_id", "=", projectId);
    if (dialect === "postgres") sel = sel.forUpdate();
    return sel.executeTakeFirstOrThrow();
  },

  addUsage: (q: Queryable, projectId: string, bytes: number, files: number, now: number) =>
    q
      .updateTable("storage_usage")
      .set((eb) => ({ bytes: eb("bytes", "+", bytes), files: eb("files", "+", files), updated_at: now }))
      .where("project_id", "=", projectId)
      .execute(),

  usage: (q: Queryable, projectId: string) => q.selectFrom("storage_usage").select(["bytes", "files"]).where("project_id", "=", projectId).executeTakeFirst(),

  insertPending: (q: Queryable, row: StoragePendingRow) => q.insertInto("storage_pending").values(row).execute(),

  renewPending: (q: Queryable, id: string, leaseUntil: number) =>
    q.updateTable("storage_pending").set({ lease_until: leaseUntil }).where("id", "=", id).execute(),

  /** Resolves true when this call removed the row (so exactly one process finishes or recovers a pending write). */
  deletePending: async (q: Queryable, id: string) => {
    const r = await q.deleteFrom("storage_pending").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  expiredPending: (q: Queryable, now: number, limit: number) =>
    q.selectFrom("storage_pending").selectAll().where("lease_until", "<", now).orderBy("lease_until").limit(limit).execute(),
};
