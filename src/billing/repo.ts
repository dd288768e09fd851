import { sql } from "kysely";
import type { Dialect, Queryable } from "../store/db.js";
import type { BillingAccountsTable, BillingChargesTable, BillingCheckoutsTable, BillingTransactionsTable, UsageRecordsTable } from "../store/schema.js";

export type AccountRow = BillingAccountsTable;
export type TransactionRow = Omit<BillingTransactionsTable, "seq">;
export type CheckoutRow = BillingCheckoutsTable;
export type ChargeRow = BillingChargesTable;
export type NewUsage = Omit<UsageRecordsTable, "id">;

/** One usage group of a period: what the pricing job prices. */
export interface PeriodGroup {
  project_id: string;
  usage_type: string;
  unit: string;
  provider: string | null;
  model: string | null;
  quantity: number;
}

/** Filters of a usage report (get_usage). */
export interface UsageFilter {
  projectId: string;
  start: number;
  end: number;
  users?: string[];
  room?: string;
  provider?: string;
  model?: string;
  usageType?: string;
  client?: string;
  annotations?: Record<string, string>;
}

const DIMENSIONS = ["room_name", "user_id", "role", "provider", "model", "client"] as const;
export type Dimension = (typeof DIMENSIONS)[number];

const n = (v: unknown) => Number(v ?? 0);

