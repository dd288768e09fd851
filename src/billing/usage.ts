import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { badRequest } from "../core/errors.js";
import type { DB, Dialect } from "../store/db.js";
import type { PricingService } from "../pricing/service.js";
import { billingRepo, type Dimension, type UsageFilter } from "./repo.js";
import { MICROS } from "./service.js";

const HOUR = 3600_000;
const DAY = 24 * HOUR;
/** 1970-01-05 was a Monday: weeks (ISO, UTC) start there. */
const MONDAY = 4 * DAY;
export const INTERVALS = ["hour", "day", "week", "month"] as const;
export type Interval = (typeof INTERVALS)[number];
const MAX_BUCKETS = 5000;

/**
 * The reports of get_usage and the keys of their entries (besides `start`, `end`, `usage_type`, `unit`, `quantity`,
 * `records` that every usage entry has):
 */
export const REPORTS: Record<string, { by: Dimension[]; description: string }> = {
  usage: { by: [], description: "per interval, usage type and unit" },
  rooms: { by: ["room_name"], description: "… and room (`room_name`)" },
  users: { by: ["user_id", "role"], description: "… and participant or user (`user_id`: a participant's name, a user's id for API requests) and `role`" },
  models: { by: ["provider", "model"], description: "… and LLM `provider` and `model`" },
  clients: { by: ["client"], description: "… and API client (`client`: `api_key:<id>`, `user:<id>`, `participant:<kid>`)" },
  cost: { by: [], description: "what was charged per interval, usage type and price (`price_id`, `amount` in `currency`): priced periods only" },
};

export interface UsageQuery {
  start?: string;
  end?: string;
  interval?: string;
  report?: string;
  users?: string;
  room?: string;
  provider?: string;
  model?: string;
  usage_type?: string;
  client?: string;
  annotations?: string;
}

const floorTo = (t: number, interval: Interval) => {
  if (interval === "hour") return Math.floor(t / HOUR) * HOUR;
  if (interval === "day") return Math.floor(t / DAY) * DAY;
  if (interval === "week") return Math.floor((t - MONDAY) / (7 * DAY)) * 7 * DAY + MONDAY;
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
};
const nextOf = (t: number, interval: Interval) => {
  if (interval === "hour") return t + HOUR;
  if (interval === "day") return t + DAY;
  if (interval === "week") return t + 7 * DAY;
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
};

function time(v: string | undefined, what: string): number | undefined {
  if (v === undefined || v === "") return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw badRequest(`${what} must be an ISO 8601 date-time (e.g. 2026-05-01T00:00:00+00:00)`);
  return t;
}
const trimmed = (v: string | undefined) => (v === undefined || v.trim() === "" ? undefined : v.trim());

/** get_usage: usage records rolled up per interval (UTC) for one project. */
export class UsageReports {
  constructor(private deps: { db: DB; dialect: Dialect; clock: Clock; pricing: PricingService }) {}

