import { sql } from "kysely";
import type { Dialect, Queryable } from "../store/db.js";
import type { WebhookAttemptsTable, WebhookDeliveriesTable, WebhooksTable } from "../store/schema.js";

export type WebhookRow = WebhooksTable;
export type DeliveryRow = WebhookDeliveriesTable;
export type AttemptRow = WebhookAttemptsTable;

/** What the dispatcher needs of a claimed row. */
export interface ClaimedRow {
  id: string;
  webhook_id: string;
  event: string;
  body: string;
  attempts: number;
  created_at: number;
}

/** The outcome of one attempt, written back in a batch. */
export interface AttemptResult {
  delivery: ClaimedRow;
  attempt: AttemptRow;
  /**
   * delivered: 2xx; retry: try again at nextAt; failed: give up (410 or retries exhausted); release: not attempted,
   * claimable again at once; defer: not attempted, due again at nextAt (the attempt count is unchanged).
   */
  outcome: "delivered" | "retry" | "failed" | "release" | "defer";
  nextAt?: number;
  disableWebhook?: string;
  now: number;
}

const DELIVERY_COLS = [
  "id",
  "webhook_id",
  "event_id",
  "event",
  "body",
  "status",
  "attempts",
  "next_attempt_at",
  "locked_until",
  "locked_by",
  "last_status_code",
  "last_error",
  "created_at",
  "updated_at",
  "delivered_at",
] as const;

