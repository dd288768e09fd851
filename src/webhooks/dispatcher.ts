import http from "node:http";
import https from "node:https";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Clock } from "../core/clock.js";
import { systemClock } from "../core/clock.js";
import type { Sealer } from "../core/crypto.js";
import { newId } from "../core/ids.js";
import { inTx, type Store } from "../store/db.js";
import type { WebhookConfig } from "./config.js";
import { webhooksRepo, type AttemptResult, type ClaimedRow } from "./repo.js";
import { signedHeaders, standardSigner } from "./signing.js";
import { guardedLookup } from "../core/ssrf.js";
import { postSigned, type PostOutcome } from "./transport.js";
import { CALL_EVENT } from "./catalog.js";

/**
 * Retry schedule: the delay before attempt n+1 after attempt n failed. 12 attempts in all; the delays add up to
 * 27 h 52 min 35 s, and each is stretched by a random 0–25 % (jitter), so a failing endpoint is retried for at
 * least 24 h and at most ~35 h before the delivery is marked failed.
 */
export const RETRY_DELAYS_MS = [
  5_000,
  30_000,
  2 * 60_000,
  5 * 60_000,
  15 * 60_000,
  30 * 60_000,
  3600_000,
  2 * 3600_000,
  4 * 3600_000,
  8 * 3600_000,
  12 * 3600_000,
];
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
export const JITTER = 0.25;
/** Longest Retry-After we honour. */
export const MAX_RETRY_AFTER_MS = 24 * 3600_000;
export { EXCERPT_BYTES } from "./transport.js";

/** Delay before the next attempt after `attempt` (1-based) failed, or null when the retries are exhausted. */
export function backoff(attempt: number, rand = Math.random): number | null {
  const base = RETRY_DELAYS_MS[attempt - 1];
  if (base === undefined) return null;
  return Math.round(base * (1 + JITTER * rand()));
}

/** Retry-After in ms (delta-seconds or an HTTP date), clamped to [1 s, 24 h]; null when absent or unparsable. */
export function parseRetryAfter(v: string | undefined, now: number): number | null {
  if (!v) return null;
  const s = v.trim();
  let ms: number;
  if (/^\d+$/.test(s)) ms = Number(s) * 1000;
  else {
    const t = Date.parse(s);
    if (Number.isNaN(t)) return null;
    ms = t - now;
  }
  return Math.min(Math.max(ms, 1000), MAX_RETRY_AFTER_MS);
}

interface HookInfo {
  url: URL;
  secret: string;
  signer: ReturnType<typeof standardSigner>;
  updatedAt: number;
  checkedAt: number;
  /** For room.call rows (webhooks with action "call"): who is called, and the webhook's payload (JSON text or null). */
  projectId: string;
  name: string;
  payload: string | null;
}

const HOOK_TTL_MS = 1000;
/** How long an endpoint that timed out or refused stays limited to one attempt in flight, and how long its extra rows wait. */
const TROUBLED_MS = 30_000;
const TROUBLED_DEFER_MS = 5_000;

/** One attempt's outcome. `final` overrides the status rules: a WebSocket handoff (101) is delivered, a call into a room that no longer exists failed. */
export interface DeliveryOutcome extends PostOutcome {
  final?: "delivered" | "failed";
}
type Outcome = DeliveryOutcome;

/**
 * The room.call handoff of webhooks with action "call" (src/calls: CallHandoff.deliverWebhookCall). Their outbox rows
 * have the event `room.call`; the dispatcher hands each attempt over and records the outcome like any other.
 */
export interface WebhookCallDelivery {
  deliverWebhookCall(d: {
    projectId: string;
    webhook: { name: string; payload: string | null };
    url: URL;
    secret: string;
    /** The row's body: {"event": "room.call", "data": {"room_name", "arguments"}} (the token is minted per attempt). */
    body: string;
    deliveryId: string;
    attempt: number;
    timeoutMs: number;
    signal: AbortSignal;
  }): Promise<DeliveryOutcome>;
}

