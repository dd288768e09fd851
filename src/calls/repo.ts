import type { Queryable } from "../store/db.js";
import type { CallSecretsTable } from "../store/schema.js";

export type CallSecretRow = CallSecretsTable;

/** The per-project room.call signing secret (one row per project). */
export const callsRepo = {
  secret: (q: Queryable, projectId: string) => q.selectFrom("call_secrets").selectAll().where("project_id", "=", projectId).executeTakeFirst(),
  /** Insert unless the project has one (two processes racing to create it keep the first). */
  insertIfAbsent: (q: Queryable, row: CallSecretRow) =>
    q
      .insertInto("call_secrets")
      .values(row)
      .onConflict((oc) => oc.column("project_id").doNothing())
      .execute(),
  /** Replace it (or create it). */
  put: (q: Queryable, row: CallSecretRow) =>
    q
      .insertInto("call_secrets")
      .values(row)
      .onConflict((oc) => oc.column("project_id").doUpdateSet({ secret_sealed: row.secret_sealed, updated_at: row.updated_at }))
      .execute(),
};
