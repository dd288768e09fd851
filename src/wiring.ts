import type { Config } from "./config.js";
import { systemClock, type Clock } from "./core/clock.js";
import { Sealer } from "./core/crypto.js";
import { EventBus } from "./core/events.js";
import { LocalInvalidator, PgInvalidator, type Invalidator } from "./core/invalidation.js";
import { migrate, openStore } from "./store/db.js";
import { UsersService } from "./users/service.js";
import { ProjectsService } from "./projects/service.js";
import { ApiKeysService } from "./api-keys/service.js";
import { AuthService } from "./auth/service.js";
import { PricingService } from "./pricing/service.js";
import { RoomsService } from "./rooms/service.js";
import { GrantsService } from "./grants/service.js";
import { RoomConnector } from "./rooms/connect.js";
import { SharesService } from "./shares/service.js";
import { OAuthClientsService } from "./oauth/service.js";
import { AuthorizationServer } from "./oauth/server.js";
import { AdminService } from "./admin/service.js";
import { Mailer } from "./mailer/mailer.js";
import { InvitationsService } from "./accounts/invitations.js";
import { SignInService } from "./accounts/sign-in.js";
import { ParticipantTokens } from "./tokens/service.js";
import { SessionsService } from "./sessions/service.js";
import { RoomServer } from "./room-server/server.js";
import { BlobRoomStorage } from "./room-server/storage.js";
import { WebhooksService } from "./webhooks/service.js";
import { WebhookDispatcher } from "./webhooks/dispatcher.js";
import { McpDiscovery } from "./mcp/service.js";
import { rootLogger } from "./core/logging.js";
import { MetricsService } from "./metrics/service.js";
import { SERVER_VERSION } from "./version.js";
import { openBlobStore } from "./blobs/index.js";
import { StorageService } from "./storage/service.js";
import { QueuesService } from "./queues/service.js";
import { MailboxesService } from "./mailboxes/service.js";
import { MailService } from "./mail/service.js";
import { DetachedAttachmentSink, StorageAttachmentSink } from "./mail/attachments.js";
import { SchedulerService } from "./scheduler/service.js";
import { SchedulerEngine } from "./scheduler/engine.js";
import { EventCatalog } from "./webhooks/catalog.js";
import { domains } from "./domains.js";
import { AuditService } from "./audit/service.js";
import { IdempotencyService } from "./idempotency/index.js";
import { KeyringService } from "./keyring/service.js";
import { SecretsService } from "./secrets/service.js";
import { ServicesService } from "./services/service.js";
import { CallHandoff } from "./calls/service.js";
import { join } from "node:path";
import { detectRuntime, type RuntimeAvailability } from "./runtime/index.js";
import { Launcher } from "./hosting/launch.js";
import { ServiceHost } from "./hosting/host.js";
import { servicesToolkit } from "./hosting/toolkits/services.js";
import { containersToolkit } from "./hosting/toolkits/containers.js";
import { TaskContainers } from "./hosting/tasks.js";
import { SyncDocuments } from "./sync/documents.js";
import { syncToolkit } from "./sync/toolkit.js";
import { FileJournal, StoreJournal } from "./sync/journal.js";
import { BillingService } from "./billing/service.js";
import { UsageMeter } from "./billing/meter.js";
import { BillingEngine } from "./billing/engine.js";
import { UsageReports } from "./billing/usage.js";
import { LocalProvider } from "./billing/providers.js";

