import { sql } from "kysely";
import type { Dialect, Queryable } from "../store/db.js";
import { prepared } from "../store/prepared.js";
import type { QueueMessagesTable, RoomQueuesTable } from "../store/schema.js";

export type QueueRow = RoomQueuesTable;
export type MessageRow = Omit<QueueMessagesTable, "seq"> & { seq: number };

// The hot statements (send, claim, acknowledge) are compiled once (store/prepared.ts).
const insertMessageQ = prepared((q, id: string, body: string, now: number, roomId: string, name: string) =>
  q
    .insertInto("queue_messages")
    .columns(["id", "queue_id", "body", "enqueued_at", "visible_at", "attempts"])
    .expression((eb) =>
      eb
        .selectFrom("room_queues")
        .select((e) => [
          // Casts: PostgreSQL types bare parameters in a select list as text.
          e.cast<string>(e.val(id), "text").as("id"),
          "room_queues.id as queue_id",
          e.cast<string>(e.val(body), "text").as("body"),
          e.cast<number>(e.val(now), "bigint").as("enqueued_at"),
          sql<number>`0`.as("visible_at"), // visible at once, in seq order (see claim)
          sql<number>`0`.as("attempts"),
        ])
        .where("room_id", "=", roomId)
        .where("name", "=", name),
    )
    .returning("queue_messages.seq"),
);

/**
 * PostgreSQL: claim up to `n` messages in one statement; each gets its own receipt, `token.seq`. The rows come back
 * with their visible_at before the claim (`was`), for the delivery order.
 */
const claimManyPgQ = prepared((q, visibleUntil: number, token: string, roomId: string, name: string, now: number, n: number) =>
  q
    .updateTable("queue_messages")
    .from((eb) =>
      eb
        .selectFrom("queue_messages as m")
        .select(["m.seq", "m.visible_at as was"])
        .where("m.queue_id", "=", (e) => e.selectFrom("room_queues").select("id").where("room_id", "=", roomId).where("name", "=", name))
        .where("m.visible_at", "<=", now)
        .orderBy("m.visible_at")
        .orderBy("m.seq")
        .limit(n)
        .forUpdate()
        .skipLocked()
        .as("c"),
    )
    .set({
      visible_at: visibleUntil,
      claim_token: sql<string>`CAST(${token} AS TEXT) || '.' || CAST(queue_messages.seq AS TEXT)`,
      attempts: sql<number>`queue_messages.attempts + 1`,
    })
    .whereRef("queue_messages.seq", "=", "c.seq")
    .returningAll("queue_messages")
    .returning("c.was"),
);

/** SQLite's half of claimMany: the next visible messages, then each claimed by its rowid (see claimMany). */
const readySeqsQ = prepared((q, roomId: string, name: string, now: number, n: number) =>
  q
    .selectFrom("queue_messages as m")
    .select("m.seq")
    .where("m.queue_id", "=", (e) => e.selectFrom("room_queues").select("id").where("room_id", "=", roomId).where("name", "=", name))
    .where("m.visible_at", "<=", now)
    .orderBy("m.visible_at")
    .orderBy("m.seq")
    .limit(n),
);
const claimSeqQ = prepared((q, visibleUntil: number, token: string, seq: number, now: number) =>
  q
    .updateTable("queue_messages")
    .set({ visible_at: visibleUntil, claim_token: token, attempts: sql<number>`attempts + 1` })
    .where("seq", "=", seq)
    .where("visible_at", "<=", now) // still ready: outside a transaction another claim may have come between
    .returningAll(),
);
const insertRowQ = prepared((q, id: string, queueId: string, body: string, now: number) =>
  q.insertInto("queue_messages").values({ id, queue_id: queueId, body, enqueued_at: now, visible_at: sql<number>`0`, attempts: sql<number>`0` }),
);

const ackQ = prepared((q, id: string, token: string) => q.deleteFrom("queue_messages").where("id", "=", id).where("claim_token", "=", token).returning("seq"));
/** Receipts are `token.seq`: the row is found by its primary key instead of through the id index. */
const ackSeqQ = prepared((q, seq: number, id: string, token: string) =>
  q.deleteFrom("queue_messages").where("seq", "=", seq).where("id", "=", id).where("claim_token", "=", token).returning("seq"),
);
export const seqOf = (receipt: string): number | null => {
  const m = /\.(\d{1,15})$/.exec(receipt);
  return m ? Number(m[1]) : null;
};

