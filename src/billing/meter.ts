import type { Clock } from "../core/clock.js";
import type { DomainEvent, EventBus } from "../core/events.js";
import { isUuid } from "../core/ids.js";
import type { DB, Queryable } from "../store/db.js";
import { USAGE_EVENT } from "../sessions/service.js";
import { billingRepo, type NewUsage } from "./repo.js";

/** The event every area publishes for what it measured (sessions, hosting, sync, the room server, OTLP, …). */
export { USAGE_EVENT };

/** The largest quantity one record holds (a petabyte-hour of storage; more is an agent's garbage, not usage). */
export const MAX_QUANTITY = 1e15;

const str = (v: unknown, max = 200) => (typeof v === "string" && v !== "" ? v.slice(0, max) : null);

/** Annotations of a usage record: string values only, at most 32 keys, stored as canonical JSON. */
function annotationsOf(v: unknown): string | null {
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([k, x]) => typeof x === "string" && k.length <= 100)
    .slice(0, 32)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  return entries.length ? JSON.stringify(Object.fromEntries(entries.map(([k, x]) => [k, (x as string).slice(0, 500)]))) : null;
}

/** A usage.recorded event's data as a usage record (null when it carries no usable quantity). */
export function recordOf(ev: DomainEvent, now: number): NewUsage | null {
  const d = ev.data;
  const quantity = Number(d.quantity);
  const usageType = str(d.usage_type, 64);
  const unit = str(d.unit, 64);
  if (!usageType || !unit || !Number.isFinite(quantity) || quantity <= 0 || !isUuid(ev.project_id)) return null;
  return {
    project_id: ev.project_id,
    usage_type: usageType,
    unit,
    quantity: Math.min(quantity, MAX_QUANTITY),
    room_name: str(d.room_name),
    user_id: str(d.user_id) ?? str(d.participant_name),
    role: str(d.role, 64),
    provider: str(d.provider, 100),
    model: str(d.model),
    client: str(d.client),
    annotations: annotationsOf(d.annotations),
    recorded_at: now,
  };
}

export interface Measure {
  usage_type: string;
  unit: string;
  quantity: number;
  room_name?: string | null;
  user_id?: string | null;
  role?: string | null;
  provider?: string | null;
  model?: string | null;
  client?: string | null;
}

/**
 * Metering. `usage.recorded` events become usage records in the transaction that published them (so a record exists
 * exactly when what it measures committed); scheduled task runs count from their events the same way. High-rate
 * counts (API requests, webhook delivery attempts) are summed in memory and written every `flushMs` — and on close —
 * as one record per project and dimensions: a process killed with -9 loses at most that interval of these counts.
 */
export class UsageMeter {
  private pending = new Map<string, NewUsage>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private db: DB,
    private clock: Clock,
    private flushMs: number,
    private log?: { warn(obj: unknown, msg?: string): void },
  ) {}

  subscribe(bus: EventBus) {
    bus.subscribeTx(async (q: Queryable, ev) => {
      if (ev.type === USAGE_EVENT) {
        const r = recordOf(ev, this.clock.now());
        if (r) await billingRepo.insertUsage(q, [r]);
      } else if (ev.type === "scheduled_task.run.succeeded" || ev.type === "scheduled_task.run.failed") {
        const r = recordOf({ ...ev, data: { usage_type: "scheduler", unit: "run", quantity: 1, room_name: ev.data.room_name } }, this.clock.now());
        if (r) await billingRepo.insertUsage(q, [r]);
      }
    });
  }

  /** Count something now; written with the next flush. */
  count(projectId: string, m: Measure) {
    if (!isUuid(projectId) || !(m.quantity > 0) || !Number.isFinite(m.quantity)) return;
    const key = [projectId, m.usage_type, m.unit, m.room_name, m.user_id, m.role, m.provider, m.model, m.client].join("\0");
    const hit = this.pending.get(key);
    if (hit) hit.quantity += m.quantity;
    else {
      if (this.pending.size >= 100_000) void this.flush();
      this.pending.set(key, {
        project_id: projectId,
        usage_type: m.usage_type,
        unit: m.unit,
        quantity: m.quantity,
        room_name: m.room_name ?? null,
        user_id: m.user_id ?? null,
        role: m.role ?? null,
        provider: m.provider ?? null,
        model: m.model ?? null,
        client: m.client ?? null,
        annotations: null,
        recorded_at: 0,
      });
    }
  }

  /** Write the counts so far (one record per key). Records of projects deleted meanwhile are dropped. */
  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (!this.pending.size) return;
    const rows = [...this.pending.values()];
    this.pending = new Map();
    const now = this.clock.now();
    for (const r of rows) r.recorded_at = now;
    this.flushing = (async () => {
      try {
        await billingRepo.insertUsage(this.db, rows);
      } catch {
        // A project went away between the count and the flush (its foreign key): write the others one by one.
        for (const r of rows) await billingRepo.insertUsage(this.db, [r]).catch(() => {});
      }
    })()
      .catch((err) => this.log?.warn({ err }, "usage counts could not be written"))
      .finally(() => {
        this.flushing = null;
      });
    await this.flushing;
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  async stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}
