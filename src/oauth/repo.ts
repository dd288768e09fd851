import { sql } from "kysely";
import { likePattern } from "../core/paging.js";
import type { Queryable } from "../store/db.js";
import type { OAuthClientsTable } from "../store/schema.js";

export type OAuthClientRow = OAuthClientsTable;

/** OAuth client SQL (src/oauth). */
export const oauthClientsRepo = {
  byId: (q: Queryable, projectId: string, clientId: string) =>
    q.selectFrom("oauth_clients").selectAll().where("project_id", "=", projectId).where("client_id", "=", clientId).executeTakeFirst(),

  insert: (q: Queryable, row: OAuthClientRow) => q.insertInto("oauth_clients").values(row).execute(),

  update: async (q: Queryable, projectId: string, clientId: string, patch: Partial<OAuthClientRow>) => {
    const r = await q.updateTable("oauth_clients").set(patch).where("project_id", "=", projectId).where("client_id", "=", clientId).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  delete: async (q: Queryable, projectId: string, clientId: string) => {
    const r = await q.deleteFrom("oauth_clients").where("project_id", "=", projectId).where("client_id", "=", clientId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  /** One page of a project's clients, oldest first; `filter` matches the client id, scope or metadata, case-insensitively. */
  page: async (q: Queryable, projectId: string, opts: { limit: number; offset: number; filter?: string }) => {
    let base = q.selectFrom("oauth_clients").where("project_id", "=", projectId);
    if (opts.filter) {
      const pat = likePattern(opts.filter);
      base = base.where((eb) =>
        eb.or((["client_id", "scope", "metadata"] as const).map((c) => eb(sql`lower(${sql.ref(c)})`, "like", sql<string>`${pat} ESCAPE '\\'`))),
      );
    }
    const [rows, count] = await Promise.all([
      base.selectAll().orderBy("created_at").orderBy("client_id").limit(opts.limit).offset(opts.offset).execute(),
      base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  },
};