/**
 * Delivers outbox rows. Claims due rows (with a lease, `locked_until`, that a killed process's claims outlive only
 * briefly), sends them with bounded concurrency, and writes every attempt back in small batches.
 */
export class WebhookDispatcher {
  /** Each delivery attempt made (usage metering: usage_type "webhooks", unit "delivery"); set by the wiring. */
  onAttempt?: (projectId: string) => void;
  readonly worker = `${process.pid}-${randomBytes(4).toString("hex")}`;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeFn: (() => void) | null = null;
  private woken = false;
  private inflight = new Map<string, AbortController>();
  private results: AttemptResult[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | null = null;
  private hooks = new Map<string, HookInfo>();
  /** Deliveries in flight per webhook, and webhooks whose last attempt timed out or could not connect (until when). */
  private perHook = new Map<string, number>();
  private troubled = new Map<string, number>();
  private httpAgent: http.Agent;
  private httpsAgent: https.Agent;
  /** Leases are about process liveness, so they use real time even when tests move the scheduling clock. */
  private leaseClock: Clock = systemClock;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    private readonly config: WebhookConfig,
    private readonly log?: Pick<Logger, "warn" | "error">,
    /** Delivers the `room.call` rows of webhooks with action "call" (absent: those rows fail). */
    private readonly calls?: WebhookCallDelivery,
  ) {
    const agentOpts = { keepAlive: true, maxSockets: config.concurrency, lookup: guardedLookup(config.allowPrivate) };
    this.httpAgent = new http.Agent(agentOpts as http.AgentOptions);
    this.httpsAgent = new https.Agent(agentOpts as https.AgentOptions);
  }

  get isRunning() {
    return this.running;
  }