export const webhooksRepo = {
  insert: (q: Queryable, row: WebhookRow) => q.insertInto("webhooks").values(row).execute(),
  byId: (q: Queryable, projectId: string, id: string) =>
    q.selectFrom("webhooks").selectAll().where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst(),
  list: (q: Queryable, projectId: string) =>
    q.selectFrom("webhooks").selectAll().where("project_id", "=", projectId).orderBy("created_at", "asc").orderBy("id", "asc").execute(),
  update: (q: Queryable, projectId: string, id: string, patch: Partial<WebhookRow>) =>
    q.updateTable("webhooks").set(patch).where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst(),
  delete: async (q: Queryable, projectId: string, id: string) => {
    const r = await q.deleteFrom("webhooks").where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
  /** The webhooks an event of this project may go to (filtered by their event list in code). */
  enabledForProject: (q: Queryable, projectId: string) =>
    q.selectFrom("webhooks").select(["id", "events", "action", "payload"]).where("project_id", "=", projectId).where("enabled", "=", 1).execute(),
  forDelivery: (q: Queryable, ids: string[]) =>
    q.selectFrom("webhooks").select(["id", "project_id", "name", "payload", "url", "secret_sealed", "enabled", "updated_at"]).where("id", "in", ids).execute(),

  insertDeliveries: async (q: Queryable, rows: DeliveryRow[]) => {
    for (let i = 0; i < rows.length; i += 200)
      await q
        .insertInto("webhook_deliveries")
        .values(rows.slice(i, i + 200))
        .execute();
  },
  /** Hold a disabled webhook's pending rows (kept, not attempted) or put them back when it is enabled again. */
  setHeld: (q: Queryable, webhookId: string, held: boolean, now: number) =>
    q
      .updateTable("webhook_deliveries")
      .set(held ? { status: "held", updated_at: now } : { status: "pending", updated_at: now, next_attempt_at: now })
      .where("webhook_id", "=", webhookId)
      .where("status", "=", held ? "pending" : "held")
      .execute(),

  delivery: (q: Queryable, webhookId: string, id: string) =>
    q.selectFrom("webhook_deliveries").select(DELIVERY_COLS).where("webhook_id", "=", webhookId).where("id", "=", id).executeTakeFirst(),
  deliveries: (q: Queryable, webhookId: string, opts: { limit: number; offset: number; status?: string }) => {
    let s = q.selectFrom("webhook_deliveries").select(DELIVERY_COLS).where("webhook_id", "=", webhookId);
    if (opts.status) s = s.where("status", "=", opts.status as DeliveryRow["status"]);
    return s.orderBy("created_at", "desc").orderBy("id", "desc").limit(opts.limit).offset(opts.offset).execute();
  },
  countDeliveries: async (q: Queryable, webhookId: string, status?: string) => {
    let s = q
      .selectFrom("webhook_deliveries")
      .select((e) => e.fn.countAll<number>().as("n"))
      .where("webhook_id", "=", webhookId);
    if (status) s = s.where("status", "=", status as DeliveryRow["status"]);
    return Number((await s.executeTakeFirstOrThrow()).n);
  },
  attemptsOf: (q: Queryable, deliveryIds: string[]) =>
    deliveryIds.length
      ? q.selectFrom("webhook_attempts").selectAll().where("delivery_id", "in", deliveryIds).orderBy("delivery_id").orderBy("attempt", "asc").execute()
      : Promise.resolve([] as AttemptRow[]),
  /** Manual retry/replay: due now, whatever its state; a live lease is left alone (that attempt finishes first). */
  requeue: (q: Queryable, webhookId: string, id: string, now: number) =>
    q
      .updateTable("webhook_deliveries")
      .set({ status: "pending", next_attempt_at: now, updated_at: now })
      .where("webhook_id", "=", webhookId)
      .where("id", "=", id)
      .executeTakeFirst(),

  /**
   * Claim up to `limit` due rows for `worker` until `leaseUntil`. On PostgreSQL the rows are picked with
   * FOR UPDATE SKIP LOCKED, so concurrent processes never claim the same row; on SQLite one process dispatches.
   */
  claim: async (
    q: Queryable,
    dialect: Dialect,
    opts: { now: number; leaseNow: number; leaseUntil: number; worker: string; limit: number },
  ): Promise<ClaimedRow[]> => {
    let due = q
      .selectFrom("webhook_deliveries")
      .select("id")
      .where("status", "=", "pending")
      .where("next_attempt_at", "<=", opts.now)
      .where((e) => e.or([e("locked_until", "is", null), e("locked_until", "<=", opts.leaseNow)]))
      .orderBy("next_attempt_at")
      .limit(opts.limit);
    if (dialect === "postgres") due = due.forUpdate().skipLocked();
    const rows = await q
      .updateTable("webhook_deliveries")
      .set({ locked_until: opts.leaseUntil, locked_by: opts.worker })
      .where("id", "in", due)
      .returning(["id", "webhook_id", "event", "body", "attempts", "created_at"])
      .execute();
    return rows.map((x) => ({ ...x, attempts: Number(x.attempts), created_at: Number(x.created_at) }));
  },
  /** SQLite runs one dispatcher: at its start, leases left by a killed process are released at once. */
  releaseAllLeases: (q: Queryable) =>
    q.updateTable("webhook_deliveries").set({ locked_until: null, locked_by: null }).where("locked_until", "is not", null).execute(),

  /** Write back a batch of attempt outcomes in one transaction. */
  record: async (q: Queryable, dialect: Dialect, worker: string, results: AttemptResult[]) => {
    // A delivery can vanish while in flight (its webhook was deleted): skip those, or the batch would fail. On
    // PostgreSQL the survivors are locked (KEY SHARE) so a concurrent delete waits for this transaction.
    let sel = q
      .selectFrom("webhook_deliveries")
      .select("id")
      .where(
        "id",
        "in",
        results.map((r) => r.delivery.id),
      );
    if (dialect === "postgres") sel = sel.forKeyShare();
    const live = new Set((await sel.execute()).map((r) => r.id));
    results = results.filter((r) => live.has(r.delivery.id));
    if (!results.length) return;
    const attempts = results.filter((r) => r.outcome !== "release" && r.outcome !== "defer").map((r) => r.attempt);
    for (let i = 0; i < attempts.length; i += 200)
      await q
        .insertInto("webhook_attempts")
        .values(attempts.slice(i, i + 200))
        .execute();
    // Successes are the bulk: one statement per status code. (attempts + 1 is the attempt number: only the lease
    // holder changes a claimed row.)
    const delivered = new Map<number, string[]>();
    for (const r of results)
      if (r.outcome === "delivered") delivered.set(r.attempt.status_code!, [...(delivered.get(r.attempt.status_code!) ?? []), r.delivery.id]);
    const now = results[0].now;
    for (const [code, ids] of delivered)
      for (let i = 0; i < ids.length; i += 500)
        await q
          .updateTable("webhook_deliveries")
          .set((e) => ({
            status: "delivered",
            attempts: e("attempts", "+", 1),
            locked_until: null,
            locked_by: null,
            last_status_code: code,
            last_error: null,
            updated_at: now,
            delivered_at: now,
          }))
          .where("id", "in", ids.slice(i, i + 500))
          .where("locked_by", "=", worker)
          .execute();
    for (const r of results) {
      if (r.outcome === "delivered") continue;
      const base = q.updateTable("webhook_deliveries").where("id", "=", r.delivery.id).where("locked_by", "=", worker);
      const a = r.attempt;
      if (r.outcome === "release") {
        await base.set({ locked_until: null, locked_by: null }).execute();
        continue;
      }
      if (r.outcome === "defer") {
        await base.set({ locked_until: null, locked_by: null, next_attempt_at: r.nextAt! }).execute();
        continue;
      }
      const common = {
        attempts: a.attempt,
        locked_until: null,
        locked_by: null,
        last_status_code: a.status_code,
        last_error: a.error,
        updated_at: r.now,
      };
      if (r.outcome === "failed") await base.set({ ...common, status: "failed" }).execute();
      // A retry of a webhook that was disabled meanwhile stays held.
      else
        await base.set({ ...common, next_attempt_at: r.nextAt!, status: sql<"pending">`CASE WHEN status = 'held' THEN 'held' ELSE 'pending' END` }).execute();
    }
    for (const id of new Set(results.map((r) => r.disableWebhook).filter(Boolean) as string[])) {
      await q.updateTable("webhooks").set({ enabled: 0, disabled_reason: "the endpoint answered 410 Gone", updated_at: now }).where("id", "=", id).execute();
      await webhooksRepo.setHeld(q, id, true, now);
    }
  },
};
