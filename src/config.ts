import { mkdirSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { hostname } from "node:os";
import { KindGuard, Type, type Static, type TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { WebhookConfig } from "./webhooks/config.js";
import type { CallConfig } from "./calls/config.js";
import type { RoomsConfig } from "./room-server/config.js";
import type { IdempotencyConfig } from "./idempotency/service.js";
import type { RateLimitConfig } from "./auth/rate-limit.js";
import type { McpConfig } from "./mcp/service.js";
import type { BillingConfig } from "./billing/service.js";

export type { RoomsConfig };

/** Typed configuration, read from MESHAGENT_* environment variables once (see {@link ConfigSchema}). */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** The web console's built files (served at /console); null: the build in packages/console/dist. */
  consoleDir: string | null;
  databaseUrl: string;
  /** MESHAGENT_DB_POOL: PostgreSQL connections per process. */
  dbPool: number;
  publicUrl: string;
  masterKey: Buffer;
  tokenTtlSeconds: number;
  bodyLimitBytes: number;
  httpIdleTimeoutMs: number;
  /** Idempotency-Key on POST: how long keys are kept, how long a concurrent request waits (MESHAGENT_IDEMPOTENCY_*). */
  idempotency: IdempotencyConfig;
  /** Request budgets per caller (MESHAGENT_RATE_LIMIT*), optionally shared through Redis. */
  rateLimit: RateLimitConfig;
  pricingFile?: string;
  logLevel: string;
  /** MESHAGENT_TRUST_PROXY, as Fastify's `trustProxy`: false, true, a hop count or proxy addresses. */
  trustProxy: boolean | number | string[];
  /** GET /metrics (MESHAGENT_METRICS) and the bearer it needs (MESHAGENT_METRICS_TOKEN; null: public). */
  metrics: { enabled: boolean; token: string | null };
  /** MESHAGENT_LOG_FORMAT: JSON lines, pretty lines, or pretty on a terminal only. */
  logFormat: "auto" | "json" | "pretty";
  webhooks: WebhookConfig;
  /** room.call handoffs (src/calls): MESHAGENT_CALL_*; their SSRF rule is the webhooks' (MESHAGENT_WEBHOOK_ALLOW_PRIVATE). */
  calls: CallConfig;
  /** MCP discovery (`POST /mcp/discover`): MESHAGENT_MCP_*. */
  mcp: McpConfig;
  /** Where blobs live: a directory (default `<dataDir>/storage`) or `s3://bucket/prefix`. */
  storageUrl: string;
  /** Largest accepted upload in bytes (413 above it). */
  maxUploadBytes: number;
  /** MESHAGENT_MAX_CONCURRENT_UPLOADS: uploads one project may have in progress in this process (429 above it). */
  maxConcurrentUploads: number;
  /** S3 connection settings, read from the standard AWS variables (used when storageUrl is s3://). */
  s3: S3Settings;
  /** Inbound SMTP (mailboxes). Off unless MESHAGENT_SMTP_PORT is set. */
  smtp: SmtpConfig;
  /** Outbound mail (src/mailer): the relay (null: links are logged instead) and the sender. */
  outboundMail: { relayUrl: string | null; from: string };
  /** The room server (WebSocket /rooms/{room}) and sessions. */
  rooms: RoomsConfig;
  /** Scheduled tasks. */
  scheduler: SchedulerConfig;
  /** Billing: the payment provider, the billing job, enforcement (MESHAGENT_BILLING_*, MESHAGENT_STRIPE_*). */
  billing: BillingConfig;
  /** Audit-log entries older than this many days are deleted (0 = keep forever). */
  auditRetentionDays: number;
  /** The container runtime (src/runtime). */
  docker: DockerConfig;
  /** Services running in rooms, toolkit containers and container tasks (src/hosting). */
  hosting: HostingConfig;
  /** Sync documents (src/sync): where acknowledged updates are journaled. */
  sync: { journal: "file" | "store"; journalDir: string };
}

/** MESHAGENT_TRUST_PROXY: `false`/`true`, a hop count, or a comma-separated list of proxy addresses or CIDRs. */
function parseTrustProxy(raw: string): boolean | number | string[] {
  const v = raw.trim().toLowerCase();
  if (v === "" || v === "false" || v === "0") return false;
  if (v === "true") return true;
  if (/^\d+$/.test(v)) return Number(v);
  const list = raw
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  for (const a of list)
    if (!/^[0-9a-f.:]+(\/\d{1,3})?$/i.test(a) && !["loopback", "linklocal", "uniquelocal"].includes(a))
      throw new ConfigError(`MESHAGENT_TRUST_PROXY: expected false, true, a hop count, or proxy addresses/CIDRs (e.g. 127.0.0.1,10.0.0.0/8), got "${raw}"`);
  return list;
}

/** The URL a server listening on host:port is reached at: the host itself, or localhost for a wildcard address. */
export function defaultPublicUrl(host: string, port: number): string {
  const h =
    host === "" || host === "0.0.0.0" || host === "::" || host === "[::]" ? "localhost" : host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

export interface DockerConfig {
  /**
   * The Docker Engine API to start containers on (`unix:///…`, `tcp://…`, `http(s)://…`): MESHAGENT_DOCKER_HOST, else
   * DOCKER_HOST, else `unix:///var/run/docker.sock` when that socket exists; null: no runtime (`none`, or nothing found).
   */
  host: string | null;
}

/** What the service runtime (src/hosting) gives each container, and how it treats crashes. */
export interface HostingConfig {
  /** Memory limit of one container, bytes (0: none). */
  memoryBytes: number;
  /** CPU limit of one container, cores (0: none). */
  cpus: number;
  /** Containers (services, toolkit runs, tasks) one project may have at once. */
  maxContainersPerProject: number;
  /** Restarts of a crashing service before it is `failed`. */
  maxRestarts: number;
  /** First restart delay, doubled on each restart up to `restartMaxMs`. */
  restartBaseMs: number;
  restartMaxMs: number;
  /** How long a port's liveness path may take to answer after the container started. */
  livenessTimeoutMs: number;
  /** The longest a scheduled container task may run before it is stopped and recorded as failed. */
  taskTimeoutMs: number;
}

export interface SchedulerConfig {
  /** Run the engine in `serve` (and the test harness). Off: tasks are stored but never fired by this process. */
  enabled: boolean;
  /** Smallest allowed spacing between two runs of a task, in seconds (MeshAgent: 900). */
  minIntervalSeconds: number;
  /** A due time older than this (seconds) when the engine reaches it counts as missed: the misfire policy decides. */
  misfireGraceSeconds: number;
  /** Runs older than this many days are deleted (0 = keep forever). */
  runRetentionDays: number;
}

export interface S3Settings {
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}

export interface SmtpConfig {
  /** null = no SMTP listener (the default); 0 = a random free port (tests). */
  port: number | null;
  host: string;
  /** Name in the greeting and EHLO answer. */
  hostname: string;
  /** Largest accepted message in bytes (552 above it). */
  maxBytes: number;
  /** PEM files; when both are set the server offers STARTTLS. */
  tlsCert?: string;
  tlsKey?: string;
}

export class ConfigError extends Error {}

/** Units of the `unit` keyword; values are given in this unit (seconds are converted to ms where the config wants ms). */
export type ConfigUnit = "" | "s" | "ms" | "bytes" | "days";

/**
 * Keywords every entry of {@link ConfigSchema} may carry besides the JSON Schema ones. `default` is the value when the
 * variable is unset or empty; variables whose default is derived from others (or generated) have no `default` and
 * are `Type.Optional`, with `defaultText` saying what happens instead.
 */
export interface EnvKeywords {
  description: string;
  unit?: ConfigUnit;
  /** Shown in the README's default column instead of `default`. */
  defaultText?: string;
  /** Never echo the value in an error (keys, passwords, tokens). */
  secret?: boolean;
  /** What a valid value looks like, when the schema alone does not say it well (used in errors and the README). */
  expected?: string;
}

const MiB = 1024 * 1024;
const HTTP_URL = "^https?://[^/]";
const DOCKER_HOST_URL = "^((unix|tcp|https?)://.+|none)$";
/** Where the Docker daemon listens by default on Linux. */
export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * Every environment variable the server reads, once: type and range (JSON Schema via TypeBox), default, unit and
 * meaning. {@link loadConfig} validates the environment against it at start; `npm run docs:config` renders it into the
 * README's configuration table (a test fails when the two disagree). Keep the entries in README order.
 */
export const ConfigSchema = Type.Object({
  MESHAGENT_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: "HTTP port (`0`: any free port)" }),
  MESHAGENT_HOST: Type.String({ default: "127.0.0.1", description: "listen address" }),
  MESHAGENT_DATA_DIR: Type.String({ default: "./data", description: "SQLite file, local storage, generated master key" }),
  MESHAGENT_CONSOLE_DIR: Type.Optional(
    Type.String({
      minLength: 1,
      defaultText: "`packages/console/dist`",
      description: "the web console's built files, served at `/console` (`npm run build -w @meshagent-oss/console` writes the default)",
    }),
  ),
  MESHAGENT_DATABASE_URL: Type.Optional(
    Type.String({ secret: true, defaultText: "`sqlite://<data dir>/meshagent.db`", description: "or `postgres://user@host:5432/db`" }),
  ),
  MESHAGENT_PUBLIC_URL: Type.Optional(
    Type.String({
      pattern: HTTP_URL,
      expected: "an http(s) URL",
      defaultText: "`http://<host>:<port>` (`localhost` when the host is `0.0.0.0` or `::`)",
      description: "the URL clients use (bootstrap writes it to `.env`); room URLs derive from it (`ws(s)://…/rooms/{room}`)",
    }),
  ),
  MESHAGENT_MASTER_KEY: Type.Optional(
    Type.String({
      secret: true,
      expected: "32 bytes as 64 hex characters or base64",
      defaultText: "generated into `<data dir>/master.key` (mode 0600)",
      description: "seals every secret at rest",
    }),
  ),
  MESHAGENT_TOKEN_TTL: Type.Integer({
    minimum: 0,
    default: 6 * 3600,
    unit: "s",
    description: "lifetime of the participant tokens the server mints (`0`: no `exp`)",
  }),
  MESHAGENT_BODY_LIMIT: Type.Integer({ minimum: 0, default: MiB, unit: "bytes", description: "largest JSON body (413 above it)" }),
  MESHAGENT_HTTP_IDLE_TIMEOUT: Type.Number({
    minimum: 0,
    default: 120,
    unit: "s",
    description:
      "how long an HTTP connection may stay silent (a stalled upload, a client that stopped reading) before it is closed; `0` = never. Room WebSockets are not affected",
  }),
  MESHAGENT_IDEMPOTENCY_TTL: Type.Integer({
    minimum: 1,
    default: 24 * 3600,
    unit: "s",
    description: "how long an `Idempotency-Key` and the response it stored are kept, from the key's first request",
  }),
  MESHAGENT_IDEMPOTENCY_WAIT: Type.Number({
    minimum: 0,
    default: 30,
    unit: "s",
    description:
      "how long a POST waits for a concurrent one with the same `Idempotency-Key` to finish before it gets 409 `idempotency_key_in_use` (decimals allowed)",
  }),
  MESHAGENT_RATE_LIMIT: Type.Integer({
    minimum: 0,
    default: 6000,
    description:
      "requests per window per caller on the API (per API key, user, or participant token; per IP without valid credentials); `0` turns every rate limit off",
  }),
  MESHAGENT_RATE_LIMIT_AUTH: Type.Integer({
    minimum: 0,
    default: 600,
    description: "requests per window per IP on the public routes (token validation, share links, pricing, event catalog); `0`: unlimited",
  }),
  MESHAGENT_RATE_LIMIT_STORAGE: Type.Integer({
    minimum: 0,
    default: 3000,
    description: "requests per window per caller on storage transfers (upload, download, signed room-storage downloads); `0`: unlimited",
  }),
  MESHAGENT_RATE_LIMIT_WINDOW: Type.Integer({ minimum: 1, default: 60, unit: "s", description: "the rate-limit window" }),
  MESHAGENT_REDIS_URL: Type.Optional(
    Type.String({
      pattern: "^rediss?://",
      expected: "a redis:// or rediss:// URL",
      secret: true,
      defaultText: "unset: budgets in memory, per process",
      description: "Redis that holds the rate-limit budgets, shared by every server process (must be reachable at start)",
    }),
  ),
  MESHAGENT_REDIS_PREFIX: Type.String({ default: "meshagent:", description: "prefix of every Redis key the server writes" }),
  MESHAGENT_PRICING_FILE: Type.Optional(Type.String({ defaultText: "built-in table", description: "JSON price list served at `GET /pricing` (shape below)" })),
  MESHAGENT_LOG_LEVEL: Type.Union(
    LOG_LEVELS.map((l) => Type.Literal(l)),
    { default: "info", description: "pino log level" },
  ),
  MESHAGENT_LOG_FORMAT: Type.Union([Type.Literal("auto"), Type.Literal("json"), Type.Literal("pretty")], {
    default: "auto",
    description: "`json`: one JSON object per line; `pretty`: one short readable line per event (pino-pretty); `auto`: pretty when stdout is a terminal",
  }),
  MESHAGENT_TRUST_PROXY: Type.String({
    default: "false",
    expected: "false, true, a hop count, or comma-separated proxy addresses/CIDRs",
    description:
      "behind a reverse proxy: whose `X-Forwarded-For`/`-Proto` to believe for the client address (rate limits, sign-in lockout, audit log, logs). `true`: any; `1`: the nearest hop; `127.0.0.1,10.0.0.0/8`: those proxies",
  }),
  MESHAGENT_METRICS: Type.Boolean({ default: true, description: "`false`: no `GET /metrics` and no per-request metrics" }),
  MESHAGENT_METRICS_TOKEN: Type.Optional(
    Type.String({
      minLength: 16,
      secret: true,
      defaultText: "none: `/metrics` is public",
      description: "when set, `GET /metrics` needs `Authorization: Bearer <this token>` (Prometheus: `authorization.credentials`)",
    }),
  ),
  MESHAGENT_DB_POOL: Type.Integer({ minimum: 1, default: 10, description: "PostgreSQL pool size" }),
  MESHAGENT_ROOM_EMPTY_TIMEOUT: Type.Number({
    minimum: 0,
    default: 30,
    unit: "s",
    description: "how long an empty room keeps its session before it ends (decimals allowed)",
  }),
  MESHAGENT_ROOM_LEASE: Type.Number({
    minimum: 0.3,
    default: 15,
    unit: "s",
    description: "how long a process's ownership of a room lasts without a heartbeat (renewed every third of it)",
  }),
  MESHAGENT_ROOM_SERVER_URL: Type.Optional(
    Type.String({
      pattern: HTTP_URL,
      expected: "an http(s) URL",
      defaultText: "`http://<host>:<port>`",
      description: "how other server processes reach this one to proxy room connections",
    }),
  ),
  MESHAGENT_ROOM_PROXY: Type.Boolean({
    default: true,
    description: "proxy a room connection to the process that owns the room (`false`: close it with code 1013)",
  }),
  MESHAGENT_ROOM_MAX_MESSAGE: Type.Integer({
    minimum: 64 * 1024,
    default: 64 * MiB,
    unit: "bytes",
    description: "largest room-protocol message a participant may send",
  }),
  MESHAGENT_ROOM_MAX_UPLOAD: Type.Integer({ minimum: 0, default: 1024 * MiB, unit: "bytes", description: "largest file one `storage.upload` may write" }),
  MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND: Type.Integer({
    minimum: 1,
    default: 1000,
    description:
      "messages one participant (connection) may send per second, on average; above it a request gets an error response, and a connection that keeps sending over 10 times as many is closed with 1008",
  }),
  MESHAGENT_ROOM_MESSAGE_BURST: Type.Optional(
    Type.Integer({
      minimum: 1,
      defaultText: "2 × `MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND`",
      description: "messages one participant may send at once before the per-second rate applies",
    }),
  ),
  MESHAGENT_ROOM_MAX_TOOL_CALLS: Type.Integer({
    minimum: 1,
    default: 64,
    description: "tool calls one participant may have in flight (waiting `queues.receive` included); the next gets an error response",
  }),
  MESHAGENT_ROOM_MAX_STREAMS: Type.Integer({
    minimum: 1,
    default: 16,
    description: "streaming tool calls (`storage.upload`, `storage.download`) one participant may have open; the next gets an error response",
  }),
  MESHAGENT_TOOL_CALL_TIMEOUT: Type.Number({
    minimum: 0.01,
    default: 300,
    unit: "s",
    description:
      "how long a call to a toolkit a participant hosts (`room.invoke_tool` routed to its host) may wait for the host's answer; then the caller gets an error (decimals allowed)",
  }),
  MESHAGENT_SECRET_REQUEST_TIMEOUT: Type.Number({
    minimum: 0.01,
    default: 300,
    unit: "s",
    description:
      "the longest a room `secrets.request_secret` / `secrets.request_oauth_token` waits for the other participant's answer (a shorter `timeout` from the client wins); then the requester gets an error (decimals allowed)",
  }),
  MESHAGENT_OAUTH_ALLOW_PRIVATE: Type.Boolean({
    default: false,
    description: "`true` lets the room `secrets` toolkit call OAuth token endpoints on private, loopback and link-local addresses",
  }),
  MESHAGENT_OTLP_BODY_LIMIT: Type.Integer({
    minimum: 0,
    default: 16 * MiB,
    unit: "bytes",
    description: "largest OTLP/HTTP request body (`/v1/traces`, `/v1/metrics`, `/v1/logs`)",
  }),
  MESHAGENT_OTLP_MAX_ROWS_PER_SESSION: Type.Integer({
    minimum: 0,
    default: 100_000,
    description: "spans, metric points and log records OTLP/HTTP may add to one session; the rest is rejected as an OTLP partial success (`0`: no limit)",
  }),
  MESHAGENT_SMTP_PORT: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: 65535,
      defaultText: "unset: no SMTP",
      description: "port of the inbound SMTP server for mailboxes (`0` = any free port)",
    }),
  ),
  MESHAGENT_SMTP_HOST: Type.Optional(Type.String({ defaultText: "`MESHAGENT_HOST`", description: "SMTP listen address" })),
  MESHAGENT_SMTP_HOSTNAME: Type.Optional(Type.String({ defaultText: "the machine's host name", description: "name in the SMTP greeting" })),
  MESHAGENT_SMTP_RELAY_URL: Type.Optional(
    Type.String({
      pattern: "^smtps?://.+",
      expected: "an smtp:// or smtps:// URL",
      secret: true,
      defaultText: "unset: mails are not sent, their links are logged with a warning",
      description: "outbound mail (invitations, password resets) through this relay: `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://…:465`",
    }),
  ),
  MESHAGENT_MAIL_FROM: Type.Optional(
    Type.String({ minLength: 3, defaultText: "`MeshAgent <no-reply@<public host>>`", description: "the From of outbound mail" }),
  ),
  MESHAGENT_SMTP_MAX_BYTES: Type.Integer({ minimum: 1024, default: 25 * MiB, unit: "bytes", description: "largest accepted message (552 above it)" }),
  MESHAGENT_SMTP_TLS_CERT: Type.Optional(Type.String({ description: "PEM certificate file; set together with `MESHAGENT_SMTP_TLS_KEY`, STARTTLS is offered" })),
  MESHAGENT_SMTP_TLS_KEY: Type.Optional(Type.String({ description: "PEM private key file of `MESHAGENT_SMTP_TLS_CERT`" })),
  MESHAGENT_STORAGE_URL: Type.Optional(
    Type.String({
      defaultText: "`<data dir>/storage`",
      description: "where files live: a directory (or `file:///dir`), or `s3://bucket/prefix` for an S3-compatible bucket",
    }),
  ),
  MESHAGENT_MAX_UPLOAD_BYTES: Type.Integer({
    minimum: 0,
    default: 5 * 1024 * MiB,
    unit: "bytes",
    description: "largest upload (413 above it); not limited by `MESHAGENT_BODY_LIMIT`",
  }),
  MESHAGENT_MAX_CONCURRENT_UPLOADS: Type.Integer({
    minimum: 1,
    default: 8,
    description:
      "uploads (project storage and room `storage.upload`) one project may have in progress in one server process; the next is refused (429 `too_many_uploads`)",
  }),
  MESHAGENT_S3_PATH_STYLE: Type.Boolean({
    default: false,
    description: "`true` for path-style bucket URLs (most self-hosted S3-compatible servers need it)",
  }),
  AWS_ENDPOINT_URL_S3: Type.Optional(
    Type.String({ defaultText: "`AWS_ENDPOINT_URL`", description: "S3 endpoint, for `s3://` storage on an S3-compatible server" }),
  ),
  AWS_ENDPOINT_URL: Type.Optional(
    Type.String({ defaultText: "unset: AWS's own endpoints", description: "the standard AWS endpoint variable (used when `AWS_ENDPOINT_URL_S3` is unset)" }),
  ),
  AWS_REGION: Type.Optional(Type.String({ defaultText: "`AWS_DEFAULT_REGION`, else `us-east-1`", description: "S3 region" })),
  AWS_DEFAULT_REGION: Type.Optional(Type.String({ defaultText: "unset", description: "S3 region when `AWS_REGION` is unset" })),
  AWS_ACCESS_KEY_ID: Type.Optional(
    Type.String({
      secret: true,
      defaultText: "the SDK's default credential chain",
      description: "S3 credentials; without them the AWS SDK's default credential chain is used",
    }),
  ),
  AWS_SECRET_ACCESS_KEY: Type.Optional(Type.String({ secret: true, description: "S3 credentials (with `AWS_ACCESS_KEY_ID`)" })),
  AWS_SESSION_TOKEN: Type.Optional(Type.String({ secret: true, description: "S3 session token for temporary credentials" })),
  MESHAGENT_WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false, description: "`true` lets webhooks target private, loopback and link-local addresses" }),
  MESHAGENT_WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 1, default: 15_000, unit: "ms", description: "timeout of one delivery attempt" }),
  MESHAGENT_WEBHOOK_LEASE_MS: Type.Optional(
    Type.Integer({
      minimum: 1,
      unit: "ms",
      defaultText: "timeout + 15000",
      description: "how long a claimed delivery stays with one process (must exceed `MESHAGENT_WEBHOOK_TIMEOUT_MS`)",
    }),
  ),
  MESHAGENT_WEBHOOK_POLL_MS: Type.Integer({ minimum: 10, default: 1000, unit: "ms", description: "how often an idle dispatcher looks for due deliveries" }),
  MESHAGENT_WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, default: 64, description: "deliveries in flight per process" }),
  MESHAGENT_WEBHOOK_DISPATCHER: Type.Boolean({ default: true, description: "`false`: this process does not deliver webhooks" }),
  MESHAGENT_CALL_TIMEOUT_MS: Type.Integer({
    minimum: 1,
    maximum: 600_000,
    default: 30_000,
    unit: "ms",
    description:
      "how long a `room.call` handoff may take until its target accepted (a 2xx to the POST, or the WebSocket open); then the caller gets an error. Webhooks with action `call` use `MESHAGENT_WEBHOOK_TIMEOUT_MS`",
  }),
  MESHAGENT_MCP_ALLOW_PRIVATE: Type.Boolean({
    default: false,
    description: "`true` lets `POST /mcp/discover` connect to private, loopback and link-local addresses",
  }),
  MESHAGENT_MCP_DISCOVERY_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 300_000,
    default: 10_000,
    unit: "ms",
    description: "total time one `POST /mcp/discover` may take (connecting, listing tools, reading OAuth metadata)",
  }),
  MESHAGENT_BILLING_PROVIDER: Type.Union([Type.Literal("local"), Type.Literal("stripe")], {
    default: "local",
    description: "payment provider: `local` (checkout is a page of this server where a project admin confirms; no payments) or `stripe`",
  }),
  MESHAGENT_BILLING_ENFORCE: Type.Boolean({
    default: false,
    description: "refuse connect_room, connect_share, service starts and queue sends (402) for projects with a negative balance and no active subscription",
  }),
  MESHAGENT_BILLING_ENABLED: Type.Boolean({
    default: true,
    description: "run the billing job in this process (pricing, renewals, auto-recharge); several processes may run it at once",
  }),
  MESHAGENT_BILLING_INTERVAL: Type.Number({ minimum: 1, default: 60, unit: "s", description: "how often the billing job runs" }),
  MESHAGENT_BILLING_GRACE: Type.Number({
    minimum: 0,
    default: 60,
    unit: "s",
    description: "how long after an hour ends its usage is priced (usage written just before the hour's end has committed by then)",
  }),
  MESHAGENT_BILLING_LOW_BALANCE: Type.Number({
    default: 0,
    description: "balance (in the pricing currency) under which `billing.balance_low` fires when the project set no auto-recharge threshold",
  }),
  MESHAGENT_BILLING_METER_FLUSH: Type.Number({
    minimum: 0.05,
    default: 5,
    unit: "s",
    description: "how often counted usage (API requests, webhook deliveries) is written; a kill -9 loses at most this much of it",
  }),
  MESHAGENT_BILLING_CHECKOUT_TTL: Type.Integer({ minimum: 60, default: 86400, unit: "s", description: "how long a checkout URL stays valid" }),
  MESHAGENT_STRIPE_SECRET_KEY: Type.Optional(Type.String({ secret: true, description: "Stripe secret key (sk_…), with MESHAGENT_BILLING_PROVIDER=stripe" })),
  MESHAGENT_STRIPE_WEBHOOK_SECRET: Type.Optional(
    Type.String({ secret: true, description: "signing secret (whsec_…) of the Stripe endpoint that posts to `/billing/stripe/webhook`" }),
  ),
  MESHAGENT_STRIPE_PRICE_ID: Type.Optional(Type.String({ description: "the recurring Stripe price (price_…) a subscription checkout sells" })),
  MESHAGENT_STRIPE_API_URL: Type.Optional(
    Type.String({
      pattern: HTTP_URL,
      expected: "an http(s) URL",
      defaultText: "Stripe's API",
      description: "another Stripe API base (a local stand-in for tests)",
    }),
  ),
  MESHAGENT_SCHEDULER_ENABLED: Type.Boolean({
    default: true,
    description: "run the scheduled-task engine in this process (`false`: tasks are stored, other processes fire them)",
  }),
  MESHAGENT_SCHEDULE_MIN_INTERVAL: Type.Integer({
    minimum: 1,
    default: 900,
    unit: "s",
    description: "smallest spacing between two runs of a scheduled task (MeshAgent's 15 minutes; the Python client checks 900 too)",
  }),
  MESHAGENT_SCHEDULE_MISFIRE_GRACE: Type.Integer({
    minimum: 1,
    default: 60,
    unit: "s",
    description: "a due time older than this when the engine reaches it counts as missed, and the task's misfire policy applies",
  }),
  MESHAGENT_SCHEDULE_RUN_RETENTION_DAYS: Type.Integer({
    minimum: 0,
    default: 90,
    unit: "days",
    description: "scheduled-task runs older than this are deleted (`0` keeps them forever)",
  }),
  MESHAGENT_AUDIT_RETENTION_DAYS: Type.Integer({
    minimum: 0,
    default: 90,
    unit: "days",
    description: "audit-log entries older than this are deleted by an hourly sweep (`0` keeps them forever)",
  }),
  MESHAGENT_DOCKER_HOST: Type.Optional(
    Type.String({
      pattern: DOCKER_HOST_URL,
      expected: "a unix://, tcp://, http:// or https:// URL, or `none`",
      defaultText: "`DOCKER_HOST`, else `unix:///var/run/docker.sock` when it exists",
      description:
        "the Docker Engine API (or podman's compatible one) that runs container services, scheduled container tasks and the room `containers` toolkit; `none`: no container runtime (container services report `no_runtime`)",
    }),
  ),
  MESHAGENT_SYNC_JOURNAL: Type.Optional(
    Type.Union([Type.Literal("file"), Type.Literal("store")], {
      defaultText: "`file` on SQLite, `store` on PostgreSQL",
      description:
        "where a sync document's acknowledged updates wait until its file is compacted: `file` (append-only files under `<MESHAGENT_DATA_DIR>/sync-journal`, written before the acknowledgement, safe against kill -9, not fsynced) or `store` (rows in the database, committed before the acknowledgement: every process of a PostgreSQL installation sees them)",
    }),
  ),
  MESHAGENT_CONTAINER_MEMORY: Type.Integer({
    minimum: 0,
    default: 1024 * MiB,
    unit: "bytes",
    description: "memory limit of each container the server starts (services, `containers.run`, scheduled tasks); `0`: no limit",
  }),
  MESHAGENT_CONTAINER_CPUS: Type.Number({
    minimum: 0,
    default: 1,
    description: "CPU limit of each container the server starts, in cores (decimals allowed); `0`: no limit",
  }),
  MESHAGENT_CONTAINER_MAX_PER_PROJECT: Type.Integer({
    minimum: 1,
    default: 50,
    description: "containers one project may have running at once; the next service start or `containers.run` is refused and says so",
  }),
  MESHAGENT_SERVICE_MAX_RESTARTS: Type.Integer({
    minimum: 0,
    default: 5,
    description:
      "restarts of a service container that keeps exiting before its status becomes `failed` (it is not restarted again until the room's next session or `services.restart`)",
  }),
  MESHAGENT_SERVICE_RESTART_DELAY: Type.Number({
    minimum: 0.01,
    default: 1,
    unit: "s",
    description:
      "delay before the first restart of a crashed service; doubled on each further restart, up to `MESHAGENT_SERVICE_RESTART_MAX_DELAY` (decimals allowed)",
  }),
  MESHAGENT_SERVICE_RESTART_MAX_DELAY: Type.Number({
    minimum: 0.01,
    default: 60,
    unit: "s",
    description: "the cap of the restart delay of a crashing service (decimals allowed)",
  }),
  MESHAGENT_SERVICE_LIVENESS_TIMEOUT: Type.Number({
    minimum: 0.1,
    default: 60,
    unit: "s",
    description: "how long a service port's `liveness` path may take to answer once its container started; then the start counts as a crash (decimals allowed)",
  }),
  MESHAGENT_TASK_CONTAINER_TIMEOUT: Type.Number({
    minimum: 1,
    default: 3600,
    unit: "s",
    description: "the longest a scheduled task's container may run; then it is stopped and the run recorded as failed",
  }),
  DOCKER_HOST: Type.Optional(
    Type.String({
      defaultText: "unset",
      description:
        "the standard Docker variable, used when `MESHAGENT_DOCKER_HOST` is unset (not checked at start, since other tools share it: a scheme the server cannot use, such as `ssh://`, leaves it without a runtime, and says why)",
    }),
  ),
});

