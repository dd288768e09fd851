import { sql, type RawBuilder } from "kysely";
import type { Queryable } from "../store/db.js";
import type { MasterKeysTable } from "../store/schema.js";

export type MasterKeyRow = MasterKeysTable;

/** The rotations, oldest first: the chain a server follows from its configured key to the current one. */
export const masterKeysRepo = {
  all: (q: Queryable) => q.selectFrom("master_keys").selectAll().orderBy("started_at", "asc").orderBy("id", "asc").execute(),
  byId: (q: Queryable, id: string) => q.selectFrom("master_keys").selectAll().where("id", "=", id).executeTakeFirst(),
  /** The rotation still running, if any (at most one: the unique index on `unfinished`). */
  unfinished: (q: Queryable) => q.selectFrom("master_keys").selectAll().where("unfinished", "=", 1).executeTakeFirst(),
  insert: (q: Queryable, row: MasterKeyRow) => q.insertInto("master_keys").values(row).execute(),
  progress: (q: Queryable, id: string, progress: string, resealed: number, now: number) =>
    q
      .updateTable("master_keys")
      .set((eb) => ({ progress, resealed: eb("resealed", "+", resealed), updated_at: now }))
      .where("id", "=", id)
      .execute(),
  finish: (q: Queryable, id: string, progress: string, now: number) =>
    q
      .updateTable("master_keys")
      .set({ state: "done", unfinished: null, progress, finished_at: now, updated_at: now })
      .where("id", "=", id)
      .where("state", "=", "rotating")
      .execute(),
  /** Every finished rotation forgets its wrapped keys: from now on only the newest key opens anything. */
  retire: (q: Queryable, now: number) =>
    q.updateTable("master_keys").set({ state: "retired", new_sealed: null, old_sealed: null, updated_at: now }).where("state", "=", "done").executeTakeFirst(),
};

/** A column of sealed values in some area's table (the names come from the areas' `Domain.sealed`, never from input). */
export interface ColumnRef {
  table: string;
  keys: string[];
  column: string;
  select: string[];
}

export interface SealedRow {
  key: unknown[];
  value: string;
  row: Record<string, unknown>;
}

/** Values of the column not sealed with `prefix` (a `v2:<key id>:` prefix, 20 characters). */
const pending = (c: ColumnRef, prefix: string) => sql`${sql.ref(c.column)} IS NOT NULL AND substr(${sql.ref(c.column)}, 1, 20) <> ${prefix}`;

const keyTuple = (c: ColumnRef) => (c.keys.length === 1 ? sql.ref(c.keys[0]) : sql`(${sql.join(c.keys.map((k) => sql.ref(k)))})`);
const valueTuple = (values: unknown[]) => (values.length === 1 ? sql`${values[0]}` : sql`(${sql.join(values)})`);

export const sealedRepo = {
  async tables(q: Queryable): Promise<Set<string>> {
    return new Set((await q.introspection.getTables()).map((t) => t.name));
  },

  async countPending(q: Queryable, c: ColumnRef, prefix: string): Promise<number> {
    const r = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.table(c.table)} WHERE ${pending(c, prefix)}`.execute(q);
    return Number(r.rows[0]?.n ?? 0);
  },

  /** The next `limit` rows (by key, after `after`) whose value is not sealed with `prefix`. */
  async pendingBatch(q: Queryable, c: ColumnRef, prefix: string, after: unknown[] | null, limit: number): Promise<SealedRow[]> {
    const cols = [...new Set([...c.keys, c.column, ...c.select])];
    const where: RawBuilder<unknown>[] = [pending(c, prefix)];
    if (after) where.push(sql`${keyTuple(c)} > ${valueTuple(after)}`);
    const r = await sql<Record<string, unknown>>`SELECT ${sql.join(cols.map((k) => sql.ref(k)))} FROM ${sql.table(c.table)}
      WHERE ${sql.join(where, sql` AND `)} ORDER BY ${sql.join(c.keys.map((k) => sql.ref(k)))} LIMIT ${limit}`.execute(q);
    return r.rows.map((row) => ({ key: c.keys.map((k) => row[k]), value: row[c.column] as string, row }));
  },

  /**
   * Replace each row's value by its new one, only where the row still holds the value that was read
   * (compare-and-swap: a value a server wrote since is never overwritten). Returns how many rows changed.
   */
  async swap(q: Queryable, c: ColumnRef, rows: { key: unknown[]; old: string; value: string }[]): Promise<number> {
    if (!rows.length) return 0;
    const col = sql.ref(c.column);
    const names = [...c.keys.map((_, i) => `k${i}`), "old_value", "new_value"];
    const values = rows.map((r) => sql`(${sql.join([...r.key, r.old, r.value])})`);
    const t = sql.table(c.table);
    const match = sql.join(
      c.keys.map((k, i) => sql`${sql.ref(`${c.table}.${k}`)} = ${sql.ref(`v.k${i}`)}`),
      sql` AND `,
    );
    const r = await sql`WITH v (${sql.join(names.map((n) => sql.ref(n)))}) AS (VALUES ${sql.join(values)})
      UPDATE ${t} SET ${col} = v.new_value FROM v WHERE ${match} AND ${sql.ref(`${c.table}.${c.column}`)} = v.old_value`.execute(q);
    return Number(r.numAffectedRows ?? 0);
  },
};
