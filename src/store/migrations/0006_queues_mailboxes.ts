import type { Migration } from "kysely";
import { tablesMigration } from "./ddl.js";

/**
 * Durable room queues (shared by mailboxes, scheduled tasks and the room server) and mailboxes.
 * Everything that belongs to a room goes away with it (ON DELETE CASCADE to rooms.id).
 */
export const m0006_queues_mailboxes: Migration = tablesMigration({
  room_queues: {
    id: "text primary key",
    room_id: "text not null references rooms.id on delete cascade",
    name: "text not null",
    created_at: "bigint not null",
    "constraint room_queues_room_name": "unique (room_id, name)",
  },
  // `seq` gives FIFO order across processes (a database sequence), `id` is the stable public id of a message.
  // Receivers take the first row of (queue_id, visible_at <= now) ordered by (visible_at, seq): see queues/repo.ts.
  queue_messages: {
    seq: "bigserial primary key",
    id: "text not null unique",
    queue_id: "text not null references room_queues.id on delete cascade",
    body: "text not null",
    enqueued_at: "bigint not null",
    visible_at: "bigint not null",
    claim_token: "text",
    attempts: "integer not null default 0",
    "index queue_messages_ready": "(queue_id, visible_at, seq)",
  },
  mailboxes: {
    id: "text primary key",
    address: "text not null",
    address_lower: "text not null unique",
    project_id: "text not null references projects.id on delete cascade",
    room_id: "text not null references rooms.id on delete cascade",
    queue: "text not null",
    public: "integer not null default 0",
    annotations: "text not null",
    created_at: "bigint not null",
    updated_at: "bigint not null",
    "index mailboxes_project_address": "(project_id, address_lower)",
    "index mailboxes_room": "(room_id, address_lower)",
  },
});
