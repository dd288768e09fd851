import type { Queryable } from "../store/db.js";
import type { ServicesTable } from "../store/schema.js";

export type ServiceRow = ServicesTable;

/** Service SQL. Other areas reach services through ServicesService. */
export const servicesRepo = {
  insert: (q: Queryable, row: ServiceRow) => q.insertInto("services").values(row).execute(),

  get: (q: Queryable, projectId: string, scope: string, id: string) =>
    q.selectFrom("services").selectAll().where("id", "=", id).where("project_id", "=", projectId).where("scope", "=", scope).executeTakeFirst(),

  /** A scope's services by name (the list is bounded by MAX_SERVICES_PER_SCOPE). */
  list: (q: Queryable, projectId: string, scope: string) =>
    q.selectFrom("services").selectAll().where("project_id", "=", projectId).where("scope", "=", scope).orderBy("name").orderBy("id").execute(),

  count: async (q: Queryable, projectId: string, scope: string) =>
    Number(
      (
        await q
          .selectFrom("services")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("project_id", "=", projectId)
          .where("scope", "=", scope)
          .executeTakeFirstOrThrow()
      ).n,
    ),

  /** Replace the spec (and name), bumping the revision; false when the row is gone. */
  replace: async (q: Queryable, id: string, patch: { name: string; spec: string; updated_at: number }) =>
    Number(
      (
        await q
          .updateTable("services")
          .set((eb) => ({ ...patch, revision: eb("revision", "+", 1) }))
          .where("id", "=", id)
          .executeTakeFirst()
      ).numUpdatedRows,
    ) > 0,

  delete: async (q: Queryable, id: string) => Number((await q.deleteFrom("services").where("id", "=", id).executeTakeFirst()).numDeletedRows) > 0,
};
