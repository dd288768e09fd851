import { sql } from "kysely";
import type { Queryable } from "../store/db.js";
import type { MembershipsTable, ProjectsTable } from "../store/schema.js";
import { likePattern } from "../core/paging.js";
import { prepared } from "../store/prepared.js";

/** Every user request resolves its membership: compiled once (see store/prepared.ts). */
const membershipWithOwnerQ = prepared((q, projectId: string, userId: string) =>
  q
    .selectFrom("memberships")
    .innerJoin("projects", "projects.id", "memberships.project_id")
    .select(["memberships.is_admin", "memberships.is_developer", "memberships.can_create_rooms", "memberships.can_use_llm_proxy", "projects.owner_user_id"])
    .where("memberships.project_id", "=", projectId)
    .where("memberships.user_id", "=", userId),
);

export type ProjectRow = ProjectsTable;
export type MembershipRow = MembershipsTable;

export const projectsRepo = {
  byId: (q: Queryable, id: string) => q.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst(),
  insert: (q: Queryable, row: ProjectRow) => q.insertInto("projects").values(row).execute(),
  update: (q: Queryable, id: string, patch: Partial<ProjectRow>) => q.updateTable("projects").set(patch).where("id", "=", id).execute(),
  byNameForOwner: (q: Queryable, ownerId: string, name: string) =>
    q.selectFrom("projects").selectAll().where("owner_user_id", "=", ownerId).where("name", "=", name).orderBy("created_at").executeTakeFirst(),
  listForUser: (q: Queryable, userId: string) =>
    q
      .selectFrom("projects")
      .innerJoin("memberships", "memberships.project_id", "projects.id")
      .selectAll("projects")
      .where("memberships.user_id", "=", userId)
      .orderBy("projects.created_at")
      .orderBy("projects.id")
      .execute(),
  membership: (q: Queryable, projectId: string, userId: string) =>
    q.selectFrom("memberships").selectAll().where("project_id", "=", projectId).where("user_id", "=", userId).executeTakeFirst(),
  membershipWithOwner: async (q: Queryable, projectId: string, userId: string) => (await membershipWithOwnerQ(q, projectId, userId))[0],
  insertMembership: (q: Queryable, row: MembershipRow) => q.insertInto("memberships").values(row).execute(),
  /** Insert unless the user is already a member; true when a row was added. */
  insertMembershipIfAbsent: async (q: Queryable, row: MembershipRow) => {
    const r = await q
      .insertInto("memberships")
      .values(row)
      .onConflict((oc) => oc.columns(["project_id", "user_id"]).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  },
  updateMembership: (q: Queryable, projectId: string, userId: string, patch: Partial<MembershipRow>) =>
    q.updateTable("memberships").set(patch).where("project_id", "=", projectId).where("user_id", "=", userId).executeTakeFirst(),
  deleteMembership: async (q: Queryable, projectId: string, userId: string) => {
    const r = await q.deleteFrom("memberships").where("project_id", "=", projectId).where("user_id", "=", userId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
  /** One page of a project's members with their profiles; `filter` matches email or names, case-insensitively. */
  membersPage: async (q: Queryable, projectId: string, opts: { limit: number; offset: number; filter?: string }) => {
    let base = q.selectFrom("memberships").innerJoin("users", "users.id", "memberships.user_id").where("memberships.project_id", "=", projectId);
    if (opts.filter) {
      const pat = likePattern(opts.filter);
      base = base.where((eb) =>
        eb.or([
          eb("users.email_lower", "like", sql<string>`${pat} ESCAPE '\\'`),
          eb(sql`lower(coalesce(users.first_name, '') || ' ' || coalesce(users.last_name, ''))`, "like", sql<string>`${pat} ESCAPE '\\'`),
        ]),
      );
    }
    const [rows, count] = await Promise.all([
      base
        .select([
          "users.id",
          "users.email",
          "users.first_name",
          "users.last_name",
          "users.invited",
          "memberships.is_admin",
          "memberships.is_developer",
          "memberships.can_create_rooms",
          "memberships.can_use_llm_proxy",
          "memberships.created_at",
        ])
        .orderBy("users.email_lower")
        .limit(opts.limit)
        .offset(opts.offset)
        .execute(),
      base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  },
};
