import type { Migration, MigrationProvider } from "kysely";
import { m0001_identity } from "./0001_identity.js";
import { m0002_rooms } from "./0002_rooms.js";
import { m0003_grants_shares } from "./0003_grants_shares.js";
import { m0006_queues_mailboxes } from "./0006_queues_mailboxes.js";
import { m0008_sessions } from "./0008_sessions.js";
import { m0004_storage } from "./0004_storage.js";
import { m0005_webhooks } from "./0005_webhooks.js";
import { m0007_scheduler } from "./0007_scheduler.js";
import { m0009_idempotency } from "./0009_idempotency.js";
import { m0010_audit } from "./0010_audit.js";
import { m0011_services_secrets } from "./0011_services_secrets.js";
import { m0012_keyring } from "./0012_keyring.js";
import { m0013_calls } from "./0013_calls.js";
import { m0014_hosting } from "./0014_hosting.js";
import { m0015_sync } from "./0015_sync.js";
import { m0016_oauth_clients } from "./0016_oauth_clients.js";
import { m0017_server_admins } from "./0017_server_admins.js";
import { m0018_invitations } from "./0018_invitations.js";
import { m0019_account_sessions } from "./0019_account_sessions.js";
import { m0020_password_resets } from "./0020_password_resets.js";
import { m0021_oauth_server } from "./0021_oauth_server.js";
import { m0022_billing } from "./0022_billing.js";

/**
 * The one migration set, for SQLite and PostgreSQL alike. Names sort in order of application;
 * each area appends its own file here.
 */
export const migrations: Record<string, Migration> = {
  "0001_identity": m0001_identity,
  "0002_rooms": m0002_rooms,
  "0003_grants_shares": m0003_grants_shares,
  "0004_storage": m0004_storage,
  "0005_webhooks": m0005_webhooks,
  "0006_queues_mailboxes": m0006_queues_mailboxes,
  "0007_scheduler": m0007_scheduler,
  "0008_sessions": m0008_sessions,
  "0009_idempotency": m0009_idempotency,
  "0010_audit": m0010_audit,
  "0011_services_secrets": m0011_services_secrets,
  "0012_keyring": m0012_keyring,
  "0013_calls": m0013_calls,
  "0014_hosting": m0014_hosting,
  "0015_sync": m0015_sync,
  "0016_oauth_clients": m0016_oauth_clients,
  "0017_server_admins": m0017_server_admins,
  "0018_invitations": m0018_invitations,
  "0019_account_sessions": m0019_account_sessions,
  "0020_password_resets": m0020_password_resets,
  "0021_oauth_server": m0021_oauth_server,
  "0022_billing": m0022_billing,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
