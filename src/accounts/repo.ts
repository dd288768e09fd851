import type { Queryable } from "../store/db.js";
import type { AccountSessionsTable, InvitationsTable, PasswordResetsTable } from "../store/schema.js";

export type InvitationRow = InvitationsTable;

/** Invitation SQL (src/accounts). */
export const invitationsRepo = {
  insert: (q: Queryable, row: InvitationRow) => q.insertInto("invitations").values(row).execute(),

  byId: (q: Queryable, id: string) => q.selectFrom("invitations").selectAll().where("id", "=", id).executeTakeFirst(),

  byTokenHash: (q: Queryable, hash: string) => q.selectFrom("invitations").selectAll().where("token_hash", "=", hash).executeTakeFirst(),

  /** Invitations whose mail is due (never sent, next attempt reached), oldest first. */
  due: (q: Queryable, now: number, limit: number) =>
    q
      .selectFrom("invitations")
      .select("id")
      .where("sent_at", "is", null)
      .where("next_attempt_at", "is not", null)
      .where("next_attempt_at", "<=", now)
      .orderBy("next_attempt_at")
      .limit(limit)
      .execute(),

  /** Take the next attempt of one (compare-and-swap on next_attempt_at, so one process sends it). */
  claim: async (q: Queryable, id: string, expected: number, leaseUntil: number) => {
    const r = await q
      .updateTable("invitations")
      .set({ next_attempt_at: leaseUntil })
      .where("id", "=", id)
      .where("sent_at", "is", null)
      .where("next_attempt_at", "=", expected)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  update: (q: Queryable, id: string, patch: Partial<InvitationRow>) => q.updateTable("invitations").set(patch).where("id", "=", id).execute(),

  /** Mark one used, once (false when it already was). */
  use: async (q: Queryable, id: string, now: number) => {
    const r = await q.updateTable("invitations").set({ used_at: now }).where("id", "=", id).where("used_at", "is", null).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  /** The other open invitations of a user end when one is accepted. */
  closeOthers: (q: Queryable, userId: string, now: number) =>
    q.updateTable("invitations").set({ used_at: now, token_sealed: null }).where("user_id", "=", userId).where("used_at", "is", null).execute(),
};

/** Sign-in SQL (src/accounts): browser sessions and failed sign-in counters. */
export const signInRepo = {
  insertSession: (q: Queryable, row: AccountSessionsTable) => q.insertInto("account_sessions").values(row).execute(),

  sessionByHash: (q: Queryable, hash: string) =>
    q
      .selectFrom("account_sessions")
      .innerJoin("users", "users.id", "account_sessions.user_id")
      .select(["account_sessions.id", "account_sessions.user_id", "account_sessions.expires_at", "users.email", "users.disabled_at"])
      .where("account_sessions.token_hash", "=", hash)
      .executeTakeFirst(),

  deleteSession: (q: Queryable, hash: string) => q.deleteFrom("account_sessions").where("token_hash", "=", hash).execute(),

  /** A password change signs out the user's other browsers. */
  deleteOtherSessions: (q: Queryable, userId: string, keepHash: string) =>
    q.deleteFrom("account_sessions").where("user_id", "=", userId).where("token_hash", "!=", keepHash).execute(),

  failures: (q: Queryable, key: string) => q.selectFrom("login_failures").selectAll().where("key", "=", key).executeTakeFirst(),

  putFailures: (q: Queryable, row: { key: string; failures: number; window_start: number; locked_until: number | null }) =>
    q
      .insertInto("login_failures")
      .values(row)
      .onConflict((oc) => oc.column("key").doUpdateSet({ failures: row.failures, window_start: row.window_start, locked_until: row.locked_until }))
      .execute(),

  clearFailures: (q: Queryable, key: string) => q.deleteFrom("login_failures").where("key", "=", key).execute(),

  /** A new password ends every browser session of the user. */
  deleteSessionsOf: (q: Queryable, userId: string) => q.deleteFrom("account_sessions").where("user_id", "=", userId).execute(),

  insertReset: (q: Queryable, row: PasswordResetsTable) => q.insertInto("password_resets").values(row).execute(),

  resetByHash: (q: Queryable, hash: string) => q.selectFrom("password_resets").selectAll().where("token_hash", "=", hash).executeTakeFirst(),

  /** The user's newest reset request (one mail a minute at most). */
  latestReset: (q: Queryable, userId: string) =>
    q.selectFrom("password_resets").select("created_at").where("user_id", "=", userId).orderBy("created_at", "desc").limit(1).executeTakeFirst(),

  /** Spend a reset link, once; the user's other open links end with it. */
  useResets: async (q: Queryable, id: string, userId: string, now: number) => {
    const r = await q.updateTable("password_resets").set({ used_at: now }).where("id", "=", id).where("used_at", "is", null).executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return false;
    await q.updateTable("password_resets").set({ used_at: now }).where("user_id", "=", userId).where("used_at", "is", null).execute();
    return true;
  },
};
