import { sql } from "kysely";
import { likePattern } from "../core/paging.js";
import type { Queryable } from "../store/db.js";
import type { OAuthArtifactsTable, OAuthClientsTable, OAuthServerClientsTable } from "../store/schema.js";

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

export type ArtifactRow = OAuthArtifactsTable;

/** The authorization server's artifacts (oidc-provider models) and instance-wide clients (src/oauth). */
export const artifactsRepo = {
  upsert: (q: Queryable, row: ArtifactRow) =>
    q
      .insertInto("oauth_artifacts")
      .values(row)
      .onConflict((oc) =>
        oc.columns(["model", "id_hash"]).doUpdateSet({
          payload: row.payload,
          grant_id: row.grant_id,
          user_code: row.user_code,
          uid: row.uid,
          account_id: row.account_id,
          client_id: row.client_id,
          expires_at: row.expires_at,
          consumed_at: row.consumed_at,
        }),
      )
      .execute(),

  byId: (q: Queryable, model: string, idHash: string) =>
    q.selectFrom("oauth_artifacts").selectAll().where("model", "=", model).where("id_hash", "=", idHash).executeTakeFirst(),

  by: (q: Queryable, model: string, column: "uid" | "user_code", value: string) =>
    q.selectFrom("oauth_artifacts").selectAll().where("model", "=", model).where(column, "=", value).executeTakeFirst(),

  /** Marks it consumed; false when it was consumed already (or is gone). */
  consume: async (q: Queryable, model: string, idHash: string, now: number) => {
    const r = await q
      .updateTable("oauth_artifacts")
      .set({ consumed_at: now })
      .where("model", "=", model)
      .where("id_hash", "=", idHash)
      .where("consumed_at", "is", null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  destroy: (q: Queryable, model: string, idHash: string) =>
    q.deleteFrom("oauth_artifacts").where("model", "=", model).where("id_hash", "=", idHash).executeTakeFirst(),

  destroyGrantMembers: (q: Queryable, model: string, grantId: string) =>
    q.deleteFrom("oauth_artifacts").where("model", "=", model).where("grant_id", "=", grantId).execute(),

  /** Every artifact of a grant, the grant included (its own row's grant_id is its id). */
  destroyGrant: (q: Queryable, grantId: string) => q.deleteFrom("oauth_artifacts").where("grant_id", "=", grantId).execute(),

  /** Every artifact issued to a client (deleting the client revokes them). */
  destroyClient: (q: Queryable, clientId: string) => q.deleteFrom("oauth_artifacts").where("client_id", "=", clientId).execute(),

  grantsOf: (q: Queryable, accountId: string, now: number) =>
    q
      .selectFrom("oauth_artifacts")
      .selectAll()
      .where("model", "=", "Grant")
      .where("account_id", "=", accountId)
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .orderBy("created_at", "desc")
      .execute(),

  sweep: (q: Queryable, now: number, limit: number) =>
    q
      .deleteFrom("oauth_artifacts")
      .where("id_hash", "in", (sq) =>
        sq.selectFrom("oauth_artifacts").select("id_hash").where("expires_at", "is not", null).where("expires_at", "<", now).limit(limit),
      )
      .execute(),

  serverClient: (q: Queryable, clientId: string) => q.selectFrom("oauth_server_clients").selectAll().where("client_id", "=", clientId).executeTakeFirst(),
  serverClients: (q: Queryable) => q.selectFrom("oauth_server_clients").selectAll().orderBy("created_at").execute(),
  insertServerClient: (q: Queryable, row: OAuthServerClientsTable) =>
    q
      .insertInto("oauth_server_clients")
      .values(row)
      .onConflict((oc) => oc.column("client_id").doNothing())
      .execute(),
  deleteServerClient: async (q: Queryable, clientId: string) =>
    Number((await q.deleteFrom("oauth_server_clients").where("client_id", "=", clientId).executeTakeFirst()).numDeletedRows) > 0,
  /** A project client by id alone (the token endpoint does not know the project). */
  projectClient: (q: Queryable, clientId: string) => q.selectFrom("oauth_clients").selectAll().where("client_id", "=", clientId).executeTakeFirst(),
};