const ensureQueueQ = prepared((q, id: string, roomId: string, name: string, createdAt: number) =>
  q
    .insertInto("room_queues")
    .values({ id, room_id: roomId, name, created_at: createdAt })
    .onConflict((oc) => oc.columns(["room_id", "name"]).doNothing()),
);

/**
 * The hot statements as SQL text with their argument slots, for the SQLite queue writer's worker thread (its own
 * connection; see sqlite-thread.ts). Arguments, in order:
 *   insert(id, body, now, roomId, name) → [{seq}] when the queue exists; ensureQueue(id, roomId, name, createdAt);
 *   readySeqs(roomId, name, now, n) → [{seq}]; claimSeq(visibleUntil, receipt, seq, now) → [row];
 *   ackSeq(seq, id, receipt) → [{seq}] (seq from the receipt, see seqOf); ack(id, receipt) → [{seq}].
 */
export function queueThreadStatements(q: Queryable) {
  return {
    insert: insertMessageQ.statement(q, 5),
    ensureQueue: ensureQueueQ.statement(q, 4),
    readySeqs: readySeqsQ.statement(q, 4),
    claimSeq: claimSeqQ.statement(q, 4),
    ackSeq: ackSeqQ.statement(q, 3),
    ack: ackQ.statement(q, 2),
  };
}

