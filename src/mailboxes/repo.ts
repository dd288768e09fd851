import { sql } from "kysely";
import type { Queryable } from "../store/db.js";
import type { MailboxesTable } from "../store/schema.js";
import { likePattern } from "../core/paging.js";

export type MailboxRow = MailboxesTable;
export type MailboxWithRoom = MailboxRow & { room_name: string };

const withRoom = (q: Queryable) =>
  q.selectFrom("mailboxes").innerJoin("rooms", "rooms.id", "mailboxes.room_id").selectAll("mailboxes").select("rooms.name as room_name");

/** Mailbox SQL. Other areas reach mailboxes through MailboxesService. */
export const mailboxesRepo = {
  insert: (q: Queryable, row: MailboxRow) => q.insertInto("mailboxes").values(row).execute(),

  /** By address, server-wide (addresses are unique across projects); case-insensitive. */
  byAddress: (q: Queryable, addressLower: string) =>
    withRoom(q).where("mailboxes.address_lower", "=", addressLower).executeTakeFirst() as Promise<MailboxWithRoom | undefined>,

  inProject: (q: Queryable, projectId: string, addressLower: string) =>
    withRoom(q).where("mailboxes.project_id", "=", projectId).where("mailboxes.address_lower", "=", addressLower).executeTakeFirst() as Promise<
      MailboxWithRoom | undefined
    >,

  update: (q: Queryable, id: string, patch: Partial<MailboxRow>) => q.updateTable("mailboxes").set(patch).where("id", "=", id).execute(),

  delete: async (q: Queryable, id: string) => {
    const r = await q.deleteFrom("mailboxes").where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },

  /** One page of a project's (or one room's) mailboxes by address; `filter` matches address, room or queue. */
  page: async (q: Queryable, projectId: string, opts: { roomId?: string; limit: number; offset: number; filter?: string }) => {
    let base = q.selectFrom("mailboxes").innerJoin("rooms", "rooms.id", "mailboxes.room_id").where("mailboxes.project_id", "=", projectId);
    if (opts.roomId) base = base.where("mailboxes.room_id", "=", opts.roomId);
    if (opts.filter) {
      const pat = sql<string>`${likePattern(opts.filter)} ESCAPE '\\'`;
      base = base.where((eb) =>
        eb.or([eb("mailboxes.address_lower", "like", pat), eb(sql`lower(rooms.name)`, "like", pat), eb(sql`lower(mailboxes.queue)`, "like", pat)]),
      );
    }
    const [rows, count] = await Promise.all([
      base
        .selectAll("mailboxes")
        .select("rooms.name as room_name")
        .orderBy("mailboxes.address_lower")
        .limit(opts.limit)
        .offset(opts.offset)
        .execute() as Promise<MailboxWithRoom[]>,
      base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow(),
    ]);
    return { rows, total: Number(count.n) };
  },
};
