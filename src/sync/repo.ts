import type { Queryable } from "../store/db.js";

/** Sync document SQL: the documents' schemas and the journal of acknowledged updates (src/sync). */
export const syncRepo = {
  document: (q: Queryable, roomId: string, path: string) =>
    q.selectFrom("sync_documents").selectAll().where("room_id", "=", roomId).where("path", "=", path).executeTakeFirst(),

  createDocument: (q: Queryable, row: { room_id: string; path: string; schema: string; created_at: number; updated_at: number }) =>
    q
      .insertInto("sync_documents")
      .values({ ...row, compacted_seq: 0 })
      .onConflict((oc) => oc.columns(["room_id", "path"]).doNothing())
      .execute(),

  /** Journal rows in one statement (the group commit of acknowledged updates). */
  append: (q: Queryable, rows: { room_id: string; path: string; seq: number; data: string }[]) =>
    rows.length ? q.insertInto("sync_updates").values(rows).execute() : Promise.resolve([]),

  journal: (q: Queryable, roomId: string, path: string, afterSeq: number) =>
    q
      .selectFrom("sync_updates")
      .select(["seq", "data"])
      .where("room_id", "=", roomId)
      .where("path", "=", path)
      .where("seq", ">", afterSeq)
      .orderBy("seq")
      .execute(),

  maxSeq: async (q: Queryable, roomId: string, path: string) => {
    const r = await q
      .selectFrom("sync_updates")
      .select((eb) => eb.fn.max("seq").as("m"))
      .where("room_id", "=", roomId)
      .where("path", "=", path)
      .executeTakeFirst();
    return Number(r?.m ?? 0);
  },

  /** The document's file now holds its journal up to `mark` (compacted_seq > 0: the document has a file). */
  compacted: (q: Queryable, roomId: string, path: string, mark: number, now: number) =>
    q.updateTable("sync_documents").set({ compacted_seq: mark, updated_at: now }).where("room_id", "=", roomId).where("path", "=", path).execute(),

  /** Drop the journal rows up to `seq` (their updates are in the document's file). */
  dropJournal: (q: Queryable, roomId: string, path: string, seq: number) =>
    q.deleteFrom("sync_updates").where("room_id", "=", roomId).where("path", "=", path).where("seq", "<=", seq).execute(),

  /** The file at the path was deleted or replaced outside the document: forget it. */
  forget: async (q: Queryable, roomId: string, path: string) => {
    await q.deleteFrom("sync_updates").where("room_id", "=", roomId).where("path", "=", path).execute();
    await q.deleteFrom("sync_documents").where("room_id", "=", roomId).where("path", "=", path).execute();
  },
};
