import type { Queryable } from "../store/db.js";
import type { SecretsTable, ServiceSecretRefsTable } from "../store/schema.js";

export type SecretRow = SecretsTable;
export type SecretRefRow = ServiceSecretRefsTable;

/** The key of one secret in its scope: a room secret may exist once per (id, for_identity, delegated_to). */
export interface SecretKey {
  projectId: string;
  scope: string;
  secretId: string;
  forIdentity: string;
  delegatedTo: string;
}

/** Which room secrets a lookup means: every given field must match; an absent one matches any value. */
export interface SecretFilter {
  secretId?: string;
  name?: string;
  type?: string;
  forIdentity?: string;
  delegatedTo?: string;
}

/** Secret SQL. Other areas reach secrets through SecretsService. */
export const secretsRepo = {
  insert: (q: Queryable, row: SecretRow) => q.insertInto("secrets").values(row).execute(),

  get: (q: Queryable, k: SecretKey) =>
    q
      .selectFrom("secrets")
      .selectAll()
      .where("project_id", "=", k.projectId)
      .where("scope", "=", k.scope)
      .where("secret_id", "=", k.secretId)
      .where("for_identity", "=", k.forIdentity)
      .where("delegated_to", "=", k.delegatedTo)
      .executeTakeFirst(),

  /** A scope's secrets (no values are read), ordered by name then id; `forIdentity` narrows room secrets. */
  list: (q: Queryable, projectId: string, scope: string, forIdentity?: string) => {
    let s = q
      .selectFrom("secrets")
      .select(["id", "secret_id", "name", "type", "for_identity", "delegated_to", "created_at", "updated_at"])
      .where("project_id", "=", projectId)
      .where("scope", "=", scope);
    if (forIdentity !== undefined) s = s.where("for_identity", "=", forIdentity);
    return s.orderBy("name").orderBy("secret_id").orderBy("for_identity").orderBy("delegated_to").execute();
  },

  /** A room's secrets an identity sees: its own and those delegated to it (no values), ordered like `list`. */
  listVisible: (q: Queryable, projectId: string, scope: string, identity: string) =>
    q
      .selectFrom("secrets")
      .select(["id", "secret_id", "name", "type", "for_identity", "delegated_to", "created_at", "updated_at"])
      .where("project_id", "=", projectId)
      .where("scope", "=", scope)
      .where((eb) => eb.or([eb("for_identity", "=", identity), eb("delegated_to", "=", identity)]))
      .orderBy("name")
      .orderBy("secret_id")
      .orderBy("for_identity")
      .orderBy("delegated_to")
      .execute(),

  /** The most recently updated secret of a scope that matches every given field (an absent field matches any). */
  findOne: (q: Queryable, projectId: string, scope: string, f: SecretFilter) => {
    let s = q.selectFrom("secrets").selectAll().where("project_id", "=", projectId).where("scope", "=", scope);
    if (f.secretId !== undefined) s = s.where("secret_id", "=", f.secretId);
    if (f.name !== undefined) s = s.where("name", "=", f.name);
    if (f.type !== undefined) s = s.where("type", "=", f.type);
    if (f.forIdentity !== undefined) s = s.where("for_identity", "=", f.forIdentity);
    if (f.delegatedTo !== undefined) s = s.where("delegated_to", "=", f.delegatedTo);
    return s.orderBy("updated_at", "desc").orderBy("id").limit(1).executeTakeFirst();
  },

  count: async (q: Queryable, projectId: string, scope: string) =>
    Number(
      (
        await q
          .selectFrom("secrets")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("project_id", "=", projectId)
          .where("scope", "=", scope)
          .executeTakeFirstOrThrow()
      ).n,
    ),

  update: (q: Queryable, id: string, patch: Partial<SecretRow>) => q.updateTable("secrets").set(patch).where("id", "=", id).execute(),

  delete: async (q: Queryable, id: string) => Number((await q.deleteFrom("secrets").where("id", "=", id).executeTakeFirst()).numDeletedRows) > 0,

  /**
   * Which of `ids` exist in any of `scopes` (any identity). On PostgreSQL the rows are locked FOR SHARE, so a
   * concurrent delete of one of them waits for the caller's transaction (and then sees its new reference).
   */
  existing: async (q: Queryable, projectId: string, scopes: string[], ids: string[], lock: boolean) => {
    if (ids.length === 0) return new Set<string>();
    let s = q.selectFrom("secrets").select("secret_id").where("project_id", "=", projectId).where("scope", "in", scopes).where("secret_id", "in", ids);
    if (lock) s = s.forShare();
    return new Set((await s.execute()).map((r) => r.secret_id));
  },

  /** Does a secret with this id remain in one of these scopes (after a delete in the same transaction)? */
  anyIn: async (q: Queryable, projectId: string, scopes: string[], secretId: string) =>
    !!(await q
      .selectFrom("secrets")
      .select("id")
      .where("project_id", "=", projectId)
      .where("scope", "in", scopes)
      .where("secret_id", "=", secretId)
      .executeTakeFirst()),

  // --- references (which services name which secret ids) ---

  replaceRefs: async (q: Queryable, serviceId: string, rows: SecretRefRow[]) => {
    await q.deleteFrom("service_secret_refs").where("service_id", "=", serviceId).execute();
    if (rows.length) await q.insertInto("service_secret_refs").values(rows).execute();
  },

  /** Services naming `secretId`: all of the project's when `scope` is "" (a project secret), else the room's. */
  refsTo: (q: Queryable, projectId: string, secretId: string, scope: string) => {
    let s = q.selectFrom("service_secret_refs").selectAll().where("project_id", "=", projectId).where("secret_id", "=", secretId);
    if (scope !== "") s = s.where("scope", "=", scope);
    return s.orderBy("service_name").execute();
  },
};