/** The validated environment: every variable of {@link ConfigSchema}, with its default filled in. */
export type ConfigEnv = Static<typeof ConfigSchema>;

export type ConfigEntry = TSchema & EnvKeywords;

/** The schema's entries, in order: `[variable, schema]`. */
export function configEntries(): [string, ConfigEntry][] {
  return Object.entries(ConfigSchema.properties) as [string, ConfigEntry][];
}

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;
const UNIT_NAMES: Record<ConfigUnit, string> = { "": "", s: "seconds", ms: "milliseconds", bytes: "bytes", days: "days" };

/** What a valid value of this entry looks like, as in "expected …" (the README's type column says the same). */
export function expectedText(s: ConfigEntry): string {
  if (s.expected) return s.expected;
  const numeric = KindGuard.IsInteger(s) ? "an integer" : KindGuard.IsNumber(s) ? "a number" : undefined;
  if (numeric) {
    if (s.minimum !== undefined && s.maximum !== undefined) return `${numeric} from ${s.minimum} to ${s.maximum}`;
    if (s.minimum !== undefined) return `${numeric} of at least ${s.minimum}`;
    if (s.maximum !== undefined) return `${numeric} of at most ${s.maximum}`;
    return numeric;
  }
  if (KindGuard.IsBoolean(s)) return "a boolean (true/false, 1/0, yes/no, on/off)";
  if (KindGuard.IsUnion(s)) return `one of ${s.anyOf.map((l) => String(l.const)).join(", ")}`;
  return "a string";
}

