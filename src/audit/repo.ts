import { prepared } from "../store/prepared.js";
import type { Queryable } from "../store/db.js";
import type { AuditLogTable } from "../store/schema.js";

export type AuditRow = Omit<AuditLogTable, "id"> & { id: number };
export type NewAuditRow = Omit<AuditLogTable, "id">;

/** What a listing may narrow on; every filter is an exact match except the time bounds (epoch ms, inclusive). */
export interface AuditFilter {
  actor?: string;
  operation?: string;
  target?: string;
  since?: number;
  until?: number;
}

/** The one statement on the request path: compiled once per store, then only bound. */
const insertQ = prepared(
  (
    q: Queryable,
    project_id: string | null,
    actor: string | null,
    operation: string,
    method: string,
    route: string,
    target_id: string | null,
    request_id: string,
    ip: string | null,
    status: number,
    created_at: number,
  ) => q.insertInto("audit_log").values({ project_id, actor, operation, method, route, target_id, request_id, ip, status, created_at }),
);

function filtered(q: Queryable, projectId: string, f: AuditFilter) {
  let s = q.selectFrom("audit_log").where("project_id", "=", projectId);
  if (f.actor !== undefined) s = s.where("actor", "=", f.actor);
  if (f.operation !== undefined) s = s.where("operation", "=", f.operation);
  if (f.target !== undefined) s = s.where("target_id", "=", f.target);
  if (f.since !== undefined) s = s.where("created_at", ">=", f.since);
  if (f.until !== undefined) s = s.where("created_at", "<=", f.until);
  return s;
}

export const auditRepo = {
  insert: async (q: Queryable, r: NewAuditRow) => {
    await insertQ(q, r.project_id, r.actor, r.operation, r.method, r.route, r.target_id, r.request_id, r.ip, r.status, r.created_at);
  },

  /** A page of one project's entries, newest first (ties: the later insert first). */
  list: (q: Queryable, projectId: string, f: AuditFilter, limit: number, offset: number) =>
    filtered(q, projectId, f).selectAll().orderBy("created_at", "desc").orderBy("id", "desc").limit(limit).offset(offset).execute() as Promise<AuditRow[]>,

  count: async (q: Queryable, projectId: string, f: AuditFilter) => {
    const r = await filtered(q, projectId, f)
      .select((e) => e.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  },

  /**
   * Delete up to `batch` rows created before `before`; returns how many went. Batches keep each statement (and, on
   * SQLite, the time the write lock is held) short while a large backlog is swept.
   */
  deleteOlder: async (q: Queryable, before: number, batch: number) => {
    const r = await q
      .deleteFrom("audit_log")
      .where("id", "in", (s) => s.selectFrom("audit_log").select("id").where("created_at", "<", before).limit(batch))
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  },
};
