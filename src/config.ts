import { mkdirSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { loadWebhookConfig, type WebhookConfig } from "./webhooks/config.js";
import { hostname } from "node:os";

/** Typed configuration, read from MESHAGENT_* environment variables once. */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  publicUrl: string;
  masterKey: Buffer;
  tokenTtlSeconds: number;
  bodyLimitBytes: number;
  httpIdleTimeoutMs: number;
  pricingFile?: string;
  logLevel: string;
  webhooks: WebhookConfig;
  /** Where blobs live: a directory (default `<dataDir>/storage`) or `s3://bucket/prefix`. */
  storageUrl: string;
  /** Largest accepted upload in bytes (413 above it). */
  maxUploadBytes: number;
  /** S3 connection settings, read from the standard AWS variables (used when storageUrl is s3://). */
  s3: S3Settings;
  /** Inbound SMTP (mailboxes). Off unless MESHAGENT_SMTP_PORT is set. */
  smtp: SmtpConfig;
  /** The room server (WebSocket /rooms/{room}) and sessions. */
  rooms: RoomsConfig;
  /** Scheduled tasks. */
  scheduler: SchedulerConfig;
}

export interface RoomsConfig {
  /** MESHAGENT_ROOM_EMPTY_TIMEOUT (seconds, default 30): an empty room's session ends after this long. */
  emptyTimeoutMs: number;
  /** MESHAGENT_ROOM_LEASE (seconds, default 15): room ownership lease; renewed every third of it. */
  leaseMs: number;
  /** MESHAGENT_ROOM_SERVER_URL: how other server processes reach this one (default http://<host>:<port>). */
  serverUrl?: string;
  /** MESHAGENT_ROOM_PROXY (default true): proxy connections for rooms another process serves, or refuse them (1013). */
  proxy: boolean;
  /** MESHAGENT_ROOM_MAX_MESSAGE (bytes, default 64 MiB): largest protocol message a participant may send. */
  maxMessageBytes: number;
  /** MESHAGENT_ROOM_MAX_UPLOAD (bytes, default 1 GiB): largest file a storage.upload may write. */
  maxUploadBytes: number;
  /** MESHAGENT_OTLP_BODY_LIMIT (bytes, default 16 MiB): largest OTLP/HTTP request body. */
  otlpBodyLimit: number;
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

function bool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

export class ConfigError extends Error {}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

/** Accepts 64 hex chars or base64 of 32 bytes; anything else is rejected so a typo never silently changes the key. */
export function parseMasterKey(raw: string): Buffer {
  const s = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, "hex");
  const b = Buffer.from(s, "base64");
  if (b.length === 32) return b;
  throw new ConfigError("MESHAGENT_MASTER_KEY must be 32 bytes as 64 hex characters or base64");
}

