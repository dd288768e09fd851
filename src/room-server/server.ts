import type { IncomingMessage, Server } from "node:http";
import { KeyedSerial } from "../core/serial.js";
import type { Duplex } from "node:stream";
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { WebSocket, WebSocketServer } from "ws";
import type { FastifyBaseLogger } from "fastify";
import type { Clock } from "../core/clock.js";
import type { EventBus } from "../core/events.js";
import type { Invalidator } from "../core/invalidation.js";
import { isObj } from "../core/json.js";
import type { DB } from "../store/db.js";
import type { RoomsService, RoomRow } from "../rooms/service.js";
import { roomUrl } from "../rooms/service.js";
import { grantOf, type ParticipantClaims, type ParticipantTokens } from "../tokens/service.js";
import type { QueuesService } from "../queues/service.js";
import type { SessionRow, SessionsService } from "../sessions/service.js";
import { Connection, type Toolkit } from "./connection.js";
import { AgentsRouter } from "./agents.js";
import type { CallHandoff } from "../calls/service.js";
import { ActiveRoom } from "./room.js";
import { Ownership, type NodeInfo } from "./ownership.js";
import { RoomScope } from "./scope.js";
import { pack } from "./protocol.js";
import type { RoomStorage } from "./storage.js";
import { queuesToolkit } from "./toolkits/queues.js";
import { messagingToolkit } from "./toolkits/messaging.js";
import type { RoomsConfig } from "./config.js";
import { storageToolkit } from "./toolkits/storage.js";
import { secretsToolkit, type RoomSecrets } from "./toolkits/secrets.js";
import { developerToolkit } from "./toolkits/developer.js";

/** The room server's settings: the rooms part of the config (config.ts documents each variable) and two of its own. */
export type RoomServerConfig = Omit<RoomsConfig, "otlpBodyLimit" | "otlpMaxRowsPerSession"> & {
  publicUrl: () => string;
  masterKey: Buffer;
};

export interface RoomServerDeps {
  /** Why a project may not send to queues now (billing enforcement), else null. */
  refusal?: (projectId: string) => Promise<string | null>;
  db: DB;
  clock: Clock;
  bus: EventBus;
  invalidator: Invalidator;
  tokens: ParticipantTokens;
  rooms: RoomsService;
  queues: QueuesService;
  sessions: SessionsService;
  storage: RoomStorage;
  /** room.call handoffs (src/calls): the room server validates the request, the handoff delivers it. */
  calls: Pick<CallHandoff, "call">;
  /** Room secrets behind the secrets toolkit (SecretsService). */
  secrets: RoomSecrets;
  /** The services of rooms (src/hosting): told when sessions start and end; absent, rooms run no services. */
  hosting?: RoomHosting;
  /** More toolkits of other areas (the `sync` toolkit of src/sync). */
  toolkits?: Record<string, Toolkit>;
  /** Why a storage path may not be replaced, deleted or moved now (an open sync document), or null. */
  storageBusy?: (room: ActiveRoom<Connection>, path: string) => string | null;
}

/** What the room server gives the service runtime of one session (logs, ending it). */
export interface RoomControl {
  /** A developer log record from the server itself (a container's output): to the room's watchers and the session. */
  log(type: string, data: Record<string, unknown>): void;
  /** End the session (e.g. `meshagent.room.max-runtime-seconds`): every socket is closed with 1000. */
  end(reason: string, text: string): Promise<void>;
}

/**
 * The room server's side of the service runtime (src/hosting/host.ts implements it): services start with a room's
 * session and stop when it ends; their own agents do not keep a room alive; a call to a toolkit no one hosts yet may
 * start the `on_demand` service that declares it; and the runtime's toolkits (`services`, `containers`).
 */
export interface RoomHosting {
  started(room: ActiveRoom<Connection>, control: RoomControl): void;
  /** The session ended: stop its services (the room server does not wait for them). */
  ended(room: ActiveRoom<Connection>, reason: string): void;
  /** Whether the participant `name` (role `role`) is one of the room's own services' agents. */
  isService(room: ActiveRoom<Connection>, name: string, role: string): boolean;
  /** A call to toolkit `name` that no participant hosts: resolves true once an on_demand service started and hosts it; null when no service declares it. */
  demand(room: ActiveRoom<Connection>, name: string): Promise<boolean> | null;
  toolkits: Record<string, Toolkit>;
}

