import type { Config } from "./config.js";
import type { Clock } from "./core/clock.js";
import type { Sealer } from "./core/crypto.js";
import type { EventBus } from "./core/events.js";
import type { Invalidator } from "./core/invalidation.js";
import type { Store } from "./store/db.js";
import type { UsersService } from "./users/service.js";
import type { ProjectsService } from "./projects/service.js";
import type { ApiKeysService } from "./api-keys/service.js";
import type { AuthService } from "./auth/service.js";
import type { PricingService } from "./pricing/service.js";
import type { RoomsService } from "./rooms/service.js";
import type { GrantsService } from "./grants/service.js";
import type { SharesService } from "./shares/service.js";
import type { ParticipantTokens } from "./tokens/service.js";
import type { QueuesService } from "./queues/service.js";
import type { MailboxesService } from "./mailboxes/service.js";
import type { MailService } from "./mail/service.js";
import type { SessionsService } from "./sessions/service.js";
import type { RoomServer } from "./room-server/server.js";
import type { RoomStorage } from "./room-server/storage.js";
import type { WebhooksService } from "./webhooks/service.js";
import type { WebhookDispatcher } from "./webhooks/dispatcher.js";
import type { BlobStore } from "./blobs/types.js";
import type { StorageService } from "./storage/service.js";
import type { SchedulerService } from "./scheduler/service.js";
import type { SchedulerEngine } from "./scheduler/engine.js";

/** Everything a route file may use. Built once in services.ts; tests build it too. */
export interface AppContext {
  config: Config;
  clock: Clock;
  store: Store;
  sealer: Sealer;
  bus: EventBus;
  invalidator: Invalidator;
  users: UsersService;
  projects: ProjectsService;
  apiKeys: ApiKeysService;
  auth: AuthService;
  pricing: PricingService;
  rooms: RoomsService;
  grants: GrantsService;
  shares: SharesService;
  tokens: ParticipantTokens;
  webhooks: WebhooksService;
  /** Started by `serve` (and the test server), stopped by close(). */
  webhookDispatcher: WebhookDispatcher;
  /** The blob store (local directory or S3); room storage uses it too, with keys from blobs/keys.ts. */
  blobs: BlobStore;
  storage: StorageService;
  /** Durable room queues (mailboxes, scheduler, room server). */
  queues: QueuesService;
  mailboxes: MailboxesService;
  /** Inbound SMTP; started by `serve` (and the test harness) when MESHAGENT_SMTP_PORT is set. */
  mail: MailService;
  /** Room sessions: participants, events, spans, metrics (REST §6.6 and the OTLP receiver). */
  sessions: SessionsService;
  /** Room-scoped storage behind the room server's storage toolkit. */
  roomStorage: RoomStorage;
  /** The WebSocket room server; app.ts attaches it to the HTTP server. */
  roomServer: RoomServer;
  /** Scheduled tasks (CRUD); the engine below fires them. */
  scheduler: SchedulerService;
  /** Started by `serve` (and the test harness); `tick()` fires what is due now. */
  schedulerEngine: SchedulerEngine;
}
