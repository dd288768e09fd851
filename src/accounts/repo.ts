import type { Queryable } from "../store/db.js";
import type { InvitationsTable } from "../store/schema.js";

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