/** A variable's raw string as the schema's type: numbers and booleans parsed; anything unparsable stays a string (and fails the check). */
function fromString(s: ConfigEntry, raw: string): unknown {
  if (KindGuard.IsInteger(s) || KindGuard.IsNumber(s)) {
    const n = raw.trim() === "" ? NaN : Number(raw);
    return Number.isNaN(n) ? raw : n;
  }
  if (KindGuard.IsBoolean(s)) return TRUE.test(raw) ? true : FALSE.test(raw) ? false : raw;
  return raw;
}

/** `got "…"` with a short prefix of the value, or nothing of it for a secret. */
function got(s: ConfigEntry, raw: string | undefined): string {
  if (s.secret) return "got a value that is not shown (secret)";
  const r = raw ?? "";
  return `got ${JSON.stringify(r.length > 40 ? r.slice(0, 40) + "…" : r)}`;
}

function problem(name: string, s: ConfigEntry, raw: string | undefined): string {
  const unit = s.unit ? ` (${UNIT_NAMES[s.unit]})` : "";
  return `${name}: expected ${expectedText(s)}${unit}, ${got(s, raw)}`;
}

/**
 * The environment checked against {@link ConfigSchema}: unset or empty variables take their default; a value of the
 * wrong type or out of range throws a ConfigError naming the variable, what it expected and (unless secret) the value.
 */
