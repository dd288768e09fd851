import type { Queryable } from "../store/db.js";
import type { RoomsTable } from "../store/schema.js";

export type RoomRow = RoomsTable;

/** Room SQL. Other areas reach rooms through RoomsService, never through this file. */
export const roomsRepo = {
  byId: (q: Queryable, projectId: string, id: string) =>
    q.selectFrom("rooms").selectAll().where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst(),
  byName: (q: Queryable, projectId: string, name: string) =>
    q.selectFrom("rooms").selectAll().where("project_id", "=", projectId).where("name", "=", name).executeTakeFirst(),
};
