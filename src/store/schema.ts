import type { Generated } from "kysely";

/**
 * Table types for Kysely. Conventions that hold on both SQLite and PostgreSQL:
 * times are epoch milliseconds (bigint), booleans are integers 0/1, JSON is text.
 * Each area adds its tables here and a migration in ./migrations.
 */
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
  /** An administrator of the whole server (src/admin); the bootstrap user is one. */
  is_server_admin: number;
  /** Set while the account is disabled: its tokens are refused. */
  disabled_at: number | null;
  /** The TOTP second factor's secret, sealed (src/accounts); null when the user has none. */
  totp_sealed: string | null;
  /** The last TOTP time step accepted (a code works once). */
  totp_last_step: number | null;
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

export interface ScheduledTasksTable {
  id: string;
  project_id: string;
  room_id: string;
  /** spec.metadata.name; unique in its room when set. */
  name: string | null;
  /** The normalized ScheduledTaskSpec as JSON (its `active` is mirrored from the column on output). */
  spec: string;
  target: "queue" | "container";
  queue_name: string | null;
  schedule: string;
  timezone: string;
  once: number;
  active: number;
  misfire_policy: string;
  catch_up_max: number;
  /** Interval schedules ("30 minutes") fire at anchor_at + k × interval. */
  anchor_at: number;
  /** When the engine fires it next; null when inactive (paused, or a one-time task that ran). */
  next_run_at: number | null;
  last_run_id: number | null;
  last_start_time: number | null;
  last_end_time: number | null;
  last_status: string | null;
  last_return_message: string | null;
  created_at: number;
  updated_at: number;
}

export interface ScheduledTaskRunsTable {
  id: Generated<number>;
  task_id: string;
  project_id: string;
  room_id: string;
  target: "queue" | "container";
  /** "submitted" (delivered) or "failed" (wire-contract §7.5 statuses). */
  status: string;
  attempt_count: number;
  error: string | null;
  queued_message_id: string | null;
  scheduled_time: number;
  started_at: number | null;
  completed_at: number | null;
}

export interface RoomGrantsTable {
  project_id: string;
  room_id: string;
  user_id: string;
  /** The ApiScope JSON exactly as the client sent it. */
  permissions: string;
  created_at: number;
  updated_at: number;
}

