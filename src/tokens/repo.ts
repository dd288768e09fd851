import type { Queryable } from "../store/db.js";
import type { ProjectSigningKeysTable } from "../store/schema.js";

export type SigningKeyRow = ProjectSigningKeysTable;

/** Per-project signing keys (the `kid` of tokens the server mints for users and shares). */
export const signingKeysRepo = {
  byId: (q: Queryable, id: string) => q.selectFrom("project_signing_keys").selectAll().where("id", "=", id).executeTakeFirst(),
  byProject: (q: Queryable, projectId: string) => q.selectFrom("project_signing_keys").selectAll().where("project_id", "=", projectId).executeTakeFirst(),
  /** Insert unless the project already has a key (two processes racing to create it keep the first). */
  insertIfAbsent: (q: Queryable, row: SigningKeyRow) =>
    q
      .insertInto("project_signing_keys")
      .values(row)
      .onConflict((oc) => oc.column("project_id").doNothing())
      .execute(),
};