  async start() {
    if (this.running || !this.config.dispatcher) return;
    if (this.store.dialect === "sqlite") await webhooksRepo.releaseAllLeases(this.store.db);
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Stop claiming, abort what is in flight (those rows are released, not counted), write back what finished. */
  async stop() {
    if (!this.running) return;
    this.running = false;
    this.wake();
    await this.loopDone;
    for (const c of this.inflight.values()) c.abort();
    while (this.inflight.size) await new Promise((r) => setTimeout(r, 5));
    await this.flush();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** Look for due rows now (called after commits that wrote outbox rows, and by tests that move the clock). */
  wake() {
    this.woken = true;
    const f = this.wakeFn;
    this.wakeFn = null;
    f?.();
  }

  private sleep(ms: number) {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wakeFn = null;
        resolve();
      }, ms);
      this.wakeFn = () => {
        clearTimeout(t);
        resolve();
      };
    }).then(() => {
      this.woken = false;
    });
  }

  private async loop() {
    const max = this.config.concurrency;
    while (this.running) {
      const free = max - this.inflight.size;
      // Claim in chunks: when busy, wait until half the slots are free again.
      if (free < Math.max(1, max / 2) && this.inflight.size > 0) {
        await this.sleep(this.config.pollMs);
        continue;
      }
      let rows: ClaimedRow[];
      try {
        const leaseNow = this.leaseClock.now();
        rows = await webhooksRepo.claim(this.store.db, this.store.dialect, {
          now: this.clock.now(),
          leaseNow,
          leaseUntil: leaseNow + this.config.leaseMs,
          worker: this.worker,
          limit: free,
        });
        if (rows.length) await this.loadHooks(rows);
      } catch (err) {
        if (!this.running) break;
        this.log?.error({ err }, "webhook dispatcher: claim failed");
        await this.sleep(this.config.pollMs);
        continue;
      }
      for (const row of rows) this.launch(row);
      if (rows.length === 0) await this.sleep(this.config.pollMs);
    }
  }

  /**
   * URL and secret of the claimed rows' webhooks. Cached for HOOK_TTL_MS; an update in this process forgets its entry
   * at once (another process's update is seen within HOOK_TTL_MS).
   */
  private async loadHooks(rows: ClaimedRow[]) {
    const now = this.leaseClock.now();
    const ids = [...new Set(rows.map((r) => r.webhook_id))].filter((id) => (this.hooks.get(id)?.checkedAt ?? 0) <= now - HOOK_TTL_MS);
    if (!ids.length) return;
    const found = await webhooksRepo.forDelivery(this.store.db, ids);
    for (const h of found) {
      const cached = this.hooks.get(h.id);
      if (cached && cached.updatedAt === h.updated_at) {
        cached.checkedAt = now;
        continue;
      }
      const secret = this.sealer.open(h.secret_sealed);
      this.hooks.set(h.id, {
        url: new URL(h.url),
        secret,
        signer: standardSigner(secret),
        updatedAt: h.updated_at,
        checkedAt: now,
        projectId: h.project_id,
        name: h.name,
        payload: h.payload,
      });
    }
    const present = new Set(found.map((h) => h.id));
    for (const id of ids) if (!present.has(id)) this.hooks.delete(id);
    if (this.hooks.size > 10_000) this.hooks.clear();
  }

  /** A webhook changed or was deleted in this process: read it again before the next attempt. */
  forget(webhookId: string) {
    this.hooks.delete(webhookId);
  }

  private launch(row: ClaimedRow) {
    // An endpoint that is timing out or refusing connections gets one attempt in flight at a time; its other due rows
    // wait (without counting an attempt), so it cannot hold every slot for the length of a timeout.
    const troubledUntil = this.troubled.get(row.webhook_id) ?? 0;
    if (troubledUntil > this.leaseClock.now() && (this.perHook.get(row.webhook_id) ?? 0) >= 1) {
      const now = this.clock.now();
      const attempt = {
        id: "",
        delivery_id: row.id,
        attempt: row.attempts,
        started_at: now,
        latency_ms: 0,
        status_code: null,
        error: null,
        response_excerpt: null,
        worker: this.worker,
      };
      this.push({ delivery: row, attempt, now, outcome: "defer", nextAt: now + TROUBLED_DEFER_MS });
      return;
    }
    this.perHook.set(row.webhook_id, (this.perHook.get(row.webhook_id) ?? 0) + 1);
    const ctl = new AbortController();
    this.inflight.set(row.id, ctl);
    void this.deliver(row, ctl.signal)
      .then((r) => {
        this.logFailure(r);
        this.push(r);
      })
      .catch((err) => this.log?.error({ err }, "webhook dispatcher: delivery crashed"))
      .finally(() => {
        const n = (this.perHook.get(row.webhook_id) ?? 1) - 1;
        if (n > 0) this.perHook.set(row.webhook_id, n);
        else this.perHook.delete(row.webhook_id);
        this.inflight.delete(row.id);
        if (this.inflight.size <= this.config.concurrency / 2) this.wake();
      });
  }

  private async deliver(row: ClaimedRow, signal: AbortSignal): Promise<AttemptResult> {
    const hook = this.hooks.get(row.webhook_id);
    const attemptNo = row.attempts + 1;
    const startedAt = this.clock.now();
    const t0 = performance.now();
    // Its webhook was deleted after the claim (the row is about to go with it): put it aside, never spin on it.
    if (!hook)
      return {
        delivery: row,
        attempt: {
          id: "",
          delivery_id: row.id,
          attempt: attemptNo,
          started_at: startedAt,
          latency_ms: 0,
          status_code: null,
          error: null,
          response_excerpt: null,
          worker: this.worker,
        },
        now: startedAt,
        outcome: "defer",
        nextAt: startedAt + TROUBLED_DEFER_MS,
      };
    const out = await this.send(hook, row, attemptNo, signal);
    const now = this.clock.now();
    const attempt = {
      id: newId(),
      delivery_id: row.id,
      attempt: attemptNo,
      started_at: startedAt,
      latency_ms: Math.round(performance.now() - t0),
      status_code: out.status,
      error: out.error,
      response_excerpt: out.excerpt,
      worker: this.worker,
    };
    const base = { delivery: row, attempt, now };
    if (signal.aborted) return { ...base, outcome: "release" };
    this.onAttempt?.(hook.projectId);
    if (out.status === null) this.troubled.set(row.webhook_id, this.leaseClock.now() + TROUBLED_MS);
    else this.troubled.delete(row.webhook_id);
    if (out.final) return { ...base, outcome: out.final };
    if (out.status !== null && out.status >= 200 && out.status < 300) return { ...base, outcome: "delivered" };
    if (out.status === 410) return { ...base, outcome: "failed", disableWebhook: row.webhook_id };
    const delay = parseRetryAfter(out.retryAfter, now) ?? backoff(attemptNo);
    if (delay === null || attemptNo >= MAX_ATTEMPTS) return { ...base, outcome: "failed" };
    return { ...base, outcome: "retry", nextAt: now + delay };
  }

  private send(hook: HookInfo, row: ClaimedRow, attemptNo: number, signal: AbortSignal): Promise<Outcome> {
    // A webhook with action "call": the room.call handoff (a fresh participant token per attempt) is src/calls' job.
    if (row.event === CALL_EVENT) {
      if (!this.calls) return Promise.resolve({ status: null, error: "room.call handoffs are not available in this process", excerpt: null });
      return this.calls.deliverWebhookCall({
        projectId: hook.projectId,
        webhook: { name: hook.name, payload: hook.payload },
        url: hook.url,
        secret: hook.secret,
        body: row.body,
        deliveryId: row.id,
        attempt: attemptNo,
        timeoutMs: this.config.timeoutMs,
        signal,
      });
    }
    const headers = signedHeaders({
      body: row.body,
      secret: hook.secret,
      signer: hook.signer,
      event: row.event,
      deliveryId: row.id,
      attempt: attemptNo,
      nowMs: this.clock.now(),
    });
    return postSigned(hook.url, row.body, headers, {
      allowPrivate: this.config.allowPrivate,
      timeoutMs: this.config.timeoutMs,
      signal,
      abortReason: "dispatcher stopping",
      agents: { http: this.httpAgent, https: this.httpsAgent },
    });
  }

  /** Failed attempts and deliveries given up since this dispatcher started (/metrics). */
  readonly failures = { attempts: 0, deliveries: 0 };

  /** A failed attempt is logged (warn; error when the delivery gives up): which webhook, which event, why. */
  private logFailure(r: AttemptResult) {
    if (r.outcome !== "retry" && r.outcome !== "failed") return;
    const a = r.attempt;
    this.failures.attempts++;
    if (r.outcome === "failed") this.failures.deliveries++;
    const detail = {
      webhook_id: r.delivery.webhook_id,
      delivery_id: r.delivery.id,
      event: r.delivery.event,
      attempt: a.attempt,
      status: a.status_code,
      error: a.error,
    };
    const why = a.status_code !== null ? `answered ${a.status_code}` : (a.error ?? "no answer");
    if (r.outcome === "failed") this.log?.error(detail, `webhook delivery failed for good after ${a.attempt} attempts: ${why}`);
    else this.log?.warn({ ...detail, next_at: r.nextAt }, `webhook delivery attempt ${a.attempt} failed (${why}); retrying`);
  }

  private push(r: AttemptResult) {
    this.results.push(r);
    if (this.results.length >= 128) void this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flush(), 2);
  }

  /** Write back finished attempts in one transaction (serialized: one flush at a time). */
  flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.flushing = this.flushing.then(async () => {
      const batch = this.results;
      this.results = [];
      if (!batch.length) return;
      const write = (b: AttemptResult[]) => inTx(this.store.db, (tx) => webhooksRepo.record(tx, this.store.dialect, this.worker, b));
      try {
        await write(batch);
      } catch (err) {
        // Record one by one so one bad row cannot lose the others. Rows that still fail stay leased and are
        // attempted again when the lease ends: at-least-once holds.
        this.log?.warn({ err }, "webhook dispatcher: recording a batch failed; recording one by one");
        for (const r of batch) await write([r]).catch((e) => this.log?.error({ err: e }, "webhook dispatcher: recording an attempt failed"));
      }
    });
    return this.flushing;
  }

  /** For tests and the benchmark: resolves when nothing is in flight and every finished attempt is written. */
  async idle() {
    while (this.inflight.size) await new Promise((r) => setTimeout(r, 5));
    await this.flush();
  }
}