export function parseEnv(env: NodeJS.ProcessEnv): ConfigEnv {
  const entries = configEntries();
  const values: Record<string, unknown> = {};
  for (const [name, s] of entries) {
    const raw = env[name];
    if (raw === undefined || raw === "") {
      if (s.default !== undefined) values[name] = s.default;
    } else {
      values[name] = fromString(s, raw);
    }
  }
  const bad = new Set<string>();
  for (const e of Value.Errors(ConfigSchema, values)) bad.add(e.path.split("/")[1] ?? "");
  if (bad.size > 0) {
    const schemas = new Map(entries);
    const lines = [...bad].map((name) => {
      const s = schemas.get(name);
      return s ? problem(name, s, env[name]) : `${name}: invalid`;
    });
    throw new ConfigError(lines.join("\n"));
  }
  return values as ConfigEnv;
}

/** Accepts 64 hex chars or base64 of 32 bytes; anything else is rejected so a typo never silently changes the key. */
export function parseMasterKey(raw: string, source = "MESHAGENT_MASTER_KEY"): Buffer {
  const s = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, "hex");
  const b = Buffer.from(s, "base64");
  if (b.length === 32) return b;
  throw new ConfigError(`${source}: expected ${ConfigSchema.properties.MESHAGENT_MASTER_KEY.expected} (value not shown)`);
}

