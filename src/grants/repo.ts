import { sql, type ExpressionBuilder } from "kysely";
import type { Queryable } from "../store/db.js";
import type { Database, RoomGrantsTable } from "../store/schema.js";
import { likePattern } from "../core/paging.js";
import { prepared } from "../store/prepared.js";

export type GrantRow = RoomGrantsTable;
export type GrantOrder = "room_name" | "created_at";

export interface GrantListQuery {
  limit: number;
  offset: number;
  order: GrantOrder;
  userId?: string;
  roomId?: string;
  /** Lowercase substring of the room name. */
  filter?: string;
}

const ROOM_COLS = ["rooms.id", "rooms.project_id", "rooms.name", "rooms.metadata", "rooms.annotations", "rooms.created_at", "rooms.updated_at"] as const;
const like = (s: string) => sql<string>`${likePattern(s)} ESCAPE '\\'`;

const byKeyQ = prepared((q, roomId: string, userId: string) =>
  q.selectFrom("room_grants").selectAll().where("room_id", "=", roomId).where("user_id", "=", userId),
);
const connectLookupQ = prepared((q, projectId: string, roomName: string, userId: string) =>
  q
    .selectFrom("rooms")
    .leftJoin("room_grants", (j) => j.onRef("room_grants.room_id", "=", "rooms.id").on("room_grants.user_id", "=", userId))
    .leftJoin("users", (j) => j.on("users.id", "=", userId))
    .select([...ROOM_COLS, "room_grants.permissions", "users.email"])
    .where("rooms.project_id", "=", projectId)
    .where("rooms.name", "=", roomName),
);

/** Room-grant SQL. Grants are keyed on (room_id, user_id); project_id is kept for project-wide listing. */
export const grantsRepo = {
  byKey: async (q: Queryable, roomId: string, userId: string): Promise<GrantRow | undefined> => (await byKeyQ(q, roomId, userId))[0],
  insert: (q: Queryable, row: GrantRow) => q.insertInto("room_grants").values(row).execute(),
  updatePermissions: async (q: Queryable, roomId: string, userId: string, permissions: string, now: number) => {
    const r = await q
      .updateTable("room_grants")
      .set({ permissions, updated_at: now })
      .where("room_id", "=", roomId)
      .where("user_id", "=", userId)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  delete: async (q: Queryable, roomId: string, userId: string) => {
    const r = await q.deleteFrom("room_grants").where("room_id", "=", roomId).where("user_id", "=", userId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
  /** Remove the grants a user held in a project (with the membership); returns which rooms they were on. */
  deleteForUser: async (q: Queryable, projectId: string, userId: string) => {
    const rooms = await q
      .selectFrom("room_grants")
      .innerJoin("rooms", "rooms.id", "room_grants.room_id")
      .select(["room_grants.room_id", "rooms.name as room_name"])
      .where("room_grants.project_id", "=", projectId)
      .where("room_grants.user_id", "=", userId)
      .execute();
    if (rooms.length) await q.deleteFrom("room_grants").where("project_id", "=", projectId).where("user_id", "=", userId).execute();
    return rooms;
  },

  /** A page of grants, each with its room. */
  page: (q: Queryable, projectId: string, o: GrantListQuery) => {
    let b = q
      .selectFrom("room_grants")
      .innerJoin("rooms", "rooms.id", "room_grants.room_id")
      .select([...ROOM_COLS, "room_grants.user_id", "room_grants.permissions", "room_grants.created_at as granted_at"])
      .where("room_grants.project_id", "=", projectId);
    if (o.userId) b = b.where("room_grants.user_id", "=", o.userId);
    if (o.roomId) b = b.where("room_grants.room_id", "=", o.roomId);
    if (o.filter) b = b.where("rooms.name", "like", like(o.filter));
    b =
      o.order === "room_name"
        ? b.orderBy("rooms.name").orderBy("room_grants.user_id")
        : b.orderBy("room_grants.created_at").orderBy("room_grants.room_id").orderBy("room_grants.user_id");
    return b.limit(o.limit).offset(o.offset).execute();
  },
  count: async (q: Queryable, projectId: string, o: Omit<GrantListQuery, "limit" | "offset" | "order">) => {
    let b = q.selectFrom("room_grants").where("room_grants.project_id", "=", projectId);
    if (o.userId) b = b.where("room_grants.user_id", "=", o.userId);
    if (o.roomId) b = b.where("room_grants.room_id", "=", o.roomId);
    if (o.filter) b = b.innerJoin("rooms", "rooms.id", "room_grants.room_id").where("rooms.name", "like", like(o.filter));
    const r = await b.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    return Number(r.n);
  },

  /** Rooms that have at least one grant, with their grant counts, by room name. */
  roomsWithGrants: (q: Queryable, projectId: string, limit: number, offset: number) =>
    q
      .selectFrom("rooms")
      .innerJoin(
        (eb) =>
          eb
            .selectFrom("room_grants")
            .select(["room_id", (e) => e.fn.countAll<number>().as("n")])
            .where("project_id", "=", projectId)
            .groupBy("room_id")
            .as("g"),
        (j) => j.onRef("g.room_id", "=", "rooms.id"),
      )
      .select([...ROOM_COLS, "g.n"])
      .orderBy("rooms.name")
      .limit(limit)
      .offset(offset)
      .execute(),
  countRoomsWithGrants: async (q: Queryable, projectId: string) => {
    const r = await q
      .selectFrom("room_grants")
      .where("project_id", "=", projectId)
      .select((eb) => eb.fn.count<number>("room_id").distinct().as("n"))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  },

  /** Users holding at least one grant, with counts and profiles, by email; `filter` matches email or names. */
  usersWithGrants: (q: Queryable, projectId: string, o: { limit: number; offset: number; filter?: string }) => {
    let b = q
      .selectFrom("users")
      .innerJoin(
        (eb) =>
          eb
            .selectFrom("room_grants")
            .select(["user_id", (e) => e.fn.countAll<number>().as("n")])
            .where("project_id", "=", projectId)
            .groupBy("user_id")
            .as("g"),
        (j) => j.onRef("g.user_id", "=", "users.id"),
      )
      .select(["users.id", "users.email", "users.first_name", "users.last_name", "g.n"]);
    if (o.filter) b = b.where(usersFilter(o.filter));
    return b.orderBy("users.email_lower").orderBy("users.id").limit(o.limit).offset(o.offset).execute();
  },
  countUsersWithGrants: async (q: Queryable, projectId: string, filter?: string) => {
    let b = q
      .selectFrom("users")
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom("room_grants")
            .select("room_grants.user_id")
            .where("room_grants.project_id", "=", projectId)
            .whereRef("room_grants.user_id", "=", "users.id"),
        ),
      );
    if (filter) b = b.where(usersFilter(filter));
    const r = await b.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    return Number(r.n);
  },

  /** The connect_room lookup in one round trip: the room by name, the user's grant on it (if any), their email. */
  connectLookup: async (q: Queryable, projectId: string, roomName: string, userId: string) => (await connectLookupQ(q, projectId, roomName, userId))[0],
};

function usersFilter(filter: string) {
  const pat = likePattern(filter);
  return (eb: ExpressionBuilder<Database, "users">) =>
    eb.or([
      eb("users.email_lower", "like", sql<string>`${pat} ESCAPE '\\'`),
      eb(sql`lower(coalesce(users.first_name, '') || ' ' || coalesce(users.last_name, ''))`, "like", sql<string>`${pat} ESCAPE '\\'`),
    ]);
}
