import { sql } from "kysely";
import type { Queryable } from "../store/db.js";
import type { RoomsTable } from "../store/schema.js";
import { likePattern } from "../core/paging.js";
import { prepared } from "../store/prepared.js";

export type RoomRow = RoomsTable;
export type RoomOrder = "room_name" | "created_at";

export interface RoomListQuery {
  limit: number;
  offset: number;
  order: RoomOrder;
  /** Lowercase substring of the name. */
  filter?: string;
  /** Only rooms this user holds a grant on (members see their rooms only). */
  grantedTo?: string;
  /** Only the room of this name (a participant token sees its own room). */
  onlyName?: string;
}

const byIdQ = prepared((q, projectId: string, id: string) => q.selectFrom("rooms").selectAll().where("project_id", "=", projectId).where("id", "=", id));
const byNameQ = prepared((q, projectId: string, name: string) =>
  q.selectFrom("rooms").selectAll().where("project_id", "=", projectId).where("name", "=", name),
);

/** Room SQL. Other areas reach rooms through RoomsService, never through this file. */
export const roomsRepo = {
  byId: async (q: Queryable, projectId: string, id: string): Promise<RoomRow | undefined> => (await byIdQ(q, projectId, id))[0],
  byName: async (q: Queryable, projectId: string, name: string): Promise<RoomRow | undefined> => (await byNameQ(q, projectId, name))[0],
  /** The project of a room, by the room's id alone (server-wide). */
  projectOf: async (q: Queryable, id: string): Promise<string | undefined> =>
    (await q.selectFrom("rooms").select("project_id").where("id", "=", id).executeTakeFirst())?.project_id,
  insert: (q: Queryable, row: RoomRow) => q.insertInto("rooms").values(row).execute(),
  update: (q: Queryable, id: string, patch: Partial<RoomRow>) => q.updateTable("rooms").set(patch).where("id", "=", id).execute(),
  delete: async (q: Queryable, id: string) => {
    const r = await q.deleteFrom("rooms").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  /** Keep the per-project room counter in step with inserts and deletes (same transaction). */
  bumpCount: (q: Queryable, projectId: string, delta: number) =>
    q
      .insertInto("room_counts")
      .values({ project_id: projectId, count: Math.max(delta, 0) })
      .onConflict((oc) => oc.column("project_id").doUpdateSet({ count: sql<number>`room_counts.count + ${delta}` }))
      .execute(),
  count: async (q: Queryable, projectId: string) => {
    const r = await q.selectFrom("room_counts").select("count").where("project_id", "=", projectId).executeTakeFirst();
    return r ? Number(r.count) : 0;
  },

  /**
   * Insert many rooms in the caller's transaction (chunked to stay under bind-parameter limits) and bump the
   * counter once. Used by bulk loaders (tests, benchmarks, imports).
   */
  insertMany: async (q: Queryable, projectId: string, rows: RoomRow[]) => {
    const CHUNK = 500;
    for (let i = 0; i < rows.length; i += CHUNK)
      await q
        .insertInto("rooms")
        .values(rows.slice(i, i + CHUNK))
        .execute();
    if (rows.length) await roomsRepo.bumpCount(q, projectId, rows.length);
  },

  /**
   * One page. The page's ids come from an index-only scan of (project_id, name, id) or (project_id, created_at, id)
   * (a "deferred join"), so a deep offset skips index entries, not table rows; then only the page's rows are read.
   */
  page: async (q: Queryable, projectId: string, o: RoomListQuery): Promise<RoomRow[]> => {
    let ids = q.selectFrom("rooms").select("rooms.id").where("rooms.project_id", "=", projectId);
    if (o.filter) ids = ids.where("rooms.name", "like", sql<string>`${likePattern(o.filter)} ESCAPE '\\'`);
    if (o.onlyName !== undefined) ids = ids.where("rooms.name", "=", o.onlyName);
    if (o.grantedTo) ids = ids.innerJoin("room_grants", (j) => j.onRef("room_grants.room_id", "=", "rooms.id").on("room_grants.user_id", "=", o.grantedTo!));
    ids = o.order === "room_name" ? ids.orderBy("rooms.name") : ids.orderBy("rooms.created_at").orderBy("rooms.id");
    const keys = ids.limit(o.limit).offset(o.offset).as("k");
    let rows = q.selectFrom(keys).innerJoin("rooms as r", "r.id", "k.id").selectAll("r");
    rows = o.order === "room_name" ? rows.orderBy("r.name") : rows.orderBy("r.created_at").orderBy("r.id");
    return rows.execute();
  },

  /** Rows matching a filtered list (the unfiltered total comes from room_counts instead). */
  countMatching: async (q: Queryable, projectId: string, o: RoomListQuery) => {
    let c = q.selectFrom("rooms").where("rooms.project_id", "=", projectId);
    if (o.filter) c = c.where("rooms.name", "like", sql<string>`${likePattern(o.filter)} ESCAPE '\\'`);
    if (o.onlyName !== undefined) c = c.where("rooms.name", "=", o.onlyName);
    if (o.grantedTo) c = c.innerJoin("room_grants", (j) => j.onRef("room_grants.room_id", "=", "rooms.id").on("room_grants.user_id", "=", o.grantedTo!));
    const r = await c.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    return Number(r.n);
  },
};
