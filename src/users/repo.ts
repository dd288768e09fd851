import type { Queryable } from "../store/db.js";
import type { UsersTable } from "../store/schema.js";

export type UserRow = UsersTable;

export const usersRepo = {
  byId: (q: Queryable, id: string) => q.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst(),
  byEmail: (q: Queryable, email: string) => q.selectFrom("users").selectAll().where("email_lower", "=", email.toLowerCase()).executeTakeFirst(),
  /** Whether any user exists (a new server has none until bootstrap or a sign-up). */
  any: async (q: Queryable) => !!(await q.selectFrom("users").select("id").limit(1).executeTakeFirst()),
  insert: (q: Queryable, row: UserRow) => q.insertInto("users").values(row).execute(),
  update: (q: Queryable, id: string, patch: Partial<UserRow>) => q.updateTable("users").set(patch).where("id", "=", id).execute(),
  /** Records a TOTP step as used, if it is later than the last one (false: that code or a later one was used). */
  useTotpStep: async (q: Queryable, id: string, step: number) => {
    const r = await q
      .updateTable("users")
      .set({ totp_last_step: step })
      .where("id", "=", id)
      .where((eb) => eb.or([eb("totp_last_step", "is", null), eb("totp_last_step", "<", step)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  /** Whether two users share at least one project (profiles are visible to project co-members). */
  shareAProject: async (q: Queryable, a: string, b: string) => {
    const row = await q
      .selectFrom("memberships as m1")
      .innerJoin("memberships as m2", "m1.project_id", "m2.project_id")
      .select("m1.project_id")
      .where("m1.user_id", "=", a)
      .where("m2.user_id", "=", b)
      .limit(1)
      .executeTakeFirst();
    return !!row;
  },
  /** The token with this hash and whether its user is disabled. */
  tokenByHash: (q: Queryable, hash: string) =>
    q
      .selectFrom("user_tokens")
      .innerJoin("users", "users.id", "user_tokens.user_id")
      .selectAll("user_tokens")
      .select("users.disabled_at")
      .where("user_tokens.token_hash", "=", hash)
      .executeTakeFirst(),
  insertToken: (q: Queryable, row: import("../store/schema.js").UserTokensTable) => q.insertInto("user_tokens").values(row).execute(),
  deleteToken: (q: Queryable, id: string) => q.deleteFrom("user_tokens").where("id", "=", id).execute(),
  /** A user's tokens, newest first (never their hashes). */
  tokensOf: (q: Queryable, userId: string) =>
    q
      .selectFrom("user_tokens")
      .select(["id", "kind", "name", "created_at", "expires_at"])
      .where("user_id", "=", userId)
      .orderBy("created_at", "desc")
      .orderBy("id")
      .execute(),
  /** Delete one of a user's tokens; false when the user has no token with that id. */
  deleteTokenOf: async (q: Queryable, userId: string, id: string) => {
    const r = await q.deleteFrom("user_tokens").where("user_id", "=", userId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
};