  parse(projectId: string, q: UsageQuery) {
    const interval = (q.interval ?? "day") as Interval;
    if (!INTERVALS.includes(interval)) throw badRequest(`interval must be one of ${INTERVALS.join(", ")}`);
    const report = q.report ?? "usage";
    if (!(report in REPORTS)) throw badRequest(`report must be one of ${Object.keys(REPORTS).join(", ")}`);
    const now = this.deps.clock.now();
    // Default: up to now, what was recorded this very millisecond included.
    const end = time(q.end, "end") ?? now + 1;
    const start = time(q.start, "start") ?? end - 30 * DAY;
    if (start >= end) throw badRequest("start must be before end");
    const from = floorTo(start, interval);
    const buckets = (end - from) / { hour: HOUR, day: DAY, week: 7 * DAY, month: 28 * DAY }[interval];
    if (buckets > MAX_BUCKETS) throw badRequest(`that range holds more than ${MAX_BUCKETS} ${interval}s: use a longer interval or a shorter range`);
    let annotations: Record<string, string> | undefined;
    if (q.annotations !== undefined && q.annotations !== "") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(q.annotations);
      } catch {
        throw badRequest("annotations must be a JSON object of strings");
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== "string"))
        throw badRequest("annotations must be a JSON object of strings");
      annotations = parsed as Record<string, string>;
      if (Object.keys(annotations).length > 16) throw badRequest("annotations may hold at most 16 keys");
    }
    const users = trimmed(q.users)
      ?.split(",")
      .map((u) => u.trim())
      .filter(Boolean);
    if (users && users.length > 100) throw badRequest("users may list at most 100 ids");
    const filter: UsageFilter = {
      projectId,
      start,
      end,
      users,
      room: trimmed(q.room),
      provider: trimmed(q.provider),
      model: trimmed(q.model),
      usageType: trimmed(q.usage_type),
      client: trimmed(q.client),
      annotations,
    };
    if (report === "cost" && (filter.users || filter.room || filter.provider || filter.model || filter.client || filter.annotations))
      throw badRequest("the cost report is per project and usage type: it takes start, end, interval and usage_type only");
    return { interval, report, filter };
  }

  async usage(projectId: string, q: UsageQuery) {
    const { interval, report, filter } = this.parse(projectId, q);
    if (report === "cost") return { usage: await this.cost(filter, interval) };
    // Months are not of one length: sum days, then fold them into months.
    const sqlInterval = interval === "month" ? "day" : interval;
    const size = { hour: HOUR, day: DAY, week: 7 * DAY }[sqlInterval];
    const by = REPORTS[report].by;
    const rows = await this.rows(report, filter, size, sqlInterval === "week" ? MONDAY : 0, by);
    const out = new Map<string, Record<string, unknown> & { quantity: number; records: number; _t: number }>();
    for (const r of rows) {
      const t = floorTo(r.bucket, interval);
      const dims = Object.fromEntries(by.map((d) => [d, (r as Record<string, unknown>)[d] ?? null]));
      const key = [t, r.usage_type, r.unit, ...by.map((d) => dims[d])].join("\0");
      const hit = out.get(key);
      if (hit) {
        hit.quantity += r.quantity;
        hit.records += r.records;
      } else
        out.set(key, {
          _t: t,
          start: iso(t),
          end: iso(nextOf(t, interval)),
          usage_type: r.usage_type,
          unit: r.unit,
          ...dims,
          quantity: r.quantity,
          records: r.records,
        });
    }
    return {
      usage: [...out.values()]
        .sort((a, b) => a._t - b._t || String(a.usage_type).localeCompare(String(b.usage_type)) || String(a.unit).localeCompare(String(b.unit)))
        .map(({ _t, ...e }) => e),
    };
  }

  /**
   * The summed rows of a report: from the hourly rollups for the whole hours they cover (the `usage` and `models` reports
   * without room, user, client or annotation filters), from the raw records for the rest of the range.
   */
  private async rows(report: string, f: UsageFilter, size: number, origin: number, by: Dimension[]) {
    const raw = (g: UsageFilter) => billingRepo.report(this.deps.db, this.deps.dialect, g, size, origin, by);
    const rollable = (report === "usage" || report === "models") && !f.users?.length && !f.room && !f.client && !f.annotations;
    const first = Math.ceil(f.start / HOUR) * HOUR;
    const last = Math.floor(f.end / HOUR) * HOUR;
    if (!rollable || first >= last) return raw(f);
    // Runs of consecutive rolled-up hours; the gaps between them (and the partial hours at the ends) come from the records.
    const runs: [number, number][] = [];
    for (const h of await billingRepo.rolledHours(this.deps.db, first, last)) {
      const r = runs.at(-1);
      if (r && r[1] === h) r[1] = h + HOUR;
      else runs.push([h, h + HOUR]);
    }
    if (!runs.length || runs.length > 8) return raw(f);
    const parts = runs.map(([a, b]) => billingRepo.reportHourly(this.deps.db, f, a, b, size, origin, by as ("provider" | "model")[]));
    let at = f.start;
    for (const [a, b] of runs) {
      if (at < a) parts.push(raw({ ...f, start: at, end: a }));
      at = b;
    }
    if (at < f.end) parts.push(raw({ ...f, start: at }));
    return (await Promise.all(parts)).flat();
  }

  private async cost(f: UsageFilter, interval: Interval) {
    const rows = await billingRepo.charges(this.deps.db, f.projectId, f.start, f.end, f.usageType);
    const out = new Map<
      string,
      { _t: number; start: string; end: string; usage_type: string; price_id: string; quantity: number; amount: number; currency: string }
    >();
    for (const r of rows) {
      const t = floorTo(Number(r.period_start), interval);
      const key = `${t}\0${r.usage_type}\0${r.price_id}`;
      const hit = out.get(key);
      const amount = Number(r.amount) / MICROS;
      if (hit) {
        hit.quantity += Number(r.quantity);
        hit.amount += amount;
      } else
        out.set(key, {
          _t: t,
          start: iso(t),
          end: iso(nextOf(t, interval)),
          usage_type: r.usage_type,
          price_id: r.price_id,
          quantity: Number(r.quantity),
          amount,
          currency: this.deps.pricing.currency,
        });
    }
    return [...out.values()].sort((a, b) => a._t - b._t || a.usage_type.localeCompare(b.usage_type)).map(({ _t, ...e }) => e);
  }
}
