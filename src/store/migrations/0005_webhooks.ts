import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

export const m0005_webhooks: Migration = tablesMigration({
  webhooks: {
    id: "text primary key",
    project_id: "text not null references projects.id on delete cascade",
    name: "text not null",
    description: "text not null",
    url: "text not null",
    events: "text not null", // JSON array of strings
    action: "text",
    payload: "text", // JSON object or null
    secret_sealed: "text not null",
    enabled: "integer not null default 1",
    disabled_reason: "text",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "index webhooks_project": "(project_id, created_at, id)",
  },
  // The outbox: one row per (event, webhook), written in the transaction of the change.
  webhook_deliveries: {
    id: "text primary key", // stable across retries: the webhook-id header
    webhook_id: "text not null references webhooks.id on delete cascade",
    project_id: "text not null",
    event_id: "text not null",
    event: "text not null",
    body: "text not null", // exactly the bytes sent (Python json.dumps form)
    status: "text not null", // pending | delivered | failed | held
    attempts: "integer not null default 0",
    next_attempt_at: "bigint not null",
    locked_until: "bigint", // lease of the process that claimed it (null: not claimed)
    locked_by: "text",
    last_status_code: "integer",
    last_error: "text",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    delivered_at: "bigint",
    "index webhook_deliveries_due": "(status, next_attempt_at)",
    "index webhook_deliveries_webhook": "(webhook_id, created_at, id)",
  },
  webhook_attempts: {
    id: "text primary key",
    delivery_id: "text not null references webhook_deliveries.id on delete cascade",
    attempt: "integer not null",
    started_at: "bigint not null",
    latency_ms: "integer not null",
    status_code: "integer",
    error: "text",
    response_excerpt: "text",
    worker: "text not null",
    "index webhook_attempts_delivery": "(delivery_id, attempt)",
  },
});
