import { sql } from "kysely";
import type { Queryable } from "../store/db.js";
import type { SharesTable } from "../store/schema.js";

export type ShareRow = SharesTable;

export const sharesRepo = {
  byId: (q: Queryable, id: string) => q.selectFrom("shares").selectAll().where("id", "=", id).executeTakeFirst(),
  insert: (q: Queryable, row: ShareRow) => q.insertInto("shares").values(row).execute(),
  update: async (q: Queryable, projectId: string, id: string, patch: Partial<ShareRow>) => {
    const r = await q.updateTable("shares").set(patch).where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  delete: async (q: Queryable, projectId: string, id: string) => {
    const r = await q.deleteFrom("shares").where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
  page: (q: Queryable, projectId: string, limit: number, offset: number) =>
    q.selectFrom("shares").selectAll().where("project_id", "=", projectId).orderBy("created_at").orderBy("id").limit(limit).offset(offset).execute(),
  count: async (q: Queryable, projectId: string) => {
    const r = await q
      .selectFrom("shares")
      .where("project_id", "=", projectId)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  },
  /** Count one use, atomically refusing when max_uses is reached (true when the use was counted). */
  takeUse: async (q: Queryable, id: string) => {
    const r = await q
      .updateTable("shares")
      .set({ uses: sql<number>`uses + 1` })
      .where("id", "=", id)
      .where((eb) => eb.or([eb("max_uses", "is", null), eb("uses", "<", eb.ref("max_uses"))]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
};