export const billingRepo = {
  // ------------------------------------------------------------------ accounts and the ledger
  account: (q: Queryable, projectId: string) => q.selectFrom("billing_accounts").selectAll().where("project_id", "=", projectId).executeTakeFirst(),
  /** Create the project's account row unless it exists. */
  createAccount: (q: Queryable, projectId: string, now: number) =>
    q
      .insertInto("billing_accounts")
      .values({ project_id: projectId, updated_at: now } as AccountRow)
      .onConflict((oc) => oc.column("project_id").doNothing())
      .execute(),
  /** The project's account row, created on first use. */
  ensureAccount: async (q: Queryable, projectId: string, now: number): Promise<AccountRow> => {
    await billingRepo.createAccount(q, projectId, now);
    return (await billingRepo.account(q, projectId))!;
  },
  updateAccount: (q: Queryable, projectId: string, patch: Partial<AccountRow>) =>
    q.updateTable("billing_accounts").set(patch).where("project_id", "=", projectId).execute(),
  /** Insert a transaction unless one with its dedupe key exists (true when inserted). */
  insertTransaction: async (q: Queryable, row: TransactionRow) => {
    const r = await q
      .insertInto("billing_transactions")
      .values(row)
      .onConflict((oc) => oc.columns(["project_id", "dedupe"]).doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  },
  /** Add to the cached balance in the same statement as the read: the new balance and what its crossing check reads. */
  addToBalance: async (q: Queryable, projectId: string, amount: number, now: number) => {
    const r = await q
      .updateTable("billing_accounts")
      .set({ balance_micros: sql`balance_micros + ${amount}`, updated_at: now })
      .where("project_id", "=", projectId)
      .returning(["balance_micros", "auto_recharge_threshold_micros", "balance_low"])
      .executeTakeFirstOrThrow();
    return { ...r, balance_micros: n(r.balance_micros) };
  },
  transaction: (q: Queryable, projectId: string, id: string) =>
    q.selectFrom("billing_transactions").selectAll().where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst(),
  transactionByDedupe: (q: Queryable, projectId: string, dedupe: string) =>
    q.selectFrom("billing_transactions").selectAll().where("project_id", "=", projectId).where("dedupe", "=", dedupe).executeTakeFirst(),
  recentTransactions: (q: Queryable, projectId: string, limit: number) =>
    q.selectFrom("billing_transactions").selectAll().where("project_id", "=", projectId).orderBy("seq", "desc").limit(limit).execute(),
  sumTransactions: async (q: Queryable, projectId: string) => {
    const r = await q
      .selectFrom("billing_transactions")
      .where("project_id", "=", projectId)
      .select((eb) => eb.fn.sum<number>("amount_micros").as("s"))
      .executeTakeFirst();
    return n(r?.s);
  },
  /** What auto-recharge credited since `since` (the month's recharges, for the budget). */
  rechargedSince: async (q: Queryable, projectId: string, since: number) => {
    const r = await q
      .selectFrom("billing_transactions")
      .where("project_id", "=", projectId)
      .where("kind", "=", "recharge")
      .where("created_at", ">=", since)
      .select((eb) => eb.fn.sum<number>("amount_micros").as("s"))
      .executeTakeFirst();
    return n(r?.s);
  },
  /** Claim the right to attempt a recharge (one process at a time, at most one attempt per `gapMs`). */
  claimRecharge: async (q: Queryable, projectId: string, now: number, gapMs: number) => {
    const r = await q
      .updateTable("billing_accounts")
      .set({ last_recharge_at: now })
      .where("project_id", "=", projectId)
      .where((eb) => eb.or([eb("last_recharge_at", "is", null), eb("last_recharge_at", "<=", now - gapMs)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  /** Accounts whose auto-recharge should run now: enabled, not paused, below their threshold. */
  dueRecharges: (q: Queryable) =>
    q
      .selectFrom("billing_accounts")
      .select("project_id")
      .where("auto_recharge_enabled", "=", 1)
      .where("auto_recharge_paused", "=", 0)
      .where("auto_recharge_threshold_micros", "is not", null)
      .where(sql<boolean>`balance_micros < auto_recharge_threshold_micros`)
      .limit(1000)
      .execute(),
  byCustomer: (q: Queryable, customer: string) => q.selectFrom("billing_accounts").selectAll().where("customer_ref", "=", customer).executeTakeFirst(),
  bySubscription: (q: Queryable, ref: string) => q.selectFrom("billing_accounts").selectAll().where("subscription_ref", "=", ref).executeTakeFirst(),
  /** Local subscriptions past their period's end (renewed or ended by the billing job). */
  lapsedSubscriptions: (q: Queryable, now: number) =>
    q
      .selectFrom("billing_accounts")
      .selectAll()
      .where("subscription_status", "=", "active")
      .where("period_end", "<=", now)
      .where("subscription_ref", "like", "local_%")
      .limit(1000)
      .execute(),

  // ------------------------------------------------------------------ usage records
  insertUsage: async (q: Queryable, rows: NewUsage[]) => {
    for (let i = 0; i < rows.length; i += 500)
      await q
        .insertInto("usage_records")
        .values(rows.slice(i, i + 500))
        .execute();
  },
  /** The earliest usage record at or after `since` (where pricing starts when nothing was priced yet). */
  firstUsageAt: async (q: Queryable) => {
    const r = await q
      .selectFrom("usage_records")
      .select((eb) => eb.fn.min<number>("recorded_at").as("t"))
      .executeTakeFirst();
    return r?.t == null ? null : n(r.t);
  },
  /** Stored bytes per project now (project and room storage): what a period's byte-hours are sampled from. */
  storedBytes: (q: Queryable) => q.selectFrom("storage_usage").select(["project_id", "bytes"]).where("bytes", ">", 0).execute(),

  // ------------------------------------------------------------------ hourly rollups
  /** The end of the last rolled-up hour (the rollup job works in order from there), or null. */
  lastRollupEnd: async (q: Queryable) => {
    // The latest row by its key (an index lookup, where max(period_end) would read them all).
    const r = await q.selectFrom("usage_rollups").select("period_end").orderBy("period_start", "desc").limit(1).executeTakeFirst();
    return r ? n(r.period_end) : null;
  },
  /** The rolled-up hours that start in `[from, to)`, in order. */
  rolledHours: async (q: Queryable, from: number, to: number) => {
    const rows = await q
      .selectFrom("usage_rollups")
      .select("period_start")
      .where("period_start", ">=", from)
      .where("period_start", "<", to)
      .orderBy("period_start")
      .execute();
    return rows.map((r) => n(r.period_start));
  },
  /** Claim an hour for its rollup (false: it is rolled up, or being rolled up by a transaction this one waited for). */
  claimRollup: async (q: Queryable, start: number, end: number, now: number) => {
    const r = await q
      .insertInto("usage_rollups")
      .values({ period_start: start, period_end: end, rows: 0, rolled_at: now })
      .onConflict((oc) => oc.column("period_start").doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  },
  /** Sum the hour's records into usage_hourly in one statement; the rows written. */
  rollup: async (q: Queryable, start: number, end: number) => {
    const r = await q
      .insertInto("usage_hourly")
      .columns(["project_id", "period_start", "usage_type", "unit", "provider", "model", "quantity", "records"])
      .expression(
        q
          .selectFrom("usage_records")
          .select(["project_id", sql<number>`${sql.lit(Math.trunc(start))}`.as("period_start"), "usage_type", "unit", "provider", "model"])
          .select((eb) => [eb.fn.sum<number>("quantity").as("quantity"), eb.fn.countAll<number>().as("records")])
          .where("recorded_at", ">=", start)
          .where("recorded_at", "<", end)
          .groupBy(["project_id", "usage_type", "unit", "provider", "model"]),
      )
      .executeTakeFirst();
    const rows = Number(r.numInsertedOrUpdatedRows ?? 0);
    await q.updateTable("usage_rollups").set({ rows }).where("period_start", "=", start).execute();
    return rows;
  },
  /** One rolled-up hour: what the pricing job prices. */
  hourGroups: async (q: Queryable, start: number): Promise<(PeriodGroup & { records: number })[]> => {
    const rows = await q
      .selectFrom("usage_hourly")
      .select(["project_id", "usage_type", "unit", "provider", "model", "quantity", "records"])
      .where("period_start", "=", start)
      .execute();
    return rows.map((r) => ({ ...r, quantity: n(r.quantity), records: n(r.records) }));
  },
  /** get_usage over rolled-up hours `[from, to)` (reports without room, user, client or annotation dimensions). */
  reportHourly: async (q: Queryable, f: UsageFilter, from: number, to: number, bucketMs: number, originMs: number, by: ("provider" | "model")[]) => {
    const size = sql.lit(Math.trunc(bucketMs));
    const origin = sql.lit(Math.trunc(originMs));
    const bucket = sql<number>`(((period_start - ${origin}) / ${size}) * ${size} + ${origin})`;
    let s = q
      .selectFrom("usage_hourly")
      .select([bucket.as("bucket"), "usage_type", "unit", ...by])
      .select((eb) => [eb.fn.sum<number>("quantity").as("quantity"), eb.fn.sum<number>("records").as("records")])
      .where("project_id", "=", f.projectId)
      .where("period_start", ">=", from)
      .where("period_start", "<", to);
    if (f.provider) s = s.where("provider", "=", f.provider);
    if (f.model) s = s.where("model", "=", f.model);
    if (f.usageType) s = s.where("usage_type", "=", f.usageType);
    const rows = await s.groupBy([sql`1`, "usage_type", "unit", ...by] as never).execute();
    return rows.map((r) => ({ ...r, bucket: n(r.bucket), quantity: n(r.quantity), records: n(r.records) }));
  },

  // ------------------------------------------------------------------ priced periods and charges
  lastPeriodEnd: async (q: Queryable) => {
    const r = await q.selectFrom("billing_periods").select("period_end").orderBy("period_start", "desc").limit(1).executeTakeFirst();
    return r ? n(r.period_end) : null;
  },
  /** Claim a period (false: another run priced it, or prices it now and this one waited for it to commit). */
  claimPeriod: async (q: Queryable, start: number, end: number, now: number) => {
    const r = await q
      .insertInto("billing_periods")
      .values({ period_start: start, period_end: end, records: 0, charges: 0, priced_at: now })
      .onConflict((oc) => oc.column("period_start").doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  },
  finishPeriod: (q: Queryable, start: number, records: number, charges: number) =>
    q.updateTable("billing_periods").set({ records, charges }).where("period_start", "=", start).execute(),
  /** Metered quantity already charged per price in `[from, before)` (the month so far, for free allowances). */
  chargedQuantity: async (q: Queryable, projectIds: string[], from: number, before: number) => {
    if (!projectIds.length) return new Map<string, number>();
    const rows = await q
      .selectFrom("billing_charges")
      .select(["project_id", "price_id"])
      .select((eb) => eb.fn.sum<number>("quantity").as("q"))
      .where("project_id", "in", projectIds)
      .where("period_start", ">=", from)
      .where("period_start", "<", before)
      .groupBy(["project_id", "price_id"])
      .execute();
    return new Map(rows.map((r) => [`${r.project_id}\0${r.price_id}`, n(r.q)]));
  },
  insertCharges: async (q: Queryable, rows: ChargeRow[]) => {
    for (let i = 0; i < rows.length; i += 500)
      await q
        .insertInto("billing_charges")
        .values(rows.slice(i, i + 500))
        .execute();
  },
  /** Priced amounts per usage type and period start in `[start, end)` (the cost report). */
  charges: (q: Queryable, projectId: string, start: number, end: number, usageType?: string) => {
    let s = q
      .selectFrom("billing_charges")
      .select(["period_start", "usage_type", "price_id"])
      .select((eb) => [eb.fn.sum<number>("quantity").as("quantity"), eb.fn.sum<number>("amount_micros").as("amount")])
      .where("project_id", "=", projectId)
      .where("period_start", ">=", start)
      .where("period_start", "<", end);
    if (usageType) s = s.where("usage_type", "=", usageType);
    return s.groupBy(["period_start", "usage_type", "price_id"]).execute();
  },

  // ------------------------------------------------------------------ usage reports
  /**
   * Usage in `[start, end)` summed per bucket (`bucketMs` wide, from `originMs`), type, unit and `by` dimensions.
   * Annotations filter on the stored JSON (each key must hold the given string).
   */
  report: async (q: Queryable, dialect: Dialect, f: UsageFilter, bucketMs: number, originMs: number, by: Dimension[]) => {
    // Integer literals, not parameters: better-sqlite3 binds JS numbers as REAL, which would make this a float division
    // (one group per timestamp). Both are the server's own constants (interval sizes), never input.
    const size = sql.lit(Math.trunc(bucketMs));
    const origin = sql.lit(Math.trunc(originMs));
    const bucket = sql<number>`(((recorded_at - ${origin}) / ${size}) * ${size} + ${origin})`;
    let s = q
      .selectFrom("usage_records")
      .select([bucket.as("bucket"), "usage_type", "unit", ...by])
      .select((eb) => [eb.fn.sum<number>("quantity").as("quantity"), eb.fn.countAll<number>().as("records")])
      .where("project_id", "=", f.projectId)
      .where("recorded_at", ">=", f.start)
      .where("recorded_at", "<", f.end);
    if (f.users?.length) s = s.where("user_id", "in", f.users);
    if (f.room) s = s.where("room_name", "=", f.room);
    if (f.provider) s = s.where("provider", "=", f.provider);
    if (f.model) s = s.where("model", "=", f.model);
    if (f.usageType) s = s.where("usage_type", "=", f.usageType);
    if (f.client) s = s.where("client", "=", f.client);
    for (const [k, v] of Object.entries(f.annotations ?? {})) {
      const value = dialect === "postgres" ? sql`(annotations::jsonb ->> ${k})` : sql`json_extract(annotations, ${`$."${k.replaceAll('"', '""')}"`})`;
      s = s.where(sql<boolean>`${value} = ${v}`);
    }
    const rows = await s.groupBy([sql`1`, "usage_type", "unit", ...by] as never).execute();
    return rows.map((r) => ({ ...r, bucket: n(r.bucket), quantity: n(r.quantity), records: n(r.records) }));
  },

  // ------------------------------------------------------------------ checkouts and provider events
  insertCheckout: (q: Queryable, row: CheckoutRow) => q.insertInto("billing_checkouts").values(row).execute(),
  checkout: (q: Queryable, id: string) => q.selectFrom("billing_checkouts").selectAll().where("id", "=", id).executeTakeFirst(),
  checkoutByRef: (q: Queryable, ref: string) => q.selectFrom("billing_checkouts").selectAll().where("provider_ref", "=", ref).executeTakeFirst(),
  setCheckoutRef: (q: Queryable, id: string, ref: string) => q.updateTable("billing_checkouts").set({ provider_ref: ref }).where("id", "=", id).execute(),
  /** Close an open checkout (true when this call closed it: a confirm and a cancel cannot both win). */
  closeCheckout: async (q: Queryable, id: string, status: "completed" | "canceled", now: number) => {
    const r = await q.updateTable("billing_checkouts").set({ status, completed_at: now }).where("id", "=", id).where("status", "=", "open").executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  },
  /** Record a provider event id once (false: already handled). */
  firstSeen: async (q: Queryable, id: string, type: string, now: number) => {
    const r = await q
      .insertInto("billing_provider_events")
      .values({ id, type, received_at: now })
      .onConflict((oc) => oc.column("id").doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  },
};

export { DIMENSIONS };