export interface SharesTable {
  id: string;
  project_id: string;
  /** The room the share's settings name (null when they name none); the share follows it across renames. */
  room_id: string | null;
  settings: string;
  max_uses: number | null;
  uses: number;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface ProjectSigningKeysTable {
  id: string;
  project_id: string;
  secret_sealed: string;
  created_at: number;
}

export interface RoomCountsTable {
  project_id: string;
  count: number;
}

/** A room server process: where others reach it (proxying) and whether it is alive (heartbeat, pid on its host). */
export interface RoomServerNodesTable {
  id: string;
  url: string;
  hostname: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
}

/** Which process owns a room's sockets; valid while expires_at > now (renewed by the owner's heartbeat). */
export interface RoomLeasesTable {
  room_id: string;
  node_id: string;
  acquired_at: number;
  expires_at: number;
}

export interface RoomSessionsTable {
  id: string;
  project_id: string;
  room_id: string | null;
  room_name: string;
  created_at: number;
  ended_at: number | null;
  is_active: number;
  /** The process that runs the session, and its last sign of life (a dead process's sessions get ended). */
  node_id: string;
  heartbeat_at: number;
  end_reason: string | null;
}

export interface SessionParticipantsTable {
  id: string;
  session_id: string;
  name: string;
  role: string;
  joined_at: number;
  left_at: number | null;
}

export interface SessionEventsTable {
  seq: Generated<number>;
  session_id: string;
  type: string;
  data: string;
  created_at: number;
}

export interface SessionSpansTable {
  seq: Generated<number>;
  session_id: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: number;
  start_ms: number;
  duration_ns: number;
  status_code: number;
  status_message: string | null;
  attributes: string;
  resource_attributes: string;
  participant_name: string | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  project_id: string | null;
  actor: string | null;
  operation: string;
  method: string;
  route: string;
  target_id: string | null;
  request_id: string;
  ip: string | null;
  status: number;
  created_at: number;
}

export interface SessionMetricsTable {
  seq: Generated<number>;
  session_id: string;
  name: string;
  kind: string;
  unit: string;
  value: number;
  data: string | null;
  attributes: string;
  time: number;
  source: string;
  participant_name: string | null;
}

/** Idempotency-Key claims and stored responses (src/idempotency): `status` null while the first request runs. */
export interface IdempotencyKeysTable {
  scope: string;
  key_hash: string;
  fingerprint: string;
  owner: string;
  status: number | null;
  content_type: string | null;
  /** The response body, sealed with the master key (it may carry a secret, e.g. a new API key). */
  body: string | null;
  created_at: number;
  heartbeat_at: number;
}

export interface ServicesTable {
  id: string;
  project_id: string;
  /** null for a project service. */
  room_id: string | null;
  /** "" for a project service, else the room id (one unique name per scope). */
  scope: string;
  name: string;
  /** The ServiceSpec JSON as sent (nulls dropped), with its `id`: answered as it is. */
  spec: string;
  revision: number;
  /** The runtime's view (JSON), null until a runtime reports. */
  runtime: string | null;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

export interface SecretsTable {
  /** Row id: the AAD of value_sealed. */
  id: string;
  /** The id clients see (server-made for project secrets; a room secret may choose it). */
  secret_id: string;
  project_id: string;
  room_id: string | null;
  scope: string;
  for_identity: string;
  delegated_to: string;
  name: string;
  type: string;
  value_sealed: string;
  created_at: number;
  updated_at: number;
}

export interface ServiceSecretRefsTable {
  service_id: string;
  service_name: string;
  project_id: string;
  scope: string;
  secret_id: string;
}

/** Master-key rotations (src/keyring), one row per new key id; see migrations/0012_keyring.ts. */
export interface MasterKeysTable {
  id: string;
  old_key_id: string;
  /** The new key sealed under the old one (AAD `master_keys:<id>:new`); null once retired. */
  new_sealed: string | null;
  /** The old key sealed under the new one (AAD `master_keys:<id>:old`); null once retired. */
  old_sealed: string | null;
  state: "rotating" | "done" | "retired";
  /** 1 while rotating, null after (unique: one rotation at a time). */
  unfinished: number | null;
  /** JSON cursor of the rotation job. */
  progress: string;
  resealed: number;
  started_at: number;
  finished_at: number | null;
  updated_at: number;
}

/** The secret that signs a project's room.call handoffs (src/calls); see migrations/0013_calls.ts. */
export interface CallSecretsTable {
  project_id: string;
  /** Sealed with AAD `call-secret:<project_id>`. */
  secret_sealed: string;
  created_at: number;
  updated_at: number;
}

/** The state of one service in one room (src/hosting). */
export interface ServiceRunsTable {
  room_id: string;
  service_id: string;
  project_id: string;
  session_id: string;
  node_id: string;
  state: string;
  revision: number;
  container_id: string | null;
  restart_count: number;
  last_error: string | null;
  last_exit_code: number | null;
  last_exit_at: number | null;
  started_at: number | null;
  restart_scheduled_at: number | null;
  updated_at: number;
}

/** The container of a scheduled task's run (src/hosting, src/scheduler). */
export interface TaskContainerRunsTable {
  run_id: number;
  container_id: string | null;
  exit_code: number | null;
  logs: string | null;
  timeout_at: number | null;
}

/** A sync document's schema and how far its room file is up to date (src/sync). */
export interface SyncDocumentsTable {
  room_id: string;
  path: string;
  schema: string;
  compacted_seq: number;
  created_at: number;
  updated_at: number;
}

/** An acknowledged update of a sync document not yet compacted into its file (src/sync). */
export interface SyncUpdatesTable {
  room_id: string;
  path: string;
  seq: number;
  data: string;
}

/** An OAuth client of a project (src/oauth); the lists and metadata are JSON text. */
export interface OAuthClientsTable {
  client_id: string;
  project_id: string;
  secret_sealed: string;
  secret_hash: string;
  grant_types: string;
  response_types: string;
  redirect_uris: string;
  scope: string;
  metadata: string;
  official: number;
  created_at: number;
  updated_at: number;
}

/** An instance-wide setting (src/admin), its value JSON. */
export interface ServerSettingsTable {
  key: string;
  value: string;
  updated_at: number;
}

/** An invitation mail and its single-use link (src/accounts); `token_sealed` until the mail was sent. */
export interface InvitationsTable {
  id: string;
  user_id: string;
  project_id: string | null;
  token_hash: string;
  token_sealed: string | null;
  created_at: number;
  expires_at: number;
  sent_at: number | null;
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  used_at: number | null;
}

/** A signed-in browser (src/accounts): the cookie's token hash. */
export interface AccountSessionsTable {
  id: string;
  user_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
}

/** Failed sign-ins of one account (`account:<email>`) or address (`ip:<ip>`) in the current window (src/accounts). */
export interface LoginFailuresTable {
  key: string;
  failures: number;
  window_start: number;
  locked_until: number | null;
}

/** A password reset link (src/accounts): only its hash. */
export interface PasswordResetsTable {
  id: string;
  user_id: string;
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

/** One artifact of the authorization server (src/oauth): an oidc-provider model instance, keyed by its id's hash. */
export interface OAuthArtifactsTable {
  model: string;
  id_hash: string;
  payload: string;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  account_id: string | null;
  client_id: string | null;
  expires_at: number | null;
  consumed_at: number | null;
  created_at: number;
}

/** An instance-wide OAuth client (src/oauth); `secret_sealed` null for a public client. */
export interface OAuthServerClientsTable {
  client_id: string;
  secret_sealed: string | null;
  grant_types: string;
  redirect_uris: string;
  scope: string;
  metadata: string;
  official: number;
  created_at: number;
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
  scheduled_tasks: ScheduledTasksTable;
  scheduled_task_runs: ScheduledTaskRunsTable;
  room_grants: RoomGrantsTable;
  shares: SharesTable;
  project_signing_keys: ProjectSigningKeysTable;
  room_counts: RoomCountsTable;
  room_server_nodes: RoomServerNodesTable;
  room_leases: RoomLeasesTable;
  room_sessions: RoomSessionsTable;
  session_participants: SessionParticipantsTable;
  session_events: SessionEventsTable;
  session_spans: SessionSpansTable;
  session_metrics: SessionMetricsTable;
  services: ServicesTable;
  secrets: SecretsTable;
  service_secret_refs: ServiceSecretRefsTable;
  audit_log: AuditLogTable;
  idempotency_keys: IdempotencyKeysTable;
  master_keys: MasterKeysTable;
  call_secrets: CallSecretsTable;
  service_runs: ServiceRunsTable;
  task_container_runs: TaskContainerRunsTable;
  sync_documents: SyncDocumentsTable;
  sync_updates: SyncUpdatesTable;
  oauth_clients: OAuthClientsTable;
  server_settings: ServerSettingsTable;
  invitations: InvitationsTable;
  account_sessions: AccountSessionsTable;
  login_failures: LoginFailuresTable;
  password_resets: PasswordResetsTable;
  oauth_artifacts: OAuthArtifactsTable;
  oauth_server_clients: OAuthServerClientsTable;
  billing_accounts: BillingAccountsTable;
  billing_transactions: BillingTransactionsTable;
  usage_records: UsageRecordsTable;
  billing_periods: BillingPeriodsTable;
  usage_hourly: UsageHourlyTable;
  usage_rollups: UsageRollupsTable;
  billing_charges: BillingChargesTable;
  billing_checkouts: BillingCheckoutsTable;
  billing_provider_events: BillingProviderEventsTable;
}

export interface BillingAccountsTable {
  project_id: string;
  balance_micros: number;
  auto_recharge_enabled: number;
  auto_recharge_amount_micros: number | null;
  auto_recharge_threshold_micros: number | null;
  monthly_budget_micros: number | null;
  auto_recharge_paused: number;
  auto_recharge_error: string | null;
  last_recharge_at: number | null;
  balance_low: number;
  plan: string | null;
  subscription_status: string | null;
  subscription_ref: string | null;
  period_start: number | null;
  period_end: number | null;
  cancel_at_period_end: number;
  customer_ref: string | null;
  payment_method: string | null;
  updated_at: number;
}

export interface BillingTransactionsTable {
  seq: Generated<number>;
  id: string;
  project_id: string;
  amount_micros: number;
  kind: string;
  reference: string | null;
  reference_type: string | null;
  description: string;
  dedupe: string;
  actor: string | null;
  created_at: number;
}

export interface UsageRecordsTable {
  id: Generated<number>;
  project_id: string;
  usage_type: string;
  unit: string;
  quantity: number;
  room_name: string | null;
  user_id: string | null;
  role: string | null;
  provider: string | null;
  model: string | null;
  client: string | null;
  annotations: string | null;
  recorded_at: number;
}

export interface BillingPeriodsTable {
  period_start: number;
  period_end: number;
  records: number;
  charges: number;
  priced_at: number;
}

export interface BillingChargesTable {
  project_id: string;
  period_start: number;
  price_id: string;
  usage_type: string;
  quantity: number;
  billable: number;
  amount_micros: number;
  transaction_id: string | null;
}

export interface BillingCheckoutsTable {
  id: string;
  project_id: string;
  kind: string;
  plan: string | null;
  amount_micros: number | null;
  provider: string;
  provider_ref: string | null;
  success_url: string;
  cancel_url: string;
  status: string;
  actor: string | null;
  created_at: number;
  expires_at: number;
  completed_at: number | null;
}

export interface BillingProviderEventsTable {
  id: string;
  type: string;
  received_at: number;
}

export interface UsageHourlyTable {
  project_id: string;
  period_start: number;
  usage_type: string;
  unit: string;
  provider: string | null;
  model: string | null;
  quantity: number;
  records: number;
}

export interface UsageRollupsTable {
  period_start: number;
  period_end: number;
  rows: number;
  rolled_at: number;
}