/** Header a proxying process adds, so the owner never proxies a proxied connection again. */
export const PROXY_HEADER = "x-meshagent-room-proxy";
const SUBPROTOCOL_PREFIX = "meshagent-room.";
const TOPIC = "room_server";
const URL_TTL_MS = 3600_000;
const PING_MS = 30_000;

function tokenOf(req: IncomingMessage, url: URL): string | null {
  const q = url.searchParams.get("token");
  if (q) return q;
  const auth = req.headers.authorization;
  const m = auth ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
  if (m) return m[1].trim();
  for (const p of String(req.headers["sec-websocket-protocol"] ?? "").split(",")) {
    const t = p.trim();
    if (t.startsWith(SUBPROTOCOL_PREFIX) && t.length > SUBPROTOCOL_PREFIX.length) return t.slice(SUBPROTOCOL_PREFIX.length);
  }
  return null;
}

/** Refuse an upgrade with an HTTP status (403 bad token or grant, 404 unknown room: the clients do not retry those). */
function refuse(socket: Duplex, status: number, message: string) {
  if (socket.destroyed) return;
  const text = status === 403 ? "Forbidden" : status === 404 ? "Not Found" : status === 400 ? "Bad Request" : "Service Unavailable";
  const body = JSON.stringify({ error: { code: status === 403 ? "forbidden" : status === 404 ? "not_found" : "unavailable", message } });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

const validCloseCode = (code: number) =>
  (code >= 3000 && code <= 4999) || [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014].includes(code);

/**
 * The room server: WebSocket endpoint `/rooms/{room_name}` on the API's HTTP server (room-protocol.md).
 *
 * A room is served by one process at a time: the holder of its lease (see Ownership). A connection that reaches
 * another process is proxied to the owner (frames copied both ways), or, with proxying off or the owner
 * unreachable, accepted and closed with code 1013 and a reason naming the owner. The heartbeat renews leases and
 * session heartbeats, notices sessions ended elsewhere (terminate from another process, room deletion), flushes
 * room metrics, and ends the sessions of processes that died.
 */
export class RoomServer {
  readonly nodeId = randomUUID();
  readonly ownership: Ownership;
  private readonly rooms = new Map<string, ActiveRoom<Connection>>();
  private readonly locks = new KeyedSerial();
  private readonly wss: WebSocketServer;
  private readonly toolkits: Record<string, Toolkit>;
  private readonly urlKey: Buffer;
  private timer: NodeJS.Timeout | null = null;
  private pinger: NodeJS.Timeout | null = null;
  /** Sockets that answered the last ping (or joined since). */
  private alive = new WeakSet<WebSocket>();
  private started = false;
  private stopping = false;
  private url = "";
  private log: Pick<FastifyBaseLogger, "warn" | "error" | "info"> = { warn() {}, error() {}, info() {} };
  /** Notifications of sessions ended in a room-deletion transaction, run once the room.deleted event says it committed. */
  private pendingDeletes = new Map<string, (() => void)[]>();
  private proxies = new Set<WebSocket>();
  /** Toolkits participants host, the routing of calls to them, room.call (agents.ts). */
  private readonly agents: AgentsRouter;
  private readonly developer: ReturnType<typeof developerToolkit>;

  constructor(
    private readonly deps: RoomServerDeps,
    readonly config: RoomServerConfig,
  ) {
    this.ownership = new Ownership(deps.db, deps.clock, this.nodeId, config.leaseMs);
    this.developer = developerToolkit({ sessions: deps.sessions, clock: deps.clock });
    this.urlKey = createHmac("sha256", config.masterKey).update("room-storage-download-url").digest();
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxMessageBytes + 1024,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) => {
        for (const p of protocols) if (p.startsWith(SUBPROTOCOL_PREFIX)) return p;
        return false;
      },
    });
    this.toolkits = {
      queues: queuesToolkit(deps.queues, deps.refusal),
      messaging: messagingToolkit(),
      storage: storageToolkit(deps.storage, {
        changed: (room, type, data) => this.storageChanged(room, type, data),
        downloadUrl: (roomId, path) => this.downloadUrl(roomId, path),
        maxUploadBytes: config.maxUploadBytes,
        busy: (room, path) => deps.storageBusy?.(room as ActiveRoom<Connection>, path) ?? null,
      }),
      secrets: secretsToolkit({
        secrets: deps.secrets,
        clock: deps.clock,
        requestTimeoutMs: config.secretRequestTimeoutMs,
        oauthAllowPrivate: config.oauthAllowPrivate,
      }),
      developer: this.developer.toolkit,
      ...(deps.hosting?.toolkits ?? {}),
      ...(deps.toolkits ?? {}),
    };
    this.agents = new AgentsRouter({
      calls: deps.calls,
      sessions: deps.sessions,
      clock: deps.clock,
      timeoutMs: config.toolCallTimeoutMs,
      builtins: () => Object.keys(this.toolkits),
      onError: (c, type, detail) => this.recordError(c, type, detail),
      demand: deps.hosting ? (room, name) => deps.hosting!.demand(room, name) : undefined,
    });
    deps.invalidator.subscribe(TOPIC, (key) => this.onNotice(key));
    // Room deletion: its sessions end in the deleting transaction; its sockets close once that committed.
    deps.rooms.onDelete(async (tx, room) => {
      const after: (() => void)[] = [];
      for (const s of await deps.sessions.activeForRoom(room.id, tx)) {
        const fns = await deps.sessions.endInTx(tx, s, "room_deleted");
        if (fns) after.push(...fns);
      }
      this.pendingDeletes.set(room.id, after);
    });
    deps.bus.on((e) => {
      if (e.type !== "room.deleted") return;
      const id = String(e.data.id);
      for (const fn of this.pendingDeletes.get(id) ?? []) fn();
      this.pendingDeletes.delete(id);
      void this.closeRoom(id, 1000, "the room was deleted", "room_deleted");
      void deps.invalidator.publish(TOPIC, `deleted:${id}`).catch(() => {});
      void deps.storage.deleteRoom({ projectId: String(e.project_id), roomId: id }).catch(() => {});
    });
  }

  // ---------------------------------------------------------------- lifecycle

  /** Attach to the HTTP server (upgrade requests) and start the heartbeat once it listens. */
  attach(server: Server, log?: FastifyBaseLogger) {
    if (log) this.log = log.child({ area: "room-server" });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => {});
      this.onUpgrade(req, socket, head).catch((e) => {
        this.log.error({ err: e }, "room upgrade failed");
        refuse(socket, 503, "the room server failed to accept the connection");
      });
    });
  }

  /** End the sessions that dead processes left active (before the server takes requests after a restart). */
  async recover() {
    const verdicts = new Map<string, Promise<boolean>>();
    await this.deps.sessions.reap(this.nodeId, (s) => {
      let v = verdicts.get(s.node_id);
      if (!v) verdicts.set(s.node_id, (v = this.ownership.isNodeDead(s.node_id)));
      return v;
    });
  }

  /** Register this process and start the heartbeat (called once the HTTP server listens). */
  async start(listenUrl: string) {
    if (this.started) return;
    this.started = true;
    this.url = this.config.serverUrl ?? listenUrl;
    await this.ownership.register(this.url);
    await this.beat().catch((e) => this.log.warn({ err: e }, "room server heartbeat failed"));
    this.timer = setInterval(
      () => void this.beat().catch((e) => this.log.warn({ err: e }, "room server heartbeat failed")),
      Math.max(50, Math.floor(this.config.leaseMs / 3)),
    );
    this.timer.unref();
    // Half-open TCP connections (a peer that vanished without a close) are found by pings and dropped, so their
    // participants leave and empty rooms end.
    this.pinger = setInterval(() => this.ping(), PING_MS);
    this.pinger.unref();
  }

  private ping() {
    const sockets = [...this.proxies];
    for (const r of this.rooms.values()) for (const c of r.connections.values()) sockets.push(c.ws);
    for (const ws of sockets) {
      if (!this.alive.has(ws)) {
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      try {
        ws.ping();
      } catch {
        // closing
      }
    }
  }

  /** Close every socket (1012: clients reconnect, possibly to another process), end sessions, release leases. */
  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.pinger) clearInterval(this.pinger);
    for (const p of this.proxies) p.close(1012, "server restarting");
    await Promise.all([...this.rooms.values()].map((r) => this.endRoom(r, "server_shutdown", 1012, "server restarting")));
    await this.deps.sessions.flush();
    if (this.started) await this.ownership.unregister().catch(() => {});
  }

  private async beat() {
    if (this.stopping) return;
    // Only rooms that existed before the queries: a room activated meanwhile has a lease and a session already.
    const rooms = [...this.rooms.values()];
    const held = await this.ownership.heartbeat();
    const activeSessions = await this.deps.sessions.heartbeat(this.nodeId);
    for (const r of rooms) {
      if (this.rooms.get(r.id) !== r) continue;
      if (!activeSessions.has(r.session.id)) {
        // Ended elsewhere: terminated or its room deleted (1000, final), or reaped by another process while this one
        // stalled (1012: the clients reconnect and get a new session).
        const row = await this.deps.db.selectFrom("room_sessions").select("end_reason").where("id", "=", r.session.id).executeTakeFirst();
        if (row?.end_reason === "server_process_died") void this.closeRoom(r.id, 1012, "the session was ended by another server process", "lease_lost");
        else void this.closeRoom(r.id, 1000, row?.end_reason === "room_deleted" ? "the room was deleted" : "the session was terminated", "terminated");
      } else if (!held.has(r.id)) {
        // The lease is gone (this process stalled longer than a lease): another process may serve the room now.
        this.log.warn({ room: r.room.name }, "room lease lost; closing its sockets");
        void this.closeRoom(r.id, 1012, "the room moved to another server process", "lease_lost");
      } else this.flushStats(r);
    }
    // Leases this process holds for rooms it no longer serves (e.g. a failed activation): give them back.
    for (const id of held)
      if (!this.rooms.has(id) && !this.locks.busy(id))
        void this.lock(id, async () => {
          if (!this.rooms.has(id)) await this.ownership.release(id);
        }).catch(() => {});
    const verdicts = new Map<string, Promise<boolean>>();
    await this.deps.sessions.reap(this.nodeId, (s) => {
      let v = verdicts.get(s.node_id);
      if (!v) verdicts.set(s.node_id, (v = this.ownership.isNodeDead(s.node_id)));
      return v;
    });
  }

  private flushStats(r: ActiveRoom<Connection>) {
    const s = r.stats;
    const f = r.flushed;
    if (
      s.messages === f.messages &&
      s.queueSends === f.queueSends &&
      s.queueReceives === f.queueReceives &&
      s.bytesIn === f.bytesIn &&
      s.bytesOut === f.bytesOut &&
      s.toolCalls === f.toolCalls
    )
      return;
    const toolCalls = s.toolCalls - f.toolCalls;
    const queueSends = s.queueSends - f.queueSends;
    r.flushed = { ...s };
    const now = this.deps.clock.now();
    const m = (name: string, unit: string, v: number) => this.deps.sessions.serverMetric(r.session.id, name, "sum", unit, v, now);
    void this.deps.sessions
      .addMetrics(r.session.id, [
        m("room.messages", "{message}", s.messages),
        m("room.queue.sent", "{message}", s.queueSends),
        m("room.queue.received", "{message}", s.queueReceives),
        m("room.bytes_in", "By", s.bytesIn),
        m("room.bytes_out", "By", s.bytesOut),
        ...(s.toolCalls ? [m("room.tool_calls", "{call}", s.toolCalls)] : []),
      ])
      .catch(() => {});
    // Usage: the calls routed to hosted toolkits since the last flush, one usage.recorded per flush.
    if (toolCalls > 0 || queueSends > 0) {
      const from = this.toolCallsReportedAt.get(r) ?? Number(r.session.created_at);
      this.toolCallsReportedAt.set(r, now);
      if (toolCalls > 0) void this.deps.sessions.toolCallUsage(r.session, toolCalls, from, now).catch(() => {});
      // Messages sent to the room's queues through the toolkit, metered the same way (usage_type "queue").
      if (queueSends > 0) void this.deps.sessions.intervalUsage(r.session, "queue", "message", queueSends, from, now).catch(() => {});
    }
  }
  private toolCallsReportedAt = new WeakMap<ActiveRoom<Connection>, number>();

  private onNotice(key: string) {
    const i = key.indexOf(":");
    const kind = key.slice(0, i);
    const id = key.slice(i + 1);
    if (kind === "terminate") {
      for (const r of this.rooms.values()) if (r.session.id === id) void this.closeRoom(r.id, 1000, "the session was terminated", "terminated");
    } else if (kind === "deleted") void this.closeRoom(id, 1000, "the room was deleted", "room_deleted");
  }

  /** Serialize activation and shutdown of one room. */
  private lock<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(roomId, fn);
  }

  // ---------------------------------------------------------------- upgrade

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const url = new URL(req.url ?? "/", "http://localhost");
    const m = /^\/rooms\/([^/]+)\/?$/.exec(url.pathname);
    if (!m) return refuse(socket, 404, `no WebSocket endpoint at ${url.pathname}`);
    let roomName: string;
    try {
      roomName = decodeURIComponent(m[1]);
    } catch {
      return refuse(socket, 404, "room not found");
    }
    if (this.stopping) return refuse(socket, 503, "the server is shutting down");
    const token = tokenOf(req, url);
    if (!token) return refuse(socket, 403, "a participant token is required (?token=, Authorization: Bearer, or the meshagent-room.<jwt> subprotocol)");
    let claims: ParticipantClaims;
    try {
      claims = await this.deps.tokens.verify(token);
    } catch (e) {
      return refuse(socket, 403, (e as Error).message);
    }
    if (grantOf(claims, "room") !== roomName) return refuse(socket, 403, `the token's room grant does not allow room "${roomName}"`);
    let room: RoomRow;
    try {
      room = await this.deps.rooms.byName(claims.sub, roomName);
    } catch {
      return refuse(socket, 404, `room "${roomName}" not found`);
    }
    const proxied = typeof req.headers[PROXY_HEADER] === "string";
    const got = await this.activate(room);
    if (!got.active) {
      if (proxied || !this.config.proxy || !got.owner.url) return this.refuseNotOwner(req, socket, head, got.owner);
      return this.proxy(req, socket, head, got.owner, token, roomName);
    }
    const active = got.active;
    let attached = false;
    try {
      if (socket.destroyed) return;
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        attached = true;
        this.join(active, ws, claims);
      });
    } finally {
      active.pending--;
      if (!attached) this.maybeEmpty(active);
    }
  }

  /** The room's ActiveRoom here (pending + 1), or the live process that owns it. */
  private activate(room: RoomRow): Promise<{ active: ActiveRoom<Connection>; owner?: undefined } | { active?: undefined; owner: NodeInfo }> {
    return this.lock(room.id, async () => {
      const existing = this.rooms.get(room.id);
      if (existing) {
        existing.pending++;
        return { active: existing };
      }
      const owner = await this.ownership.acquire(room.id);
      if (owner) return { owner };
      // A session left active for this room by this very process cannot exist; one of a dead process is reaped.
      for (const s of await this.deps.sessions.activeForRoom(room.id))
        if (s.node_id !== this.nodeId && (await this.ownership.isNodeDead(s.node_id)))
          await this.deps.sessions.end(s, "server_process_died", Number(s.heartbeat_at));
      const session = await this.deps.sessions.start(room, this.nodeId);
      const active = new ActiveRoom<Connection>(room, session);
      active.pending++;
      this.rooms.set(room.id, active);
      this.deps.hosting?.started(active, {
        log: (type, data) => this.developer.write(active, type, data),
        end: (reason, text) => this.endRoom(active, reason, 1000, text),
      });
      return { active };
    });
  }

  private refuseNotOwner(req: IncomingMessage, socket: Duplex, head: Buffer, owner: NodeInfo) {
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // "1013" in the reason: the official client treats such a close during startup as retryable.
      ws.close(1013, `1013 try again later: room served by another server process (${owner.url || owner.id})`.slice(0, 120));
    });
  }

  /** Copy frames between the client and the owning process; close codes and reasons pass through. */
  private proxy(req: IncomingMessage, socket: Duplex, head: Buffer, owner: NodeInfo, token: string, roomName: string) {
    const target = `${owner.url.replace(/^http/i, "ws").replace(/\/+$/, "")}/rooms/${encodeURIComponent(roomName)}`;
    const upstream = new WebSocket(target, {
      headers: { authorization: `Bearer ${token}`, [PROXY_HEADER]: this.nodeId },
      perMessageDeflate: false,
      maxPayload: this.config.maxMessageBytes + 1024,
      handshakeTimeout: 5000,
    });
    const pending: Buffer[] = [];
    let client: WebSocket | null = null;
    upstream.on("unexpected-response", (_r, res) => {
      const status = res.statusCode ?? 503;
      res.resume();
      upstream.terminate();
      if (status === 403 || status === 404) refuse(socket, status, `refused by the room's owner process (${status})`);
      else this.refuseNotOwner(req, socket, head, owner);
    });
    upstream.on("error", () => {
      if (!client) this.refuseNotOwner(req, socket, head, owner);
    });
    upstream.on("message", (data: Buffer, isBinary) => {
      if (client) client.send(data, { binary: isBinary });
      else pending.push(data);
    });
    upstream.on("open", () => {
      if (socket.destroyed) return upstream.close(1001, "client went away");
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        client = ws;
        this.proxies.add(ws);
        this.alive.add(ws);
        ws.on("pong", () => this.alive.add(ws));
        for (const d of pending.splice(0)) ws.send(d, { binary: true });
        ws.on("message", (data: Buffer, isBinary) => {
          if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary });
        });
        ws.on("close", (code, reason) => {
          this.proxies.delete(ws);
          if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING)
            upstream.close(validCloseCode(code) ? code : 1000, reason.toString());
        });
        ws.on("error", () => {});
      });
    });
    upstream.on("close", (code, reason) => {
      if (client && (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING))
        client.close(validCloseCode(code) ? code : 1011, reason.toString());
    });
  }

  // ---------------------------------------------------------------- participants

  private join(active: ActiveRoom<Connection>, ws: WebSocket, claims: ParticipantClaims) {
    const role = grantOf(claims, "role");
    const api = grantOf(claims, "api");
    // The room's own services' agents never keep it alive: they leave the empty timer running.
    const service = this.isService(active, claims.name, typeof role === "string" && role ? role : "user");
    if (active.emptyTimer && !service) {
      clearTimeout(active.emptyTimer);
      active.emptyTimer = null;
    }
    const conn = new Connection(
      ws,
      active,
      {
        id: randomUUID(),
        name: claims.name,
        role: typeof role === "string" && role ? role : "user",
        scope: new RoomScope(isObj(api) ? api : undefined),
        attributes: { name: claims.name },
      },
      this.config,
      this.toolkits,
      (c, type, detail) => this.recordError(c, type, detail),
      this.agents,
    );
    if (active.closing) {
      conn.close(1012, "the room is closing; reconnect");
      return;
    }
    active.connections.set(conn.id, conn);
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      conn.onFrame(buf);
    });
    ws.on("error", () => {});
    this.alive.add(ws);
    ws.on("pong", () => this.alive.add(ws));
    ws.on("close", (code, reason) => this.leave(active, conn, code, reason.toString()));
    conn.send("room_ready", pack({ room_name: active.room.name, room_url: roomUrl(this.config.publicUrl(), active.room.name), session_id: active.session.id }));
    conn.send("connected", pack({ type: "init", participantId: conn.id, attributes: conn.attributes }));
    this.log.info(
      {
        room: active.room.name,
        project_id: active.room.project_id,
        participant_id: conn.id,
        participant: conn.name,
        role: conn.role,
        participants: active.connections.size,
      },
      `${conn.name} joined room ${active.room.name} as ${conn.role}`,
    );
    void this.deps.sessions
      .join(active.session, { id: conn.id, name: conn.name, role: conn.role }, active.connections.size)
      .catch((e) => this.log.warn({ err: e }, "could not record a join"));
    if (service) this.maybeEmpty(active);
  }

  private isService(active: ActiveRoom<Connection>, name: string, role: string) {
    return !!this.deps.hosting?.isService(active, name, role);
  }

  /** Participants that keep the room alive: all but the room's own services' agents. */
  private occupants(active: ActiveRoom<Connection>) {
    let n = 0;
    for (const c of active.connections.values()) if (!this.isService(active, c.name, c.role)) n++;
    return n;
  }

  private leave(active: ActiveRoom<Connection>, conn: Connection, code: number, reason: string) {
    if (conn.closed) return;
    conn.shutdown();
    active.connections.delete(conn.id);
    active.disableMessaging(conn);
    // Its toolkits go (their calls in flight fail); what the session records of them comes before the leave.
    this.agents.left(conn);
    this.agents.flush(active.session.id);
    this.log.info(
      {
        room: active.room.name,
        project_id: active.room.project_id,
        participant_id: conn.id,
        participant: conn.name,
        close_code: code,
        participants: active.connections.size,
      },
      `${conn.name} left room ${active.room.name} (${code}${reason ? ` ${reason}` : ""})`,
    );
    void this.deps.sessions
      .leave(active.session, { id: conn.id, name: conn.name, role: conn.role }, active.connections.size, {
        close_code: code,
        ...(reason ? { close_reason: reason } : {}),
      })
      .catch((e) => this.log.warn({ err: e }, "could not record a leave"));
    this.maybeEmpty(active);
  }

  private maybeEmpty(active: ActiveRoom<Connection>) {
    if (this.occupants(active) > 0 || active.pending > 0 || active.closing || active.emptyTimer) return;
    active.emptyTimer = setTimeout(() => {
      active.emptyTimer = null;
      void this.lock(active.id, async () => {
        if (this.rooms.get(active.id) !== active || this.occupants(active) > 0 || active.pending > 0) return;
        await this.endRoomLocked(active, "empty", 1000, "");
      });
    }, this.config.emptyTimeoutMs);
    active.emptyTimer.unref();
  }

  private recordErrorsLeft = new WeakMap<ActiveRoom<Connection>, number>();
  private recordError(conn: Connection, type: string, detail: Record<string, unknown>) {
    const left = this.recordErrorsLeft.get(conn.room) ?? 1000;
    if (left <= 0) return; // a misbehaving client cannot flood the session's event log
    this.recordErrorsLeft.set(conn.room, left - 1);
    void this.deps.sessions.event(conn.room.session.id, "error", { kind: type, participant_id: conn.id, name: conn.name, ...detail }).catch(() => {});
  }

  // ---------------------------------------------------------------- ending rooms

  private endRoom(active: ActiveRoom<Connection>, reason: string, code: number, text: string) {
    return this.lock(active.id, () => this.endRoomLocked(active, reason, code, text));
  }

  private async endRoomLocked(active: ActiveRoom<Connection>, reason: string, code: number, text: string) {
    if (this.rooms.get(active.id) !== active) return;
    active.closing = true;
    if (active.emptyTimer) clearTimeout(active.emptyTimer);
    this.rooms.delete(active.id);
    for (const c of active.connections.values()) c.close(code, text);
    this.flushStats(active);
    this.agents.flush(active.session.id);
    try {
      await this.deps.sessions.end(active.session, reason);
    } catch (e) {
      this.log.warn({ err: e }, "could not end a session");
    }
    this.deps.hosting?.ended(active, reason);
    // Only deletes the lease if this process still holds it.
    await this.ownership.release(active.id).catch(() => {});
  }

  /** Close a room served here, if it is (its session is ended with `reason` unless that already happened). */
  async closeRoom(roomId: string, code: number, text: string, reason: string) {
    const r = this.rooms.get(roomId);
    if (r) await this.endRoom(r, reason, code, text);
  }

  /**
   * terminate: end the session (wherever it runs) and close its sockets with 1000. The session row is ended here;
   * the process that serves it closes its sockets on the notice (or at its next heartbeat, if the notice is lost).
   */
  async terminate(session: SessionRow): Promise<void> {
    if (!session.is_active) return;
    const local = session.room_id ? this.rooms.get(session.room_id) : undefined;
    if (local && local.session.id === session.id) {
      await this.endRoom(local, "terminated", 1000, "the session was terminated");
      return;
    }
    await this.deps.sessions.end(session, "terminated");
    await this.deps.invalidator.publish(TOPIC, `terminate:${session.id}`).catch(() => {});
  }

  // ---------------------------------------------------------------- storage helpers

  private storageChanged(room: ActiveRoom, type: string, data: Record<string, unknown>) {
    room.fanout(room.connections.values(), type, data);
    // The storage service publishes storage.file.updated / .deleted itself (with room_id); it has no move.
    if (type !== "storage.file.moved") return;
    void this.deps.bus
      .publish(this.deps.db, { type, project_id: room.room.project_id, data: { ...data, room_name: room.room.name, room_id: room.id } })
      .then((notify) => notify())
      .catch(() => {});
  }

  private sign(roomId: string, path: string, expires: number) {
    return createHmac("sha256", this.urlKey).update(`${roomId}\n${path}\n${expires}`).digest("base64url");
  }

  downloadUrl(roomId: string, path: string): string {
    const expires = this.deps.clock.now() + URL_TTL_MS;
    const p = path.split("/").map(encodeURIComponent).join("/");
    return `${this.config.publicUrl()}/room-storage/${roomId}/${p}?expires=${expires}&signature=${this.sign(roomId, path, expires)}`;
  }

  /** Checks a download URL's signature and expiry. */
  verifyDownload(roomId: string, path: string, expires: number, signature: string): boolean {
    if (!(expires > this.deps.clock.now())) return false;
    const want = Buffer.from(this.sign(roomId, path, expires));
    const got = Buffer.from(signature);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  // ---------------------------------------------------------------- room.call WebSocket handoff (src/calls)

  /**
   * The WebSocket handoff of `room.call` (wire-contract §9, src/calls/service.ts): `ws` is a socket this process
   * opened to a call's target, paused by the caller so no frame is lost; the target speaks the room protocol over it
   * as the participant of `token`. It is served like an upgrade of `/rooms/{room}` with that token: the token
   * verified, the room activated here and the socket joined, or, when another process owns the room, its frames
   * copied to that process. Resolves once joined (or piped); rejects, and closes the socket, when refused.
   */
  async acceptCallSocket(ws: WebSocket, token: string): Promise<void> {
    const refuse = (code: number, reason: string): never => {
      if (ws.readyState === WebSocket.OPEN) ws.close(code, reason.slice(0, 120));
      else ws.terminate();
      throw new Error(reason);
    };
    if (this.stopping) refuse(1012, "the server is shutting down");
    const claims = await this.deps.tokens.verify(token).catch((e: Error) => refuse(1008, e.message));
    const roomName = grantOf(claims, "room");
    if (typeof roomName !== "string" || !roomName) return refuse(1008, "the token has no room grant");
    const room = await this.deps.rooms.byName(claims.sub, roomName).catch(() => refuse(1008, `room "${roomName}" not found`));
    const got = await this.activate(room);
    if (!got.active) {
      if (!this.config.proxy || !got.owner.url)
        return refuse(1013, `1013 try again later: room served by another server process (${got.owner.url || got.owner.id})`);
      return this.pipeCallSocket(ws, got.owner, token, roomName);
    }
    const active = got.active;
    let joined = false;
    try {
      if (ws.readyState !== WebSocket.OPEN) refuse(1001, "the call's target went away");
      this.join(active, ws, claims);
      joined = true;
    } finally {
      active.pending--;
      if (!joined) this.maybeEmpty(active);
    }
    ws.resume();
  }

  /** A handoff socket for a room another process owns: copy its frames to the owner (as `proxy` does for upgrades). */
  private pipeCallSocket(ws: WebSocket, owner: NodeInfo, token: string, roomName: string): Promise<void> {
    const target = `${owner.url.replace(/^http/i, "ws").replace(/\/+$/, "")}/rooms/${encodeURIComponent(roomName)}`;
    const upstream = new WebSocket(target, {
      headers: { authorization: `Bearer ${token}`, [PROXY_HEADER]: this.nodeId },
      perMessageDeflate: false,
      maxPayload: this.config.maxMessageBytes + 1024,
      handshakeTimeout: 5000,
    });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        upstream.terminate();
        if (ws.readyState === WebSocket.OPEN) ws.close(1013, `1013 try again later: ${why}`.slice(0, 120));
        reject(new Error(why));
      };
      upstream.on("unexpected-response", (_r, res) => {
        res.resume();
        fail(`refused by the room's owner process (${res.statusCode ?? "no status"})`);
      });
      upstream.on("error", (e) => fail(`the room's owner process is unreachable: ${e.message}`));
      upstream.on("open", () => {
        if (settled) return;
        settled = true;
        this.proxies.add(ws);
        this.alive.add(ws);
        ws.on("pong", () => this.alive.add(ws));
        ws.on("error", () => {});
        upstream.on("message", (data: Buffer, isBinary) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(data, { binary: isBinary });
        });
        ws.on("message", (data: Buffer, isBinary) => {
          if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary });
        });
        ws.on("close", (code, reason) => {
          this.proxies.delete(ws);
          if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING)
            upstream.close(validCloseCode(code) ? code : 1000, reason.toString());
        });
        upstream.on("close", (code, reason) => {
          if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(validCloseCode(code) ? code : 1011, reason.toString());
        });
        ws.resume();
        resolve();
      });
    });
  }

  // ---------------------------------------------------------------- introspection (tests, metrics)

  /** Rooms served by this process, with their participant counts. */
  activeRooms() {
    return [...this.rooms.values()].map((r) => ({ room_id: r.id, room_name: r.room.name, session_id: r.session.id, participants: r.connections.size }));
  }

  /** The room this process serves now, by id (the service runtime's toolkits and tests). */
  activeRoom(roomId: string): ActiveRoom<Connection> | undefined {
    return this.rooms.get(roomId);
  }
}