function loadOrCreateMasterKey(dataDir: string): Buffer {
  const file = join(dataDir, "master.key");
  if (existsSync(file)) return parseMasterKey(readFileSync(file, "utf8"));
  const key = randomBytes(32);
  writeFileSync(file, key.toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  return key;
}

function schedulerConfig(env: NodeJS.ProcessEnv): SchedulerConfig {
  const minIntervalSeconds = int(env, "MESHAGENT_SCHEDULE_MIN_INTERVAL", 900);
  if (minIntervalSeconds < 1) throw new ConfigError("MESHAGENT_SCHEDULE_MIN_INTERVAL must be at least 1 (second)");
  const misfireGraceSeconds = int(env, "MESHAGENT_SCHEDULE_MISFIRE_GRACE", 60);
  if (misfireGraceSeconds < 1) throw new ConfigError("MESHAGENT_SCHEDULE_MISFIRE_GRACE must be at least 1 (second)");
  return {
    enabled: bool(env, "MESHAGENT_SCHEDULER_ENABLED", true),
    minIntervalSeconds,
    misfireGraceSeconds,
    runRetentionDays: int(env, "MESHAGENT_SCHEDULE_RUN_RETENTION_DAYS", 90),
  };
}

function smtpConfig(env: NodeJS.ProcessEnv, host: string): SmtpConfig {
  const rawPort = env.MESHAGENT_SMTP_PORT;
  const port = rawPort === undefined || rawPort === "" ? null : int(env, "MESHAGENT_SMTP_PORT", 0);
  if (port !== null && port > 65535) throw new ConfigError(`MESHAGENT_SMTP_PORT must be a port number, got "${rawPort}"`);
  const tlsCert = env.MESHAGENT_SMTP_TLS_CERT || undefined;
  const tlsKey = env.MESHAGENT_SMTP_TLS_KEY || undefined;
  if (!!tlsCert !== !!tlsKey) throw new ConfigError("MESHAGENT_SMTP_TLS_CERT and MESHAGENT_SMTP_TLS_KEY must be set together");
  const maxBytes = int(env, "MESHAGENT_SMTP_MAX_BYTES", 25 * 1024 * 1024);
  if (maxBytes < 1024) throw new ConfigError("MESHAGENT_SMTP_MAX_BYTES must be at least 1024");
  return {
    port,
    host: env.MESHAGENT_SMTP_HOST || host,
    hostname: env.MESHAGENT_SMTP_HOSTNAME || hostname(),
    maxBytes,
    tlsCert,
    tlsKey,
  };
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback * 1000;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${name} must be a non-negative number of seconds, got "${raw}"`);
  return Math.round(n * 1000);
}

function flag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function roomsConfig(env: NodeJS.ProcessEnv): RoomsConfig {
  const leaseMs = seconds(env, "MESHAGENT_ROOM_LEASE", 15);
  if (leaseMs < 300) throw new ConfigError("MESHAGENT_ROOM_LEASE must be at least 0.3 seconds");
  const serverUrl = env.MESHAGENT_ROOM_SERVER_URL?.replace(/\/+$/, "") || undefined;
  if (serverUrl && !/^https?:\/\//.test(serverUrl)) throw new ConfigError("MESHAGENT_ROOM_SERVER_URL must be an http(s) URL");
  const maxMessageBytes = int(env, "MESHAGENT_ROOM_MAX_MESSAGE", 64 * 1024 * 1024);
  if (maxMessageBytes < 64 * 1024) throw new ConfigError("MESHAGENT_ROOM_MAX_MESSAGE must be at least 65536");
  return {
    emptyTimeoutMs: seconds(env, "MESHAGENT_ROOM_EMPTY_TIMEOUT", 30),
    leaseMs,
    serverUrl,
    proxy: flag(env, "MESHAGENT_ROOM_PROXY", true),
    maxMessageBytes,
    maxUploadBytes: int(env, "MESHAGENT_ROOM_MAX_UPLOAD", 1024 * 1024 * 1024),
    otlpBodyLimit: int(env, "MESHAGENT_OTLP_BODY_LIMIT", 16 * 1024 * 1024),
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = int(env, "MESHAGENT_PORT", 8080);
  const host = env.MESHAGENT_HOST || "127.0.0.1";
  const dataDir = resolve(env.MESHAGENT_DATA_DIR || "./data");
  mkdirSync(dataDir, { recursive: true });
  const databaseUrl = env.MESHAGENT_DATABASE_URL || `sqlite://${join(dataDir, "meshagent.db")}`;
  const publicUrl = (env.MESHAGENT_PUBLIC_URL || `http://localhost:${port}`).replace(/\/+$/, "");
  const masterKey = env.MESHAGENT_MASTER_KEY ? parseMasterKey(env.MESHAGENT_MASTER_KEY) : loadOrCreateMasterKey(dataDir);
  return {
    port,
    host,
    dataDir,
    databaseUrl,
    publicUrl,
    masterKey,
    tokenTtlSeconds: int(env, "MESHAGENT_TOKEN_TTL", 6 * 3600),
    bodyLimitBytes: int(env, "MESHAGENT_BODY_LIMIT", 1024 * 1024),
    /** MESHAGENT_HTTP_IDLE_TIMEOUT (seconds, default 120; 0 = none): a connection silent this long is closed. */
    httpIdleTimeoutMs: seconds(env, "MESHAGENT_HTTP_IDLE_TIMEOUT", 120),
    pricingFile: env.MESHAGENT_PRICING_FILE || undefined,
    logLevel: env.MESHAGENT_LOG_LEVEL || "info",
    webhooks: loadWebhookConfig(env),
    storageUrl: env.MESHAGENT_STORAGE_URL || join(dataDir, "storage"),
    maxUploadBytes: int(env, "MESHAGENT_MAX_UPLOAD_BYTES", 5 * 1024 * 1024 * 1024),
    s3: {
      endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined,
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
      forcePathStyle: bool(env, "MESHAGENT_S3_PATH_STYLE", false),
      accessKeyId: env.AWS_ACCESS_KEY_ID || undefined,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY || undefined,
      sessionToken: env.AWS_SESSION_TOKEN || undefined,
    },
    smtp: smtpConfig(env, host),
    rooms: roomsConfig(env),
    scheduler: schedulerConfig(env),
  };
}
