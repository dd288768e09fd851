import type { Clock } from "../core/clock.js";
import { iso, isoOrNull } from "../core/clock.js";
import type { Sealer } from "../core/crypto.js";
import { ApiError, badRequest, conflict, notFound, tooLarge } from "../core/errors.js";
import type { DomainEvent, EventBus } from "../core/events.js";
import { isUuid, newId } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import { CALL_EVENT, matches, PING_EVENT, type EventCatalog } from "./catalog.js";
import type { WebhookConfig } from "./config.js";
import { pyJsonDumps } from "./pyjson.js";
import { webhooksRepo, type AttemptRow, type DeliveryRow, type WebhookRow } from "./repo.js";
import { generateWebhookSecret } from "./signing.js";
import { checkUrlTarget, UnsafeUrlError } from "../core/ssrf.js";
import { parseWebhookUrl } from "./ssrf.js";

/** Largest delivery body (the serialized {"event","data",…}); larger events are recorded as failed, never sent. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;
const RESERVED = new Set(["event", "data", "action"]);

export interface WebhookInput {
  name?: string | null;
  description?: string | null;
  url?: string | null;
  events?: string[] | null;
  action?: string | null;
  payload?: unknown;
  secret?: string | null;
  enabled?: boolean | null;
}

function webhookJson(w: WebhookRow, secret: string) {
  return {
    id: w.id,
    name: w.name,
    description: w.description,
    url: w.url,
    events: JSON.parse(w.events) as string[],
    action: w.action,
    payload: w.payload === null ? null : (JSON.parse(w.payload) as Record<string, unknown>),
    secret,
    enabled: !!w.enabled,
    state: (w.enabled ? "active" : "disabled") as "active" | "disabled",
    disabled_reason: w.disabled_reason,
    created_at: iso(w.created_at),
    updated_at: iso(w.updated_at),
  };
}

type DeliveryView = Omit<DeliveryRow, "project_id">;

function deliveryJson(d: DeliveryView, attempts: AttemptRow[]) {
  let payload: unknown;
  try {
    payload = d.body ? JSON.parse(d.body) : null;
  } catch {
    payload = null;
  }
  return {
    id: d.id,
    webhook_id: d.webhook_id,
    event_id: d.event_id,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    next_attempt_at: d.status === "pending" ? iso(d.next_attempt_at) : null,
    locked_until: isoOrNull(d.locked_until),
    last_status_code: d.last_status_code,
    last_error: d.last_error,
    created_at: iso(d.created_at),
    updated_at: iso(d.updated_at),
    delivered_at: isoOrNull(d.delivered_at),
    payload,
    history: attempts.map((a) => ({
      attempt: a.attempt,
      started_at: iso(a.started_at),
      latency_ms: a.latency_ms,
      status_code: a.status_code,
      error: a.error,
      response_excerpt: a.response_excerpt,
    })),
  };
}

/** Build the delivery body: {"event","data"}, then "action" when set, then the webhook's own payload keys. */
export function buildBody(event: string, data: Record<string, unknown>, action: string | null, payload: Record<string, unknown> | null): string {
  const body: Record<string, unknown> = { event, data };
  if (action) body.action = action;
  if (payload) for (const [k, v] of Object.entries(payload)) if (!RESERVED.has(k)) body[k] = v;
  return pyJsonDumps(body);
}

/** Room events after which nobody should be called in: the room just emptied or is gone (a call would start it again). */
const NO_CALL = new Set(["room.ended", "room.deleted"]);

/**
 * The outbox body of a webhook with action "call" for an event of a room (its `data.room_name`), or null when the
 * event gets the standard delivery (not a call webhook, no room, room.ended / room.deleted, the ping):
 * `{"event": "room.call", "data": {"room_name", "arguments"}}`, where `arguments` is what the standard delivery
 * would have sent without "action": `{"event", "data", …payload keys}`. The dispatcher hands the row to the call
 * handoff (src/calls), which adds `room_url` and a participant token minted for each attempt.
 */
export function callBody(event: string, data: Record<string, unknown>, action: string | null, payload: Record<string, unknown> | null): string | null {
  if (action !== "call" || typeof data.room_name !== "string" || !data.room_name || NO_CALL.has(event) || event === PING_EVENT) return null;
  const args: Record<string, unknown> = { event, data };
  if (payload) for (const [k, v] of Object.entries(payload)) if (!RESERVED.has(k)) args[k] = v;
  return pyJsonDumps({ event: CALL_EVENT, data: { room_name: data.room_name, arguments: args } });
}

