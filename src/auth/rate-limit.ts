import rateLimit, { normalizeIP } from "@fastify/rate-limit";
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from "fastify";
import { Redis } from "ioredis";
import { ApiError } from "../core/errors.js";
import { sha256Hex } from "../core/crypto.js";
import type { Access } from "./plugin.js";
import type { Principal } from "./principal.js";
import type { AuthService } from "./service.js";

/** Request budgets (MESHAGENT_RATE_LIMIT*), per caller and per route group, in requests per window. */
export interface RateLimitConfig {
  /** The API: every route that takes a bearer. `0` turns every limit off. */
  api: number;
  /** Public routes (no credentials: token validation, share links, pricing, the event catalog), per IP. `0`: unlimited. */
  public: number;
  /** Storage transfers (project upload/download, signed room-storage downloads). `0`: unlimited. */
  storage: number;
  windowMs: number;
  /** Shared budgets for every process; unset: each process counts in memory. */
  redisUrl?: string;
  redisPrefix: string;
}

export type RateLimitGroup = "api" | "public" | "storage";

/** Routes that move file bodies: their own budget, so a sync of many files does not starve the rest of the API. */
const STORAGE_TRANSFER = /^\/projects\/:project_id\/storage\/(upload|download)$|^\/room-storage\//;

/**
 * The one place that sorts a route into a budget, by its URL pattern and declared access. Routes that declare no
 * access (health check, OpenAPI document, docs) are infrastructure: never limited.
 */
export function rateLimitGroup(url: string, access: Access | undefined): RateLimitGroup | null {
  if (!access) return null;
  if (STORAGE_TRANSFER.test(url)) return "storage";
  return access === "public" ? "public" : "api";
}

const UNLIMITED = "-";
const WHO: Record<string, string> = { k: "this API key", u: "this user", p: "this participant", ip: "this IP address" };

/** A readable, bounded Redis/memory key part (names in participant tokens are the signer's choice). */
const safe = (s: string) => (/^[\w.@-]{1,64}$/.test(s) ? s : sha256Hex(s).slice(0, 32));

function principalKey(p: Principal): string {
  if (p.kind === "api_key") return `k:${p.keyId}`;
  if (p.kind === "user") return `u:${p.userId}`;
  return `p:${p.keyId}:${safe(p.name)}`;
}

/**
 * Connect to Redis at start: unreachable is a startup error naming the variable. Later losses fail open (see
 * {@link installRateLimits}); commands never queue while disconnected, so a lost Redis costs no request time.
 */
async function openRedis(url: string, log: FastifyBaseLogger): Promise<{ client: Redis; close(): Promise<void> }> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1000, connectTimeout: 5000 });
  let lastError: Error | undefined;
  let up = false;
  let lastWarn = 0;
  client.on("error", (err: Error) => {
    lastError = err;
    if (!up) return;
    const now = Date.now();
    if (now - lastWarn > 30_000) {
      lastWarn = now;
      log.warn({ err: err.message }, "Redis (MESHAGENT_REDIS_URL) error: rate limits are not enforced while it lasts (fail open)");
    }
  });
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    client.disconnect();
    // The host only: the URL may carry a password.
    const where = URL.canParse(url) ? new URL(url).host : "the configured address";
    throw new Error(`MESHAGENT_REDIS_URL: cannot reach Redis at ${where}: ${(lastError ?? (err as Error)).message}`, { cause: err });
  }
  up = true;
  let lost = false;
  let closing = false;
  client.on("close", () => {
    if (lost || closing) return;
    lost = true;
    log.warn("lost the connection to Redis (MESHAGENT_REDIS_URL): rate limits are not enforced until it is back (fail open)");
  });
  client.on("ready", () => {
    if (!lost) return;
    lost = false;
    log.info("Redis (MESHAGENT_REDIS_URL) is reachable again: rate limits are enforced");
  });
  return {
    client,
    async close() {
      closing = true;
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/**
 * Rate limits on every HTTP route registered after this call (register it after the infrastructure routes).
 * The budget is the caller's: the API-key id, the user id, or the participant token's kid and name; a missing or
 * invalid bearer counts against the IP, so garbage tokens cannot mint fresh budgets. Public routes always count per
 * IP. The bearer is resolved here (onRequest) through `auth.principal`, which caches it on the request for the
 * access gate. Headers: RateLimit-Limit/-Remaining/-Reset on every limited response; 429 `rate_limited` with
 * Retry-After when the budget is spent.
 */
export async function installRateLimits(app: FastifyInstance, auth: AuthService, cfg: RateLimitConfig) {
  if (cfg.api === 0) return;
  const limits: Record<RateLimitGroup, number> = { api: cfg.api, public: cfg.public, storage: cfg.storage };
  const redis = cfg.redisUrl ? await openRedis(cfg.redisUrl, app.log) : undefined;
  if (redis) app.addHook("onClose", () => redis.close());
  // Who spent the budget, for the 429 message ("for this API key"): onExceeded sees the key, the builder does not.
  const exceededBy = new WeakMap<FastifyRequest, string>();
  const windowS = Math.round(cfg.windowMs / 1000);
  const groupOf = (key: string) => key.slice(0, key.indexOf("|")) as RateLimitGroup;

  await app.register(rateLimit, {
    global: true,
    hook: "onRequest",
    enableDraftSpec: true,
    timeWindow: cfg.windowMs,
    // A Redis failure lets the request through (fail open, logged by openRedis): an outage of the limiter is not
    // an outage of the API.
    skipOnError: true,
    ...(redis ? { redis: redis.client, nameSpace: `${cfg.redisPrefix}rate-limit:` } : { cache: 100_000 }),
    keyGenerator: async (req: FastifyRequest) => {
      const group = rateLimitGroup(req.routeOptions.url ?? "", req.routeOptions.config?.access);
      if (!group || limits[group] === 0) return UNLIMITED;
      const p = group === "public" ? null : await auth.principal(req).catch(() => null);
      return `${group}|${p ? principalKey(p) : `ip:${normalizeIP(req.ip)}`}`;
    },
    allowList: (_req, key) => key === UNLIMITED,
    max: (_req, key) => limits[groupOf(key)],
    errorResponseBuilder: (req, c) => {
      const who = WHO[exceededBy.get(req) ?? ""] ?? "this caller";
      const retry = Math.max(1, Math.ceil(c.ttl / 1000));
      return new ApiError(429, "rate_limited", `rate limit exceeded: ${c.max} requests per ${windowS} s for ${who}; retry in ${retry} s`);
    },
    onExceeded: (req, key) => void exceededBy.set(req, key.slice(key.indexOf("|") + 1).split(":")[0]),
  });
}
