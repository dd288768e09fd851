import { sql } from "kysely";
import type { Queryable } from "../store/db.js";

/**
 * The store-wide figures /metrics reports (the same in every process of a cluster: they are read from the shared
 * store at scrape time, one small query each).
 */
export const metricsRepo = {
  /** Webhook deliveries by status (pending, delivered, failed, held). */
  deliveriesByStatus: (q: Queryable) =>
    q
      .selectFrom("webhook_deliveries")
      .select(["status", sql<number>`count(*)`.as("n")])
      .groupBy("status")
      .execute(),
  /** Pending deliveries already due (the outbox backlog) and the oldest due time among them. */
  dueDeliveries: (q: Queryable, now: number) =>
    q
      .selectFrom("webhook_deliveries")
      .select([sql<number>`count(*)`.as("n"), sql<number | null>`min(next_attempt_at)`.as("oldest")])
      .where("status", "=", "pending")
      .where("next_attempt_at", "<=", now)
      .executeTakeFirstOrThrow(),
  /** Messages in room queues: all of them, and those ready to be received. */
  queueMessages: (q: Queryable, now: number) =>
    q
      .selectFrom("queue_messages")
      .select([sql<number>`count(*)`.as("n"), sql<number>`coalesce(sum(case when visible_at <= ${now} then 1 else 0 end), 0)`.as("ready")])
      .executeTakeFirstOrThrow(),
  /** Active scheduled tasks whose next run is due, and the oldest due time (how far the scheduler is behind). */
  dueTasks: (q: Queryable, now: number) =>
    q
      .selectFrom("scheduled_tasks")
      .select([sql<number>`count(*)`.as("n"), sql<number | null>`min(next_run_at)`.as("oldest")])
      .where("active", "=", 1)
      .where("next_run_at", "<=", now)
      .executeTakeFirstOrThrow(),
};
