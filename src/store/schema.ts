import type { Generated } from "kysely";

/**
 * Table types for Kysely. Conventions that hold on both SQLite and PostgreSQL:
 * times are epoch milliseconds (bigint), booleans are integers 0/1, JSON is text.
 * Each area adds its tables here and a migration in ./migrations.
 */
export interface UsersTable {
  id: string;
  email: string;
  email_lower: string;
  first_name: string | null;
  last_name: string | null;
  password_hash: string | null;
  invited: number;
  created_at: number;
}

export interface ProjectsTable {
  id: string;
  name: string;
  settings: string;
  enabled: number;
  owner_user_id: string | null;
  created_at: number;
}

export interface MembershipsTable {
  project_id: string;
  user_id: string;
  is_admin: number;
  is_developer: number;
  can_create_rooms: number;
  can_use_llm_proxy: number;
  created_at: number;
}

export interface ApiKeysTable {
  id: string;
  project_id: string;
  name: string;
  description: string;
  secret_sealed: string;
  secret_hash: string;
  created_by: string | null;
  created_at: number;
}

export interface UserTokensTable {
  id: string;
  user_id: string;
  token_hash: string;
  kind: string;
  name: string;
  created_at: number;
  expires_at: number | null;
}

export interface RoomsTable {
  id: string;
  project_id: string;
  name: string;
  metadata: string;
  annotations: string;
  created_at: number;
  updated_at: number;
}

export interface WebhooksTable {
  id: string;
  project_id: string;
  name: string;
  description: string;
  url: string;
  events: string;
  action: string | null;
  payload: string | null;
  secret_sealed: string;
  enabled: number;
  disabled_reason: string | null;
  created_at: number;
  updated_at: number;
}

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  project_id: string;
  event_id: string;
  event: string;
  body: string;
  status: "pending" | "delivered" | "failed" | "held";
  attempts: number;
  next_attempt_at: number;
  locked_until: number | null;
  locked_by: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export interface WebhookAttemptsTable {
  id: string;
  delivery_id: string;
  attempt: number;
  started_at: number;
  latency_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
  worker: string;
}

export interface StorageFilesTable {
  scope: string;
  path_hash: string;
  path: string;
  project_id: string;
  size: number;
  etag: string;
  updated_at: number;
}

export interface StorageUsageTable {
  project_id: string;
  bytes: number;
  files: number;
  updated_at: number;
}

export interface StoragePendingTable {
  id: string;
  project_id: string;
  scope: string;
  path: string;
  op: string;
  participant_id: string;
  started_at: number;
  lease_until: number;
}

export interface RoomQueuesTable {
  id: string;
  room_id: string;
  name: string;
  created_at: number;
}

export interface QueueMessagesTable {
  seq: Generated<number>;
  id: string;
  queue_id: string;
  /** The message as JSON text. */
  body: string;
  enqueued_at: number;
  /** Claimable when visible_at <= now; a claim moves it to now + visibility timeout. */
  visible_at: number;
  claim_token: string | null;
  attempts: number;
}

export interface MailboxesTable {
  id: string;
  address: string;
  address_lower: string;
  project_id: string;
  room_id: string;
  queue: string;
  public: number;
  annotations: string;
  created_at: number;
  updated_at: number;
}

export interface Database {
  users: UsersTable;
  projects: ProjectsTable;
  memberships: MembershipsTable;
  api_keys: ApiKeysTable;
  user_tokens: UserTokensTable;
  rooms: RoomsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  storage_files: StorageFilesTable;
  storage_usage: StorageUsageTable;
  storage_pending: StoragePendingTable;
  room_queues: RoomQueuesTable;
  queue_messages: QueueMessagesTable;
  mailboxes: MailboxesTable;
}
