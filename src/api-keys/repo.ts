import type { Queryable } from "../store/db.js";
import type { ApiKeysTable } from "../store/schema.js";

export type ApiKeyRow = ApiKeysTable;

export const apiKeysRepo = {
  byId: (q: Queryable, id: string) => q.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst(),
  insert: (q: Queryable, row: ApiKeyRow) => q.insertInto("api_keys").values(row).execute(),
  listByProject: (q: Queryable, projectId: string) =>
    q
      .selectFrom("api_keys")
      .select(["id", "project_id", "name", "description", "created_by", "created_at"])
      .where("project_id", "=", projectId)
      .orderBy("created_at", "asc")
      .orderBy("id", "asc")
      .execute(),
  delete: async (q: Queryable, projectId: string, id: string) => {
    const r = await q.deleteFrom("api_keys").where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
};