function loadOrCreateMasterKey(dataDir: string): Buffer {
  const file = join(dataDir, "master.key");
  if (existsSync(file)) return parseMasterKey(readFileSync(file, "utf8"), file);
  const key = randomBytes(32);
  writeFileSync(file, key.toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  return key;
}

/** The configured Docker host: `none` → null; unset → the default socket when it exists. */
function dockerHost(configured: string | undefined): string | null {
  if (configured === "none") return null;
  if (configured) return configured;
  return existsSync(DEFAULT_DOCKER_SOCKET) ? `unix://${DEFAULT_DOCKER_SOCKET}` : null;
}

const ms = (seconds: number) => Math.round(seconds * 1000);
const noTrailingSlash = (url: string) => url.replace(/\/+$/, "");

/**
 * The configuration from the environment, validated once against {@link ConfigSchema} (then the checks that span
 * variables). Nothing is written (data directory, generated master key) unless every value is valid.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const v = parseEnv(env);
  if (!!v.MESHAGENT_SMTP_TLS_CERT !== !!v.MESHAGENT_SMTP_TLS_KEY) {
    throw new ConfigError("MESHAGENT_SMTP_TLS_CERT and MESHAGENT_SMTP_TLS_KEY must be set together");
  }
  if (v.MESHAGENT_BILLING_PROVIDER === "stripe" && !v.MESHAGENT_STRIPE_SECRET_KEY)
    throw new ConfigError("MESHAGENT_BILLING_PROVIDER=stripe needs MESHAGENT_STRIPE_SECRET_KEY (and MESHAGENT_STRIPE_WEBHOOK_SECRET for its webhooks)");
  const webhookTimeoutMs = v.MESHAGENT_WEBHOOK_TIMEOUT_MS;
  const webhookLeaseMs = v.MESHAGENT_WEBHOOK_LEASE_MS ?? webhookTimeoutMs + 15_000;
  if (webhookLeaseMs <= webhookTimeoutMs) {
    throw new ConfigError(`MESHAGENT_WEBHOOK_LEASE_MS: expected more than MESHAGENT_WEBHOOK_TIMEOUT_MS (${webhookTimeoutMs}), got "${webhookLeaseMs}"`);
  }
  const envMasterKey = v.MESHAGENT_MASTER_KEY === undefined ? undefined : parseMasterKey(v.MESHAGENT_MASTER_KEY);

  const port = v.MESHAGENT_PORT;
  const host = v.MESHAGENT_HOST;
  const dataDir = resolve(v.MESHAGENT_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  return {
    port,
    host,
    dataDir,
    consoleDir: v.MESHAGENT_CONSOLE_DIR === undefined ? null : resolve(v.MESHAGENT_CONSOLE_DIR),
    databaseUrl: v.MESHAGENT_DATABASE_URL ?? `sqlite://${join(dataDir, "meshagent.db")}`,
    dbPool: v.MESHAGENT_DB_POOL,
    publicUrl: noTrailingSlash(v.MESHAGENT_PUBLIC_URL ?? defaultPublicUrl(host, port)),
    masterKey: envMasterKey ?? loadOrCreateMasterKey(dataDir),
    tokenTtlSeconds: v.MESHAGENT_TOKEN_TTL,
    bodyLimitBytes: v.MESHAGENT_BODY_LIMIT,
    httpIdleTimeoutMs: ms(v.MESHAGENT_HTTP_IDLE_TIMEOUT),
    idempotency: { ttlMs: ms(v.MESHAGENT_IDEMPOTENCY_TTL), waitMs: ms(v.MESHAGENT_IDEMPOTENCY_WAIT) },
    rateLimit: {
      api: v.MESHAGENT_RATE_LIMIT,
      public: v.MESHAGENT_RATE_LIMIT_AUTH,
      storage: v.MESHAGENT_RATE_LIMIT_STORAGE,
      windowMs: ms(v.MESHAGENT_RATE_LIMIT_WINDOW),
      redisUrl: v.MESHAGENT_REDIS_URL,
      redisPrefix: v.MESHAGENT_REDIS_PREFIX,
    },
    pricingFile: v.MESHAGENT_PRICING_FILE,
    logLevel: v.MESHAGENT_LOG_LEVEL,
    logFormat: v.MESHAGENT_LOG_FORMAT,
    trustProxy: parseTrustProxy(v.MESHAGENT_TRUST_PROXY),
    metrics: { enabled: v.MESHAGENT_METRICS, token: v.MESHAGENT_METRICS_TOKEN ?? null },
    webhooks: {
      allowPrivate: v.MESHAGENT_WEBHOOK_ALLOW_PRIVATE,
      timeoutMs: webhookTimeoutMs,
      leaseMs: webhookLeaseMs,
      pollMs: v.MESHAGENT_WEBHOOK_POLL_MS,
      concurrency: v.MESHAGENT_WEBHOOK_CONCURRENCY,
      dispatcher: v.MESHAGENT_WEBHOOK_DISPATCHER,
    },
    calls: { timeoutMs: v.MESHAGENT_CALL_TIMEOUT_MS },
    mcp: { allowPrivate: v.MESHAGENT_MCP_ALLOW_PRIVATE, timeoutMs: v.MESHAGENT_MCP_DISCOVERY_TIMEOUT_MS },
    storageUrl: v.MESHAGENT_STORAGE_URL ?? join(dataDir, "storage"),
    maxUploadBytes: v.MESHAGENT_MAX_UPLOAD_BYTES,
    maxConcurrentUploads: v.MESHAGENT_MAX_CONCURRENT_UPLOADS,
    s3: {
      endpoint: v.AWS_ENDPOINT_URL_S3 ?? v.AWS_ENDPOINT_URL,
      region: v.AWS_REGION ?? v.AWS_DEFAULT_REGION ?? "us-east-1",
      forcePathStyle: v.MESHAGENT_S3_PATH_STYLE,
      accessKeyId: v.AWS_ACCESS_KEY_ID,
      secretAccessKey: v.AWS_SECRET_ACCESS_KEY,
      sessionToken: v.AWS_SESSION_TOKEN,
    },
    outboundMail: {
      relayUrl: v.MESHAGENT_SMTP_RELAY_URL ?? null,
      from: v.MESHAGENT_MAIL_FROM ?? `MeshAgent <no-reply@${new URL(noTrailingSlash(v.MESHAGENT_PUBLIC_URL ?? `http://localhost:${port}`)).hostname}>`,
    },
    smtp: {
      port: v.MESHAGENT_SMTP_PORT ?? null,
      host: v.MESHAGENT_SMTP_HOST ?? host,
      hostname: v.MESHAGENT_SMTP_HOSTNAME ?? hostname(),
      maxBytes: v.MESHAGENT_SMTP_MAX_BYTES,
      tlsCert: v.MESHAGENT_SMTP_TLS_CERT,
      tlsKey: v.MESHAGENT_SMTP_TLS_KEY,
    },
    rooms: {
      emptyTimeoutMs: ms(v.MESHAGENT_ROOM_EMPTY_TIMEOUT),
      leaseMs: ms(v.MESHAGENT_ROOM_LEASE),
      serverUrl: v.MESHAGENT_ROOM_SERVER_URL === undefined ? undefined : noTrailingSlash(v.MESHAGENT_ROOM_SERVER_URL),
      proxy: v.MESHAGENT_ROOM_PROXY,
      maxMessageBytes: v.MESHAGENT_ROOM_MAX_MESSAGE,
      maxUploadBytes: v.MESHAGENT_ROOM_MAX_UPLOAD,
      maxMessagesPerSecond: v.MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND,
      messageBurst: v.MESHAGENT_ROOM_MESSAGE_BURST ?? 2 * v.MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND,
      maxToolCalls: v.MESHAGENT_ROOM_MAX_TOOL_CALLS,
      maxStreams: v.MESHAGENT_ROOM_MAX_STREAMS,
      toolCallTimeoutMs: ms(v.MESHAGENT_TOOL_CALL_TIMEOUT),
      secretRequestTimeoutMs: ms(v.MESHAGENT_SECRET_REQUEST_TIMEOUT),
      oauthAllowPrivate: v.MESHAGENT_OAUTH_ALLOW_PRIVATE,
      otlpBodyLimit: v.MESHAGENT_OTLP_BODY_LIMIT,
      otlpMaxRowsPerSession: v.MESHAGENT_OTLP_MAX_ROWS_PER_SESSION,
    },
    scheduler: {
      enabled: v.MESHAGENT_SCHEDULER_ENABLED,
      minIntervalSeconds: v.MESHAGENT_SCHEDULE_MIN_INTERVAL,
      misfireGraceSeconds: v.MESHAGENT_SCHEDULE_MISFIRE_GRACE,
      runRetentionDays: v.MESHAGENT_SCHEDULE_RUN_RETENTION_DAYS,
    },
    billing: {
      provider: v.MESHAGENT_BILLING_PROVIDER,
      enforce: v.MESHAGENT_BILLING_ENFORCE,
      enabled: v.MESHAGENT_BILLING_ENABLED,
      intervalMs: ms(v.MESHAGENT_BILLING_INTERVAL),
      graceMs: ms(v.MESHAGENT_BILLING_GRACE),
      lowBalanceMicros: Math.round(v.MESHAGENT_BILLING_LOW_BALANCE * 1e6),
      meterFlushMs: ms(v.MESHAGENT_BILLING_METER_FLUSH),
      checkoutTtlMs: ms(v.MESHAGENT_BILLING_CHECKOUT_TTL),
      stripe: {
        secretKey: v.MESHAGENT_STRIPE_SECRET_KEY,
        webhookSecret: v.MESHAGENT_STRIPE_WEBHOOK_SECRET,
        priceId: v.MESHAGENT_STRIPE_PRICE_ID,
        apiUrl: v.MESHAGENT_STRIPE_API_URL,
      },
    },
    auditRetentionDays: v.MESHAGENT_AUDIT_RETENTION_DAYS,
    docker: { host: dockerHost(v.MESHAGENT_DOCKER_HOST ?? v.DOCKER_HOST) },
    sync: {
      journal: v.MESHAGENT_SYNC_JOURNAL ?? (/^postgres(ql)?:/.test(v.MESHAGENT_DATABASE_URL ?? "") ? "store" : "file"),
      journalDir: join(dataDir, "sync-journal"),
    },
    hosting: {
      memoryBytes: v.MESHAGENT_CONTAINER_MEMORY,
      cpus: v.MESHAGENT_CONTAINER_CPUS,
      maxContainersPerProject: v.MESHAGENT_CONTAINER_MAX_PER_PROJECT,
      maxRestarts: v.MESHAGENT_SERVICE_MAX_RESTARTS,
      restartBaseMs: ms(v.MESHAGENT_SERVICE_RESTART_DELAY),
      restartMaxMs: ms(v.MESHAGENT_SERVICE_RESTART_MAX_DELAY),
      livenessTimeoutMs: ms(v.MESHAGENT_SERVICE_LIVENESS_TIMEOUT),
      taskTimeoutMs: ms(v.MESHAGENT_TASK_CONTAINER_TIMEOUT),
    },
  };
}
