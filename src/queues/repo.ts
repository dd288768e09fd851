import type { Dialect, Queryable } from "../store/db.js";
import type { QueueMessagesTable, RoomQueuesTable } from "../store/schema.js";

export type QueueRow = RoomQueuesTable;
export type MessageRow = Omit<QueueMessagesTable, "seq"> & { seq: number };

/** Queue SQL. Other areas reach queues through QueuesService (ctx.queues), never through this file. */
export const queuesRepo = {
  queue: (q: Queryable, roomId: string, name: string) =>
    q.selectFrom("room_queues").selectAll().where("room_id", "=", roomId).where("name", "=", name).executeTakeFirst(),

  /** Create the queue when missing (idempotent, safe against a concurrent create in another process). */
  ensureQueue: (q: Queryable, row: QueueRow) =>
    q
      .insertInto("room_queues")
      .values(row)
      .onConflict((oc) => oc.columns(["room_id", "name"]).doNothing())
      .execute(),

  /** Insert a message into an existing queue (by room and name). Returns false when the queue does not exist. */
  insertMessage: async (q: Queryable, roomId: string, name: string, m: { id: string; body: string; now: number }) => {
    const r = await q
      .insertInto("queue_messages")
      .columns(["id", "queue_id", "body", "enqueued_at", "visible_at", "attempts"])
      .expression((eb) =>
        eb
          .selectFrom("room_queues")
          .select((e) => [
            // Casts: PostgreSQL types bare parameters in a select list as text.
            e.cast<string>(e.val(m.id), "text").as("id"),
            "room_queues.id as queue_id",
            e.cast<string>(e.val(m.body), "text").as("body"),
            e.cast<number>(e.val(m.now), "bigint").as("enqueued_at"),
            e.cast<number>(e.val(m.now), "bigint").as("visible_at"),
            e.cast<number>(e.val(0), "integer").as("attempts"),
          ])
          .where("room_id", "=", roomId)
          .where("name", "=", name),
      )
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  },

  /**
   * Claim the oldest visible message of a queue: one statement, so it is atomic on both dialects. On PostgreSQL the
   * inner SELECT takes the row with FOR UPDATE SKIP LOCKED, so concurrent receivers in several processes never
   * block on each other nor claim the same message.
   */
  claim: (q: Queryable, dialect: Dialect, roomId: string, name: string, now: number, visibleUntil: number, token: string) =>
    q
      .updateTable("queue_messages")
      .set((eb) => ({ visible_at: visibleUntil, claim_token: token, attempts: eb("attempts", "+", 1) }))
      .where("seq", "=", (eb) => {
        let sub = eb
          .selectFrom("queue_messages as m")
          .innerJoin("room_queues as rq", "rq.id", "m.queue_id")
          .select("m.seq")
          .where("rq.room_id", "=", roomId)
          .where("rq.name", "=", name)
          .where("m.visible_at", "<=", now)
          .orderBy("m.seq")
          .limit(1);
        if (dialect === "postgres") sub = sub.forUpdate("m").skipLocked();
        return sub;
      })
      .returningAll()
      .executeTakeFirst() as Promise<MessageRow | undefined>,

  ack: async (q: Queryable, id: string, token: string) => {
    const r = await q.deleteFrom("queue_messages").where("id", "=", id).where("claim_token", "=", token).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  release: async (q: Queryable, id: string, token: string, visibleAt: number) => {
    const r = await q
      .updateTable("queue_messages")
      .set({ visible_at: visibleAt, claim_token: null })
      .where("id", "=", id)
      .where("claim_token", "=", token)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },

  /** Every queue of a room with its depth (messages not yet acknowledged) and how many of them are claimable now. */
  list: (q: Queryable, roomId: string, now: number) =>
    q
      .selectFrom("room_queues")
      .leftJoin("queue_messages", "queue_messages.queue_id", "room_queues.id")
      .select((eb) => [
        "room_queues.name",
        "room_queues.created_at",
        eb.fn.count<number>("queue_messages.seq").as("size"),
        eb.fn
          .sum<number>(eb.case().when("queue_messages.visible_at", "<=", now).then(1).else(0).end())
          .as("ready"),
      ])
      .where("room_queues.room_id", "=", roomId)
      .groupBy(["room_queues.id", "room_queues.name", "room_queues.created_at"])
      .orderBy("room_queues.name")
      .execute(),

  /** The earliest time a claimed message of the queue becomes visible again (for long polls). */
  nextVisibleAt: async (q: Queryable, queueId: string) => {
    const r = await q
      .selectFrom("queue_messages")
      .select((eb) => eb.fn.min<number>("visible_at").as("t"))
      .where("queue_id", "=", queueId)
      .executeTakeFirst();
    return r?.t == null ? null : Number(r.t);
  },

  drain: async (q: Queryable, queueId: string) => {
    const r = await q.deleteFrom("queue_messages").where("queue_id", "=", queueId).executeTakeFirst();
    return Number(r.numDeletedRows);
  },

  /** Deletes the queue; its messages go with it (ON DELETE CASCADE). */
  deleteQueue: async (q: Queryable, queueId: string) => {
    const r = await q.deleteFrom("room_queues").where("id", "=", queueId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  /** Messages of a queue in order, without claiming them (for inspection and tests). */
  peek: (q: Queryable, queueId: string, limit: number) =>
    q.selectFrom("queue_messages").selectAll().where("queue_id", "=", queueId).orderBy("seq").limit(limit).execute() as Promise<MessageRow[]>,
};
