import type { Domain } from "./domain.js";
import { projectsDomain } from "./projects/index.js";
import { usersDomain } from "./users/index.js";
import { apiKeysDomain } from "./api-keys/index.js";
import { pricingDomain } from "./pricing/index.js";
import { roomsDomain } from "./rooms/index.js";
import { grantsDomain } from "./grants/index.js";
import { sharesDomain } from "./shares/index.js";
import { tokensDomain } from "./tokens/index.js";
import { mailboxesDomain } from "./mailboxes/index.js";
import { sessionsDomain } from "./sessions/index.js";
import { roomServerDomain } from "./room-server/index.js";
import { webhooksDomain } from "./webhooks/index.js";
import { mcpDomain } from "./mcp/index.js";
import { storageDomain } from "./storage/index.js";
import { schedulerDomain } from "./scheduler/index.js";
import { auditDomain } from "./audit/index.js";
import { idempotencyDomain } from "./idempotency/index.js";
import { secretsDomain } from "./secrets/index.js";
import { servicesDomain } from "./services/index.js";
import { callsDomain } from "./calls/index.js";
import { hostingDomain } from "./hosting/index.js";
import { oauthDomain } from "./oauth/index.js";
import { adminDomain } from "./admin/index.js";
import { accountsDomain } from "./accounts/index.js";
import { billingDomain } from "./billing/index.js";
import { metricsDomain } from "./metrics/index.js";
import { consoleDomain } from "./console/index.js";

/** Every area of the app, in registration order. A new area adds its `index.ts` here (and its migration). */
export const domains: Domain[] = [
  projectsDomain,
  usersDomain,
  apiKeysDomain,
  pricingDomain,
  roomsDomain,
  grantsDomain,
  sharesDomain,
  tokensDomain,
  mailboxesDomain,
  sessionsDomain,
  roomServerDomain,
  webhooksDomain,
  mcpDomain,
  storageDomain,
  schedulerDomain,
  auditDomain,
  idempotencyDomain,
  secretsDomain,
  servicesDomain,
  callsDomain,
  hostingDomain,
  oauthDomain,
  adminDomain,
  accountsDomain,
  billingDomain,
  metricsDomain,
  consoleDomain,
];
