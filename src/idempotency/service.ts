import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { sha256Hex, type Sealer } from "../core/crypto.js";
import { ApiError, badRequest } from "../core/errors.js";
import type { DB } from "../store/db.js";
import * as repo from "./repo.js";

export interface IdempotencyConfig {
  /** How long a key (and its stored response) is kept, from its first request (MESHAGENT_IDEMPOTENCY_TTL). */
  ttlMs: number;
  /** How long a request waits for a concurrent one with the same key to finish (MESHAGENT_IDEMPOTENCY_WAIT). */
  waitMs: number;
}

/** Longest accepted Idempotency-Key (Stripe's limit). */
export const MAX_KEY_LENGTH = 255;
/** Largest response body stored for replay; a larger response is not stored (the key is released). */
export const MAX_STORED_BYTES = 1024 * 1024;
/** A running claim is renewed every third of this; one not renewed for this long belongs to a dead process. */
const LEASE_MS = 15_000;
const POLL_FIRST_MS = 20;
const POLL_MAX_MS = 250;
const SWEEP_EVERY_MS = 10 * 60_000;

export interface StoredResponse {
  status: number;
  contentType: string | null;
  body: Buffer;
}

/** A running claim on a key: the request that holds it executes, then stores its response or releases the key. */
export interface Claim {
  /** Store the response for replays (only statuses {@link storable} says yes to; the caller checks). */
  complete(response: StoredResponse): Promise<void>;
  /** Give the key up without a response: the next request with it runs again. */
  release(): Promise<void>;
  /**
   * Stop renewing the claim without a response (the connection closed before one was sent, the reply was hijacked):
   * once its lease runs out the next request with the key takes it over and runs. A response sent later is still stored.
   */
  abandon(): void;
}

export type Begin = { kind: "run"; claim: Claim } | { kind: "replay"; response: StoredResponse };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stripe-style idempotency keys. A key belongs to a scope (the caller and the route, built by the HTTP hook); the first
 * request with it claims it (a row insert: the primary key decides across processes), runs, and stores its response;
 * a later request with the same key and the same request (its fingerprint: method, path, body hash) gets that
 * response back, one with a different request a 409; one that arrives while the first still runs waits for it.
 */
export class IdempotencyService {
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    readonly config: IdempotencyConfig,
  ) {}

  /** The header's value, checked: 1 to 255 characters (400 otherwise). */
  static checkKey(raw: string | string[] | undefined): string | undefined {
    if (raw === undefined) return undefined;
    const key = Array.isArray(raw) ? raw.join(", ") : raw;
    if (key.length === 0 || key.length > MAX_KEY_LENGTH)
      throw badRequest(`Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters long; got ${key.length}`, "invalid_idempotency_key");
    return key;
  }

  /** Whether a response with this status is kept for replays: 2xx-4xx, except 401, 403 and 429 (a retry may pass). */
  static storable(status: number): boolean {
    return status < 500 && status !== 401 && status !== 403 && status !== 429;
  }

  /** Claim `key` in `scope` for a request with this fingerprint, wait for the request that holds it, or replay it. */
  async begin(scope: string, key: string, fingerprint: string): Promise<Begin> {
    const keyHash = sha256Hex(key);
    const deadline = Date.now() + this.config.waitMs;
    let delay = POLL_FIRST_MS;
    for (;;) {
      const now = this.clock.now();
      const owner = randomUUID();
      if (await repo.insertClaim(this.db, { scope, key_hash: keyHash, fingerprint, owner, created_at: now, heartbeat_at: now }))
        return { kind: "run", claim: this.claim(scope, keyHash, owner) };
      const row = await repo.find(this.db, scope, keyHash);
      if (!row) continue; // released or expired in between: claim again
      if (row.created_at <= now - this.config.ttlMs) {
        await repo.deleteIfUnchanged(this.db, row);
        continue;
      }
      if (row.fingerprint !== fingerprint)
        throw new ApiError(
          409,
          "idempotency_key_reused",
          `this Idempotency-Key was already used for a different request (another method, path or body) in the last ${this.ttlText()}; ` +
            "use a new key for a new request",
        );
      if (row.status !== null)
        return {
          kind: "replay",
          response: { status: row.status, contentType: row.content_type, body: row.body ? this.sealer.openBuffer(row.body) : Buffer.alloc(0) },
        };
      // Still running: its owner renews it; one that stopped (a dead process) is taken over, and this request runs.
      if (row.heartbeat_at <= now - LEASE_MS && (await repo.takeOver(this.db, scope, keyHash, row.owner, owner, now, now - LEASE_MS)))
        return { kind: "run", claim: this.claim(scope, keyHash, owner) };
      const left = deadline - Date.now();
      if (left <= 0)
        throw new ApiError(
          409,
          "idempotency_key_in_use",
          `another request with this Idempotency-Key is still in progress (waited ${this.config.waitMs / 1000} s for it); retry later with the same key`,
        );
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  private claim(scope: string, keyHash: string, owner: string): Claim {
    const timer = setInterval(() => {
      repo.heartbeat(this.db, scope, keyHash, owner, this.clock.now()).catch(() => {});
    }, LEASE_MS / 3);
    timer.unref();
    let done = false;
    const end = () => {
      const first = !done;
      done = true;
      clearInterval(timer);
      return first;
    };
    return {
      complete: async (r) => {
        if (!end()) return;
        if (!IdempotencyService.storable(r.status) || r.body.length > MAX_STORED_BYTES) {
          await repo.release(this.db, scope, keyHash, owner);
          return;
        }
        await repo.complete(this.db, scope, keyHash, owner, { status: r.status, content_type: r.contentType, body: this.sealer.seal(r.body) });
      },
      release: async () => {
        if (!end()) return;
        await repo.release(this.db, scope, keyHash, owner);
      },
      abandon: () => clearInterval(timer),
    };
  }

  /** Delete keys older than the TTL; returns how many. */
  sweep(): Promise<number> {
    return repo.sweep(this.db, this.clock.now() - this.config.ttlMs);
  }

  /** Sweep expired keys now and every 10 minutes (servers; expired keys are also ignored when met). */
  start() {
    if (this.sweeper) return;
    const run = () => void this.sweep().catch(() => {});
    run();
    this.sweeper = setInterval(run, SWEEP_EVERY_MS);
    this.sweeper.unref();
  }

  stop() {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  private ttlText() {
    const h = this.config.ttlMs / 3_600_000;
    return Number.isInteger(h) ? `${h} hour${h === 1 ? "" : "s"}` : `${this.config.ttlMs / 1000} seconds`;
  }
}
