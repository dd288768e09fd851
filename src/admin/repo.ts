import { sql } from "kysely";
import { likePattern } from "../core/paging.js";
import type { Queryable } from "../store/db.js";
import type { UsersTable } from "../store/schema.js";

/** Server-administration SQL (src/admin): users across the instance, instance-wide settings. */
export const adminRepo = {
  /** One page of every user, oldest first; `filter` matches email or names, case-insensitively. */
  usersPage: async (q: Queryable, opts: { limit: number; offset: number; filter?: string }) => {
    let base = q.selectFrom("users");
    if (opts.filter) {
      const pat = likePattern(opts.filter);
      base = base.where((eb) =>
        eb.or([
          eb("email_lower", "like", sql<string>`${pat} ESCAPE '\\'`),
          eb(sql`lower(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))`, "like", sql<string>`${pat} ESCAPE '\\'`),
        ]),
      );
    }
    const [rows, count] = await Promise.all([
      base.selectAll().orderBy("created_at").orderBy("id").limit(opts.limit).offset(opts.offset).execute(),
      base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  },

  user: (q: Queryable, id: string) => q.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst(),

  setUser: (q: Queryable, id: string, set: Partial<Pick<UsersTable, "is_server_admin" | "disabled_at">>) =>
    q.updateTable("users").set(set).where("id", "=", id).execute(),

  /** Server administrators whose accounts are enabled. */
  activeAdmins: async (q: Queryable) => {
    const r = await q
      .selectFrom("users")
      .where("is_server_admin", "=", 1)
      .where("disabled_at", "is", null)
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  },

  setting: (q: Queryable, key: string) => q.selectFrom("server_settings").selectAll().where("key", "=", key).executeTakeFirst(),

  putSetting: (q: Queryable, key: string, value: string, now: number) =>
    q
      .insertInto("server_settings")
      .values({ key, value, updated_at: now })
      .onConflict((oc) => oc.column("key").doUpdateSet({ value, updated_at: now }))
      .execute(),
};