export class WebhooksService {
  /** Events whose transaction wrote outbox rows: the after-commit listener wakes the dispatcher only for those. */
  private wrote = new WeakSet<DomainEvent>();
  private perTx = new WeakMap<object, Map<string, Awaited<ReturnType<typeof webhooksRepo.enabledForProject>>>>();

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    bus: EventBus,
    private readonly config: WebhookConfig,
    private readonly dispatcher: { wake(): void; forget(webhookId: string): void },
    /** Every event the domains publish (src/domains.ts): what a webhook may subscribe to. */
    readonly catalog: EventCatalog,
  ) {
    bus.subscribeTx((q, ev) => this.enqueue(q, ev));
    bus.on((ev) => {
      if (this.wrote.has(ev)) this.dispatcher.wake();
    });
  }

  /** The outbox: inside the transaction of the change, one row per matching enabled webhook. */
  async enqueue(q: Queryable, ev: DomainEvent) {
    if (!ev.project_id) return;
    // One lookup per project and transaction: a change that publishes many events (a folder deleted) reads once.
    // (Only inside a transaction: a publisher that passes the database itself gets a fresh read every time.)
    let byProject = q.isTransaction ? this.perTx.get(q) : undefined;
    if (!byProject) {
      byProject = new Map();
      if (q.isTransaction) this.perTx.set(q, byProject);
    }
    let hooks = byProject.get(ev.project_id);
    if (!hooks) byProject.set(ev.project_id, (hooks = await webhooksRepo.enabledForProject(q, ev.project_id)));
    if (!hooks.length) return;
    const now = this.clock.now();
    const eventId = newId();
    const rows: DeliveryRow[] = [];
    for (const h of hooks) {
      if (!matches(JSON.parse(h.events) as string[], ev.type)) continue;
      rows.push(this.deliveryRow(h.id, ev.project_id, eventId, ev.type, ev.data, h.action, h.payload === null ? null : JSON.parse(h.payload), now));
    }
    if (!rows.length) return;
    await webhooksRepo.insertDeliveries(q, rows);
    this.wrote.add(ev);
  }

  private deliveryRow(
    webhookId: string,
    projectId: string,
    eventId: string,
    event: string,
    data: Record<string, unknown>,
    action: string | null,
    payload: Record<string, unknown> | null,
    now: number,
  ): DeliveryRow {
    const call = callBody(event, data, action, payload);
    if (call) event = CALL_EVENT;
    let body = call ?? buildBody(event, data, action, payload);
    let status: DeliveryRow["status"] = "pending";
    let error: string | null = null;
    if (body.length > MAX_PAYLOAD_BYTES) {
      // Recorded, visible in the deliveries list, never sent.
      error = `payload too large: ${body.length} bytes (the limit is ${MAX_PAYLOAD_BYTES})`;
      status = "failed";
      body = "";
    }
    return {
      id: newId(),
      webhook_id: webhookId,
      project_id: projectId,
      event_id: eventId,
      event,
      body,
      status,
      attempts: 0,
      next_attempt_at: now,
      locked_until: null,
      locked_by: null,
      last_status_code: null,
      last_error: error,
      created_at: now,
      updated_at: now,
      delivered_at: null,
    };
  }

  private async checkUrl(raw: string): Promise<string> {
    try {
      const u = parseWebhookUrl(raw.trim());
      await checkUrlTarget(u, this.config.allowPrivate);
      return u.toString();
    } catch (e) {
      if (e instanceof UnsafeUrlError)
        throw badRequest(
          e.reason === "private" ? `${e.message}; set MESHAGENT_WEBHOOK_ALLOW_PRIVATE=true to allow private targets (a server on your own network)` : e.message,
          "invalid_url",
        );
      throw e;
    }
  }

  private checkEvents(events: string[]): string[] {
    if (!events.length) throw badRequest('events must list at least one event (or "*")');
    for (const e of events) {
      const why = this.catalog.invalidSubscription(e);
      if (why) throw badRequest(`events: ${why}`);
    }
    return [...new Set(events)];
  }

  private checkPayload(p: unknown): string | null {
    if (p === undefined || p === null || p === "") return null;
    if (!isObj(p)) throw badRequest("payload must be a JSON object (or empty)");
    const s = JSON.stringify(p);
    if (s.length > MAX_PAYLOAD_BYTES) throw tooLarge(`payload must be at most ${MAX_PAYLOAD_BYTES} bytes`);
    return s;
  }

  private checkSecret(s: string): string {
    if (s.length < 8) throw badRequest("secret must be at least 8 characters");
    return s;
  }

  private checkName(n: string) {
    const name = n.trim();
    if (!name) throw badRequest("name must not be empty");
    return name;
  }

  async create(projectId: string, input: WebhookInput & { name: string; url: string; events: string[] }) {
    const now = this.clock.now();
    const secret = input.secret ? this.checkSecret(input.secret) : generateWebhookSecret();
    const row: WebhookRow = {
      id: newId(),
      project_id: projectId,
      name: this.checkName(input.name),
      description: input.description ?? "",
      url: await this.checkUrl(input.url),
      events: JSON.stringify(this.checkEvents(input.events)),
      action: input.action || null,
      payload: this.checkPayload(input.payload),
      secret_sealed: this.sealer.seal(secret),
      enabled: input.enabled === false ? 0 : 1,
      disabled_reason: input.enabled === false ? "disabled by a user" : null,
      created_at: now,
      updated_at: now,
    };
    await webhooksRepo.insert(this.db, row);
    return webhookJson(row, secret);
  }

  async list(projectId: string) {
    const rows = await webhooksRepo.list(this.db, projectId);
    return rows.map((r) => webhookJson(r, this.sealer.open(r.secret_sealed)));
  }

  private async row(projectId: string, id: string, q: Queryable = this.db) {
    const w = isUuid(id) ? await webhooksRepo.byId(q, projectId, id) : undefined;
    if (!w) throw notFound("webhook");
    return w;
  }

  async get(projectId: string, id: string) {
    const w = await this.row(projectId, id);
    return webhookJson(w, this.sealer.open(w.secret_sealed));
  }

  /** PUT: fields given (non-null) replace the stored ones; null or absent keeps them (contract: null = absent). */
  async update(projectId: string, id: string, input: WebhookInput) {
    const patch: Partial<WebhookRow> = {};
    if (input.name != null) patch.name = this.checkName(input.name);
    if (input.description != null) patch.description = input.description;
    if (input.url != null) patch.url = await this.checkUrl(input.url);
    if (input.events != null) patch.events = JSON.stringify(this.checkEvents(input.events));
    if (input.action != null) patch.action = input.action || null;
    if (input.payload != null) patch.payload = this.checkPayload(input.payload);
    if (input.secret != null) patch.secret_sealed = this.sealer.seal(this.checkSecret(input.secret));
    const now = this.clock.now();
    patch.updated_at = now;
    const w = await inTx(this.db, async (tx) => {
      const cur = await this.row(projectId, id, tx);
      if (input.enabled != null && !!cur.enabled !== input.enabled) {
        patch.enabled = input.enabled ? 1 : 0;
        patch.disabled_reason = input.enabled ? null : "disabled by a user";
        await webhooksRepo.setHeld(tx, id, !input.enabled, now);
      }
      await webhooksRepo.update(tx, projectId, id, patch);
      return { ...cur, ...patch };
    });
    this.dispatcher.forget(id);
    if (input.enabled) this.dispatcher.wake();
    return webhookJson(w, this.sealer.open(w.secret_sealed));
  }

  async delete(projectId: string, id: string) {
    if (!isUuid(id) || !(await webhooksRepo.delete(this.db, projectId, id))) throw notFound("webhook");
    this.dispatcher.forget(id);
  }

  async deliveries(projectId: string, id: string, opts: { limit?: number; offset?: number; status?: string | null }) {
    await this.row(projectId, id);
    const limit = pageSize(opts.limit, 50);
    const offset = pageOffset(opts.offset);
    const status = opts.status ?? undefined;
    const [rows, total] = await Promise.all([
      webhooksRepo.deliveries(this.db, id, { limit, offset, status }),
      webhooksRepo.countDeliveries(this.db, id, status),
    ]);
    const attempts = await webhooksRepo.attemptsOf(
      this.db,
      rows.map((r) => r.id),
    );
    const by = new Map<string, AttemptRow[]>();
    for (const a of attempts) by.set(a.delivery_id, [...(by.get(a.delivery_id) ?? []), a]);
    return { deliveries: rows.map((r) => deliveryJson(r, by.get(r.id) ?? [])), total };
  }

  async delivery(projectId: string, id: string, deliveryId: string) {
    await this.row(projectId, id);
    const d = isUuid(deliveryId) ? await webhooksRepo.delivery(this.db, id, deliveryId) : undefined;
    if (!d) throw notFound("delivery");
    return deliveryJson(d, await webhooksRepo.attemptsOf(this.db, [d.id]));
  }

  /** Replay a delivery: due now, with the same id and body (receivers dedupe by webhook-id). */
  async retry(projectId: string, id: string, deliveryId: string) {
    const w = await this.row(projectId, id);
    if (!w.enabled) throw conflict('the webhook is disabled; enable it (PUT with "enabled": true) before retrying');
    const d = isUuid(deliveryId) ? await webhooksRepo.delivery(this.db, id, deliveryId) : undefined;
    if (!d) throw notFound("delivery");
    if (!d.body) throw new ApiError(409, "conflict", `this delivery cannot be sent: ${d.last_error ?? "it has no body"}`);
    await webhooksRepo.requeue(this.db, id, deliveryId, this.clock.now());
    this.dispatcher.wake();
    return this.delivery(projectId, id, deliveryId);
  }

  /** A ping to this one webhook (delivered even while it is disabled, to check the endpoint). */
  async test(projectId: string, id: string) {
    const w = await this.row(projectId, id);
    const now = this.clock.now();
    const row = this.deliveryRow(
      w.id,
      projectId,
      newId(),
      PING_EVENT,
      { webhook_id: w.id, message: "ping" },
      w.action,
      w.payload === null ? null : JSON.parse(w.payload),
      now,
    );
    await webhooksRepo.insertDeliveries(this.db, [row]);
    this.dispatcher.wake();
    return deliveryJson(row, []);
  }
}
