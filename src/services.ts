import type { Config } from "./config.js";
import type { AppContext } from "./context.js";
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
import { SharesService } from "./shares/service.js";
import { ParticipantTokens } from "./tokens/service.js";
import { QueuesService } from "./queues/service.js";
import { MailboxesService } from "./mailboxes/service.js";
import { MailService } from "./mail/service.js";
import { FileAttachmentSink } from "./mail/attachments.js";
import { join } from "node:path";
import { SessionsService } from "./sessions/service.js";
import { RoomServer } from "./room-server/server.js";
import { LocalRoomStorage } from "./room-server/storage.js";

/** Open the store, migrate it and wire every service. The one place that knows how the parts fit. */
export async function createContext(config: Config, opts: { clock?: Clock; listen?: boolean } = {}): Promise<AppContext & { close(): Promise<void> }> {
  const clock = opts.clock ?? systemClock;
  const store = openStore(config.databaseUrl);
  await migrate(store);
  let invalidator: Invalidator;
  if (store.dialect === "postgres" && opts.listen !== false) {
    const pgInv = new PgInvalidator(config.databaseUrl);
    await pgInv.start();
    invalidator = pgInv;
  } else invalidator = new LocalInvalidator();
  const sealer = new Sealer(config.masterKey);
  const bus = new EventBus();
  const users = new UsersService(store.db, clock);
  const projects = new ProjectsService(store.db, clock, users, bus, invalidator);
  const apiKeys = new ApiKeysService(store.db, clock, sealer, bus, invalidator);
  const tokens = new ParticipantTokens(store.db, clock, sealer, apiKeys, invalidator, config.tokenTtlSeconds);
  const auth = new AuthService(store.db, clock, apiKeys, invalidator, tokens);
  const pricing = new PricingService(config.pricingFile);
  const rooms = new RoomsService(store.db, clock, bus);
  const grants = new GrantsService(store.db, clock, bus, rooms, users, projects);
  const shares = new SharesService(store.db, clock, bus, rooms, tokens, () => config.publicUrl);
  const queues = new QueuesService(store, clock, invalidator);
  const mailboxes = new MailboxesService(store.db, clock, rooms, projects, users);
  // Attachments go to the room's storage: <data dir>/storage/rooms/<room id>/… (the BlobStore can replace this sink).
  const mail = new MailService(config.smtp, store.db, mailboxes, queues, new FileAttachmentSink(join(config.dataDir, "storage", "rooms")), config.logLevel);
  const sessions = new SessionsService(store.db, clock, bus, () => config.publicUrl);
  // Room storage: the same directory the mail attachments go to (the BlobStore can replace LocalRoomStorage).
  const roomStorage = new LocalRoomStorage(join(config.dataDir, "storage", "rooms"), join(config.dataDir, "storage", "room-meta"));
  const roomServer = new RoomServer(
    { db: store.db, clock, bus, invalidator, tokens, rooms, queues, sessions, storage: roomStorage },
    { ...config.rooms, publicUrl: () => config.publicUrl, masterKey: config.masterKey },
  );
  return {
    config,
    clock,
    store,
    sealer,
    bus,
    invalidator,
    users,
    projects,
    apiKeys,
    auth,
    pricing,
    rooms,
    grants,
    shares,
    tokens,
    queues,
    mailboxes,
    mail,
    sessions,
    roomStorage,
    roomServer,
    async close() {
      await roomServer.stop();
      await mail.stop();
      queues.shutdown();
      await invalidator.close();
      await store.close();
    },
  };
}