/** Queue SQL. Other areas reach queues through QueuesService (ctx.queues), never through this file. */
export const queuesRepo = {
  queue: (q: Queryable, roomId: string, name: string) =>
    q.selectFrom("room_queues").selectAll().where("room_id", "=", roomId).where("name", "=", name).executeTakeFirst(),

  /** Create the queue when missing (idempotent, safe against a concurrent create in another process). */
  ensureQueue: (q: Queryable, row: QueueRow) => ensureQueueQ(q, row.id, row.room_id, row.name, row.created_at),

  /** Insert a message into an existing queue (by room and name). Returns false when the queue does not exist. */
  insertMessage: async (q: Queryable, roomId: string, name: string, m: { id: string; body: string; now: number }) =>
    (await insertMessageQ(q, m.id, m.body, m.now, roomId, name)).length > 0,

  /**
   * Claim up to `n` of the next visible messages of a queue, in delivery order; each gets its own receipt,
   * `token.seq`. Order: (visible_at, seq). New messages are enqueued with visible_at 0, so they go strictly by seq
   * (FIFO); a message whose claim ran out (or that was released) has visible_at = the moment it became visible
   * again, so it comes after the backlog of never-claimed messages. Both are a range of the (queue_id, visible_at,
   * seq) index, however deep the queue or however many messages are in flight.
   * PostgreSQL: one UPDATE of the rows taken FOR UPDATE SKIP LOCKED, so receivers in several processes neither block
   * nor double-claim. SQLite: the ready seqs, then one UPDATE by rowid each (SQLite runs an UPDATE whose subquery
   * reads the same table several times slower; each UPDATE re-checks visible_at, so outside a transaction a claim
   * that came between is not taken twice).
   */
  claimMany: async (q: Queryable, dialect: Dialect, roomId: string, name: string, now: number, visibleUntil: number, token: string, n: number) => {
    if (dialect === "postgres") {
      // RETURNING has no order; the claimed rows were all visible, so (old visible_at, seq) is the delivery order
      const rows = (await claimManyPgQ(q, visibleUntil, token, roomId, name, now, n)) as (MessageRow & { was: number })[];
      return rows.sort((a, b) => Number(a.was) - Number(b.was) || Number(a.seq) - Number(b.seq)) as MessageRow[];
    }
    const out: MessageRow[] = [];
    for (const { seq } of await readySeqsQ(q, roomId, name, now, n))
      out.push(...((await claimSeqQ(q, visibleUntil, `${token}.${seq}`, seq, now)) as MessageRow[]));
    return out;
  },

  ack: async (q: Queryable, id: string, token: string) => {
    const seq = seqOf(token);
    return (await (seq === null ? ackQ(q, id, token) : ackSeqQ(q, seq, id, token))).length > 0;
  },

  /**
   * Acknowledge many claims: deletes the rows whose id and current receipt are both in the lists, and returns
   * them. Receipts are unique per claim, so a row can only match through its own (id, receipt) pair.
   */
  ackMany: async (q: Queryable, dialect: Dialect, ids: string[], tokens: string[]) => {
    const out: { id: string; claim_token: string | null }[] = [];
    if (dialect === "sqlite") {
      // in-process: a cached one-row statement per message beats building a statement with hundreds of values
      for (let i = 0; i < ids.length; i++) if (await queuesRepo.ack(q, ids[i], tokens[i])) out.push({ id: ids[i], claim_token: tokens[i] });
      return out;
    }
    for (let i = 0; i < ids.length; i += 500)
      out.push(
        ...(await q
          .deleteFrom("queue_messages")
          .where("id", "in", ids.slice(i, i + 500))
          .where("claim_token", "in", tokens.slice(i, i + 500))
          .returning(["id", "claim_token"])
          .execute()),
      );
    return out;
  },

  /** Undo a claim whose message was never handed out (claim-ahead): visible at once, at the head, attempt not counted. */
  unclaim: async (q: Queryable, id: string, token: string) => {
    const r = await q
      .updateTable("queue_messages")
      .set({ visible_at: 0, claim_token: null, attempts: sql<number>`attempts - 1` })
      .where("id", "=", id)
      .where("claim_token", "=", token)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
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
        eb.fn.sum<number>(eb.case().when("queue_messages.visible_at", "<=", now).then(1).else(0).end()).as("ready"),
      ])
      .where("room_queues.room_id", "=", roomId)
      .groupBy(["room_queues.id", "room_queues.name", "room_queues.created_at"])
      .orderBy("room_queues.name")
      .execute(),

  drain: async (q: Queryable, queueId: string) => {
    const r = await q.deleteFrom("queue_messages").where("queue_id", "=", queueId).executeTakeFirst();
    return Number(r.numDeletedRows);
  },

  /** Deletes the queue; its messages go with it (ON DELETE CASCADE). */
  deleteQueue: async (q: Queryable, queueId: string) => {
    const r = await q.deleteFrom("room_queues").where("id", "=", queueId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  /** Messages of a queue in delivery order, without claiming them (for inspection and tests). */
  /** Queue rows of the given rooms and names (callers match the exact pairs). */
  queuesOf: (q: Queryable, roomIds: string[], names: string[]) =>
    q.selectFrom("room_queues").select(["id", "room_id", "name"]).where("room_id", "in", roomIds).where("name", "in", names).execute(),

  /** Create the queues that are missing, in one statement. */
  ensureQueues: (q: Queryable, rows: QueueRow[]) =>
    q
      .insertInto("room_queues")
      .values(rows)
      .onConflict((oc) => oc.columns(["room_id", "name"]).doNothing())
      .execute(),

  /** Insert ready messages in bulk (chunks keep SQLite under its bound-parameter limit). Same columns as insertMessage. */
  insertMessages: async (q: Queryable, rows: { id: string; queue_id: string; body: string; now: number }[], dialect: Dialect = "postgres") => {
    if (dialect === "sqlite") {
      // in-process: a cached one-row statement per message beats building a statement with hundreds of values
      for (const m of rows) await insertRowQ(q, m.id, m.queue_id, m.body, m.now);
      return;
    }
    for (let i = 0; i < rows.length; i += 1000)
      await q
        .insertInto("queue_messages")
        .values(rows.slice(i, i + 1000).map((m) => ({ id: m.id, queue_id: m.queue_id, body: m.body, enqueued_at: m.now, visible_at: 0, attempts: 0 })))
        .execute();
  },

  /** Messages of a queue in order, without claiming them (for inspection and tests). */
  peek: (q: Queryable, queueId: string, limit: number) =>
    q.selectFrom("queue_messages").selectAll().where("queue_id", "=", queueId).orderBy("visible_at").orderBy("seq").limit(limit).execute() as Promise<
      MessageRow[]
    >,
};