/** Open the store, migrate it and wire every service. The one place that knows how the parts fit. */
export async function createContext(config: Config, opts: { clock?: Clock; listen?: boolean; logStream?: { write(line: string): void } } = {}) {
  const clock = opts.clock ?? systemClock;
  // One root logger per process (JSON lines, or pretty on a terminal: MESHAGENT_LOG_FORMAT); each area logs as a child.
  const log = rootLogger(config.logLevel, config.logFormat, opts.logStream);
  const store = openStore(config.databaseUrl, { pool: config.dbPool });
  await migrate(store);
  let invalidator: Invalidator;
  if (store.dialect === "postgres" && opts.listen !== false) {
    const pgInv = new PgInvalidator(config.databaseUrl);
    await pgInv.start();
    invalidator = pgInv;
  } else invalidator = new LocalInvalidator();
  const sealer = new Sealer(config.masterKey);
  // Master-key rotation (rotate-master-key): the keyring comes from master_keys; servers re-read it every second.
  const keyring = new KeyringService(store.db, sealer, config.masterKey, invalidator, {
    log: (msg, err) => process.stderr.write(JSON.stringify({ level: 40, time: Date.now(), msg, err: String((err as Error)?.message ?? err) }) + "\n"),
  });
  await keyring.load().catch(async (err) => {
    await invalidator.close();
    await store.close();
    throw err;
  });
  if (opts.listen !== false) keyring.start();
  const bus = new EventBus();
  const users = new UsersService(store.db, clock);
  const projects = new ProjectsService(store.db, clock, users, bus, invalidator);
  const apiKeys = new ApiKeysService(store.db, clock, sealer, bus, invalidator);
  const tokens = new ParticipantTokens(store.db, clock, sealer, apiKeys, invalidator, config.tokenTtlSeconds);
  const auth = new AuthService(users, projects, clock, apiKeys, invalidator, tokens);
  const admin = new AdminService(store.db, clock, (userId) => auth.revokeUserTokens(userId));
  const pricing = new PricingService(config.pricingFile);
  const rooms = new RoomsService(store.db, clock, bus);
  const grants = new GrantsService(store.db, clock, bus, rooms, users, projects, invalidator);
  const roomConnector = new RoomConnector(grants, tokens, () => config.publicUrl);
  const shares = new SharesService(store.db, clock, bus, rooms, tokens, () => config.publicUrl);
  const oauthClients = new OAuthClientsService(store.db, clock, sealer, bus);
  // room.call handoffs (the room server's room.call requests, and the dispatcher for webhooks with action "call");
  // the WebSocket handoff gives its socket to the room server, built further down.
  const calls = new CallHandoff(
    {
      db: store.db,
      clock,
      sealer,
      tokens,
      rooms,
      publicUrl: () => config.publicUrl,
      sockets: () => roomServer,
      log: log.child({ name: "calls" }),
    },
    { ...config.calls, allowPrivate: config.webhooks.allowPrivate, maxMessageBytes: config.rooms.maxMessageBytes },
  );
  // Outbound mail (invitations): through MESHAGENT_SMTP_RELAY_URL, else logged. Invitations are an outbox written in
  // the transaction that invited someone unknown, sent after the commit and retried by a sweep.
  const mailer = new Mailer(config.outboundMail, log.child({ name: "mailer" }));
  const invitations = new InvitationsService(store.db, clock, sealer, mailer, users, projects, () => config.publicUrl, log.child({ name: "invitations" }));
  const signIn = new SignInService(store.db, clock, users, sealer, {
    mailer,
    publicUrl: () => config.publicUrl,
    log: log.child({ name: "accounts" }),
  });
  // The OAuth 2.0 authorization server (oidc-provider): its tokens are resolved by the bearer check; revocations reach
  // every process's cache through the invalidator. The official CLI's client is registered at first start.
  const oauthServer = new AuthorizationServer({
    db: store.db,
    clock,
    sealer,
    masterKey: config.masterKey,
    users,
    publicUrl: () => config.publicUrl,
    revoked: (key) => auth.revokeUserTokens(key),
  });
  auth.useOAuth(oauthServer);
  await oauthServer.seed();
  if (opts.listen !== false) oauthServer.start();
  bus.on((ev) => {
    if (ev.type === "oauth_client.deleted") void oauthServer.revokeClient(String((ev.data as { client_id: string }).client_id)).catch(() => {});
  });
  bus.subscribeTx((q, ev) => invitations.onEvent(q, ev));
  bus.on((ev) => invitations.onCommitted(ev));
  // Billing: usage.recorded events become usage records in their own transactions; counted usage (API requests, webhook
  // deliveries) is flushed every MESHAGENT_BILLING_METER_FLUSH; the billing job prices closed hours into debits.
  const meter = new UsageMeter(store.db, clock, config.billing.meterFlushMs, log.child({ name: "billing" }));
  meter.subscribe(bus);
  // Stripe's SDK is loaded only when it is the payment provider.
  const stripeProvider = config.billing.provider === "stripe" ? new (await import("./billing/stripe.js")).StripeProvider(config.billing.stripe) : null;
  const billing = new BillingService(
    {
      db: store.db,
      clock,
      bus,
      pricing,
      provider: stripeProvider ?? new LocalProvider(() => config.publicUrl),
      log: log.child({ name: "billing" }),
    },
    config.billing,
  );
  const billingEngine = new BillingEngine(
    { db: store.db, clock, pricing, billing, meter, log: log.child({ name: "billing" }) },
    { intervalMs: config.billing.intervalMs, graceMs: config.billing.graceMs },
  );
  // MESHAGENT_BILLING_ENFORCE: connect_share, service starts and queue sends ask the ledger too (connect_room's route does).
  shares.admit = (projectId) => billing.enforce(projectId);
  const usageReports = new UsageReports({ db: store.db, dialect: store.dialect, clock, pricing });
  if (opts.listen !== false) meter.start();
  const webhookDispatcher = new WebhookDispatcher(store, clock, sealer, config.webhooks, log.child({ name: "webhooks" }), calls);
  // What a webhook may subscribe to: the union of the events every domain declares.
  const catalog = new EventCatalog(domains.flatMap((d) => d.events ?? []));
  webhookDispatcher.onAttempt = (projectId) => meter.count(projectId, { usage_type: "webhooks", unit: "delivery", quantity: 1 });
  const webhooks = new WebhooksService(store.db, clock, sealer, bus, config.webhooks, webhookDispatcher, catalog);
  const mcp = new McpDiscovery(config.mcp);
  const blobs = await openBlobStore(config);
  const storage = new StorageService(store.db, store.dialect, blobs, clock, bus, projects, {
    maxUploadBytes: config.maxUploadBytes,
    maxConcurrentUploads: config.maxConcurrentUploads,
    log: (msg, err) => process.stderr.write(JSON.stringify({ level: 40, time: Date.now(), msg, err: String((err as Error)?.message ?? err) }) + "\n"),
  });
  // Servers recover interrupted writes and sweep dead uploads' leftovers; one-shot CLI commands don't.
  if (opts.listen !== false) storage.start();
  const queues = new QueuesService(store, clock, invalidator);
  const mailboxes = new MailboxesService(store.db, clock, rooms, projects, users);
  // Attachments go to the room's storage (rooms/<room id>/… in the BlobStore).
  const mail = new MailService(config.smtp, store.db, mailboxes, queues, new StorageAttachmentSink(storage), log.child({ name: "smtp" }));
  // Scheduled tasks write storage_write_path files into the same room storage as mail attachments, from inside the
  // run's transaction: hence the detached writer.
  const scheduler = new SchedulerService(store, clock, rooms, config.scheduler, invalidator);
  const schedulerEngine = new SchedulerEngine(store, clock, queues, bus, new DetachedAttachmentSink(storage), config.scheduler);
  scheduler.onChange(() => schedulerEngine.wake());
  // Secrets (sealed, AAD = row id) and the services that name them; room deletion cascades to both.
  const secrets = new SecretsService(store.db, store.dialect, clock, sealer, bus, rooms);
  const services = new ServicesService(store.db, clock, bus, invalidator, rooms, secrets);
  const sessions = new SessionsService(store.db, clock, bus, () => config.publicUrl);
  // Idempotency-Key on POST (the hook app.ts installs); the app sweeps expired keys while it runs.
  const idempotency = new IdempotencyService(store.db, clock, sealer, config.idempotency);
  // The audit log (written by the hook app.ts installs); servers sweep entries past their retention, CLI commands don't.
  const audit = new AuditService(store.db, clock, {
    retentionDays: config.auditRetentionDays,
    log: (msg, err) => process.stderr.write(JSON.stringify({ level: 40, time: Date.now(), msg, err: String((err as Error)?.message ?? err) }) + "\n"),
  });
  if (opts.listen !== false) audit.start();
  // Room storage: rooms/<room id>/… in the BlobStore, through the storage service (usage, events), where mail
  // attachments and scheduler files go too.
  const roomStorage = new BlobRoomStorage(storage);
  // The container runtime (Docker Engine API): probed by servers; one-shot CLI commands never start containers.
  const runtime: RuntimeAvailability =
    opts.listen === false ? { status: "no_runtime", reason: "not probed (a one-shot command)" } : await detectRuntime(config.docker.host, { timeoutMs: 3000 });
  // Services in rooms (src/hosting): containers get the official client's environment; they join through room.call.
  const launcher = new Launcher({
    tokens,
    secrets,
    publicUrl: () => config.publicUrl,
    storage: blobs.kind === "file" ? { kind: "file", root: config.storageUrl } : { kind: "s3", url: config.storageUrl },
    config: config.hosting,
    scratchDir: join(config.dataDir, "containers"),
  });
  const hosting = new ServiceHost(
    {
      db: store.db,
      clock,
      bus,
      services,
      sessions,
      calls,
      launcher,
      runtime,
      nodeId: () => roomServer.nodeId,
      isNodeDead: (id) => roomServer.ownership.isNodeDead(id),
      failOrphanedRuns: (isOrphan) => schedulerEngine.failOrphanedContainerRuns(isOrphan),
      refusal: (projectId) => billing.refusal(projectId),
      log: log.child({ name: "hosting" }),
    },
    config.hosting,
  );
  hosting.toolkits = {
    services: servicesToolkit(hosting),
    containers: containersToolkit({
      runtime: () => hosting.runtime,
      reason: () => (runtime.status === "no_runtime" ? runtime.reason : ""),
      launcher,
      services,
      host: hosting,
      storage: roomStorage,
      maxContainersPerProject: config.hosting.maxContainersPerProject,
      nodeId: () => roomServer.nodeId,
      log: log.child({ name: "containers" }),
    }),
  };
  // Scheduled tasks with a container target run through the same launcher.
  schedulerEngine.containers = new TaskContainers({ runtime, launcher, host: hosting, nodeId: () => roomServer.nodeId, clock }, config.hosting);
  // Sync documents (Yjs): one Y.Doc per open path in the room's process; room files plus a journal of acknowledged updates.
  const documents = new SyncDocuments({
    db: store.db,
    clock,
    storage: roomStorage,
    journal: config.sync.journal === "file" ? new FileJournal(config.sync.journalDir) : new StoreJournal(store.db),
    log: log.child({ name: "sync" }),
  });
  const roomServer = new RoomServer(
    {
      db: store.db,
      clock,
      bus,
      invalidator,
      tokens,
      rooms,
      queues,
      sessions,
      storage: roomStorage,
      secrets,
      calls,
      hosting,
      toolkits: { sync: syncToolkit(documents, { sessions, bus, db: store.db }) },
      refusal: (projectId) => billing.refusal(projectId),
      storageBusy: (room, path) =>
        documents.isOpen(room, path) ? `"${path}" is open as a sync document; it cannot be replaced, deleted or moved until every participant closed it` : null,
    },
    { ...config.rooms, publicUrl: () => config.publicUrl, masterKey: keyring.currentKey },
  );
  // Prometheus metrics (GET /metrics), unless MESHAGENT_METRICS=false.
  const metrics = config.metrics.enabled
    ? new MetricsService({
        store,
        clock,
        activeRooms: () => roomServer.activeRooms(),
        webhookFailures: () => webhookDispatcher.failures,
        version: SERVER_VERSION,
      })
    : null;
  return {
    config,
    clock,
    log,
    metrics,
    store,
    sealer,
    /** Follows master-key rotations into the sealer; its poll runs in servers and is stopped by close(). */
    keyring,
    bus,
    invalidator,
    users,
    projects,
    apiKeys,
    auth,
    pricing,
    rooms,
    grants,
    roomConnector,
    shares,
    oauthClients,
    admin,
    mailer,
    invitations,
    signIn,
    /** The OAuth 2.0 authorization server (/oauth/*); `sweep()` removes expired artifacts. */
    oauthServer,
    tokens,
    webhooks,
    /** MCP discovery (POST /mcp/discover): connects out through the guarded fetch of core/ssrf.ts. */
    mcp,
    /** Started by `serve` (and the test server), stopped by close(). */
    webhookDispatcher,
    /** room.call handoffs (`calls.call`, used by the room server) and the project's call-signing secret. */
    calls,
    /** The blob store (local directory or S3); room storage uses it too, with keys from blobs/keys.ts. */
    blobs,
    storage,
    /** Durable room queues (mailboxes, scheduler, room server). */
    queues,
    mailboxes,
    /** Inbound SMTP; started by `serve` (and the test harness) when MESHAGENT_SMTP_PORT is set. */
    mail,
    /** Scheduled tasks (CRUD); the engine below fires them. */
    scheduler,
    /** Started by `serve` (and the test harness); `tick()` fires what is due now. */
    schedulerEngine,
    /** Project and room secrets (values sealed at rest). */
    secrets,
    /** Project and room services (ServiceSpec records; the runtime's view in `records`). */
    services,
    /** Room sessions: participants, events, spans, metrics (REST §6.6 and the OTLP receiver). */
    sessions,
    /** The audit log of mutating calls; its retention sweep runs in servers and is stopped by close(). */
    audit,
    /** Idempotency keys of POST requests and their stored responses. */
    idempotency,
    /** Room-scoped storage behind the room server's storage toolkit. */
    roomStorage,
    /** The WebSocket room server; app.ts attaches it to the HTTP server. */
    roomServer,
    /** Whether containers can run here (the Docker Engine API answered), and the runtime when it did. */
    runtime,
    /** Services running in rooms (started and stopped with sessions), container reconciliation (app.ts starts it). */
    hosting,
    launcher,
    /** Sync documents open in this process (the room `sync` toolkit). */
    documents,
    /** The ledger, checkout, subscriptions, auto-recharge and enforcement (src/billing). */
    billing,
    /** Usage metering: usage.recorded events and counted usage into usage_records. */
    meter,
    /** The billing job (pricing, renewals, auto-recharge); `serve` starts it unless MESHAGENT_BILLING_ENABLED=false. */
    billingEngine,
    /** get_usage. */
    usageReports,
    /** The Stripe client when MESHAGENT_BILLING_PROVIDER=stripe (its webhook route verifies with it). */
    stripe: stripeProvider?.stripe ?? null,
    async close() {
      await roomServer.stop();
      await hosting.close();
      await documents.close();
      await webhookDispatcher.stop();
      await billingEngine.stop();
      await meter.stop();
      await invitations.stop();
      oauthServer.stop();
      mailer.close();
      calls.close();
      await schedulerEngine.stop();
      await mail.stop();
      await queues.shutdown();
      await storage.stop();
      await audit.stop();
      await keyring.stop();
      await blobs.close();
      await invalidator.close();
      await store.close();
    },
  };
}
