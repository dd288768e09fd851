import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import type { PricingService, ResolvedPrice } from "../pricing/service.js";
import { billingRepo, type ChargeRow } from "./repo.js";
import { MICROS, monthStart, type BillingService } from "./service.js";
import type { UsageMeter } from "./meter.js";

export const PERIOD_MS = 3600_000;
/** The most one charge debits (10M currency units an hour): absurd reported usage can never make an amount unpostable. */
const MAX_CHARGE_MICROS = 1e13;
/** At most this many periods per run (a server that was down for long catches up over a few runs). */
const MAX_PERIODS_PER_RUN = 48;

const fmt = (q: number) => (Math.round(q * 1000) / 1000).toString();

export interface PeriodResult {
  period_start: string;
  records: number;
  charges: number;
  /** Debits per project, in currency units. */
  debits: Record<string, number>;
}

/**
 * The billing job. Each run: rolls up and prices every closed usage period (an hour of usage records, closed `graceMs` after its
 * end) into debit transactions, renews or ends local subscriptions, and runs due auto-recharges.
 *
 * Each closed hour is first rolled up (usage_rollups claims it): stored bytes are sampled into byte-hour records and the
 * hour's records summed per project, type, unit, provider and model into usage_hourly, which get_usage reads too.
 *
 * Pricing a period is one store transaction: claim the period (its row in billing_periods; a second process waits for
 * the first to commit and finds it claimed), roll it up if that is not done, price each of its sums with the prices in force at the period's start — less the
 * plan's free allowance left for the month — into billing_charges, and post one debit per project and usage type
 * (dedupe `usage:<period>:<type>`). A run that dies mid-way commits nothing; the next prices the period. Nothing is
 * charged twice and no period is skipped: periods are priced in order, from the first record on.
 */
export class BillingEngine {
  private timer: NodeJS.Timeout | null = null;
  private first: NodeJS.Timeout | null = null;
  private running: Promise<{ priced: PeriodResult[]; recharges: Record<string, string> }> | null = null;
  private stopped = false;

  constructor(
    private deps: { db: DB; clock: Clock; pricing: PricingService; billing: BillingService; meter: UsageMeter; log?: { warn(o: unknown, m?: string): void } },
    private config: { intervalMs: number; graceMs: number },
  ) {}

  /** Where a job that has done nothing yet starts: the first record's hour, else the last closed hour. */
  private async firstHour(): Promise<number> {
    const first = await billingRepo.firstUsageAt(this.deps.db);
    // Nothing recorded yet: start with the last closed period (its storage is sampled, the rest is empty).
    const from = first ?? this.deps.clock.now() - this.config.graceMs - PERIOD_MS;
    return Math.floor(from / PERIOD_MS) * PERIOD_MS;
  }

  private closed(start: number) {
    return start + PERIOD_MS + this.config.graceMs <= this.deps.clock.now();
  }

  /**
   * Roll up one closed hour, inside the caller's transaction (false: already rolled up): stored bytes are sampled into
   * byte-hour records (one per project with data), then the hour's records are summed into usage_hourly.
   */
  async rollPeriod(tx: Queryable, start: number): Promise<boolean> {
    const end = start + PERIOD_MS;
    if (!(await billingRepo.claimRollup(tx, start, end, this.deps.clock.now()))) return false;
    const stored = await billingRepo.storedBytes(tx);
    await billingRepo.insertUsage(
      tx,
      stored.map((s) => ({
        project_id: s.project_id,
        usage_type: "storage",
        unit: "byte_hour",
        quantity: Number(s.bytes) * (PERIOD_MS / 3600_000),
        room_name: null,
        user_id: null,
        role: null,
        provider: null,
        model: null,
        client: null,
        annotations: null,
        recorded_at: end - 1,
      })),
    );
    await billingRepo.rollup(tx, start, end);
    return true;
  }

  /** Roll up every closed hour not rolled up yet (at most `max`), in order; the number rolled up. */
  async rollClosedHours(max = 1000): Promise<number> {
    await this.deps.meter.flush();
    let done = 0;
    for (let i = 0; i < max && !this.stopped; i++) {
      const start = (await billingRepo.lastRollupEnd(this.deps.db)) ?? (await this.firstHour());
      if (!this.closed(start)) break;
      if (await inTx(this.deps.db, (tx) => this.rollPeriod(tx, start))) done++;
    }
    return done;
  }

  /** Price every closed period not priced yet (at most MAX_PERIODS_PER_RUN). */
  async priceClosedPeriods(): Promise<PeriodResult[]> {
    await this.deps.meter.flush();
    const out: PeriodResult[] = [];
    for (let i = 0; i < MAX_PERIODS_PER_RUN && !this.stopped; i++) {
      const start = (await billingRepo.lastPeriodEnd(this.deps.db)) ?? (await this.firstHour());
      if (!this.closed(start)) break;
      const r = await this.pricePeriod(start);
      if (r) out.push(r);
    }
    return out;
  }

  /** Price one period (null: another run had claimed it). */
  async pricePeriod(start: number): Promise<PeriodResult | null> {
    const end = start + PERIOD_MS;
    const { pricing, billing } = this.deps;
    const now = this.deps.clock.now();
    const res = await inTx(this.deps.db, async (tx) => {
      if (!(await billingRepo.claimPeriod(tx, start, end, now))) return null;
      // Its rollup, unless the rollup job made it already.
      await this.rollPeriod(tx, start);
      const groups = await billingRepo.hourGroups(tx, start);
      const records = groups.reduce((a, g) => a + g.records, 0);
      // Sum per (project, price): several groups (providers, models) may share a price.
      const perPrice = new Map<string, { projectId: string; price: ResolvedPrice; quantity: number }>();
      for (const g of groups) {
        const price = pricing.priceFor(start, g);
        if (!price) continue;
        const key = `${g.project_id}\0${price.id}`;
        const hit = perPrice.get(key);
        if (hit) hit.quantity += g.quantity;
        else perPrice.set(key, { projectId: g.project_id, price, quantity: g.quantity });
      }
      const projects = [...new Set([...perPrice.values()].map((p) => p.projectId))];
      const used = await billingRepo.chargedQuantity(tx, projects, monthStart(start), start);
      const accounts = new Map<string, Awaited<ReturnType<typeof billingRepo.account>>>();
      for (const p of projects) accounts.set(p, await billingRepo.account(tx, p));
      const charges: ChargeRow[] = [];
      const debits = new Map<string, { projectId: string; usageType: string; micros: number; parts: string[] }>();
      for (const [key, c] of perPrice) {
        const allowance = (billing.planOf(accounts.get(c.projectId))?.allowances[c.price.id] ?? 0) * c.price.unit_size;
        const before = used.get(key) ?? 0;
        const billable = Math.max(0, before + c.quantity - allowance) - Math.max(0, before - allowance);
        const micros = Math.min(MAX_CHARGE_MICROS, Math.round((billable / c.price.unit_size) * c.price.unit_price * MICROS));
        charges.push({
          project_id: c.projectId,
          period_start: start,
          price_id: c.price.id,
          usage_type: c.price.usage_type,
          quantity: c.quantity,
          billable,
          amount_micros: micros,
          transaction_id: null,
        });
        if (micros <= 0) continue;
        const dk = `${c.projectId}\0${c.price.usage_type}`;
        const d = debits.get(dk) ?? { projectId: c.projectId, usageType: c.price.usage_type, micros: 0, parts: [] };
        d.micros += micros;
        d.parts.push(`${fmt(billable / c.price.unit_size)} ${c.price.unit}`);
        debits.set(dk, d);
      }
      const afters: (() => void)[] = [];
      const perProject: Record<string, number> = {};
      const txIds = new Map<string, string>();
      for (const d of debits.values()) {
        const r = await billing.post(tx, {
          projectId: d.projectId,
          amountMicros: -d.micros,
          kind: "usage",
          description: `Usage: ${d.usageType} ${d.parts.join(", ")} (${iso(start).slice(0, 13)}:00 UTC)`,
          dedupe: `usage:${start}:${d.usageType}`,
          reference: iso(start),
          referenceType: "usage_period",
        });
        afters.push(r.after);
        if (r.transaction) txIds.set(`${d.projectId}\0${d.usageType}`, r.transaction.id);
        perProject[d.projectId] = (perProject[d.projectId] ?? 0) - d.micros / MICROS;
      }
      for (const c of charges) c.transaction_id = txIds.get(`${c.project_id}\0${c.usage_type}`) ?? null;
      await billingRepo.insertCharges(tx, charges);
      await billingRepo.finishPeriod(tx, start, records, charges.length);
      return { result: { period_start: iso(start), records, charges: charges.length, debits: perProject }, afters };
    });
    if (!res) return null;
    res.afters.forEach((f) => f());
    return res.result;
  }

  /** One run of the job. */
  async tick() {
    if (this.running) return this.running;
    this.running = (async () => {
      await this.rollClosedHours();
      const priced = await this.priceClosedPeriods();
      await this.deps.billing.renewLocalSubscriptions();
      const recharges = await this.deps.billing.runRecharges();
      return { priced, recharges };
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  start() {
    if (this.timer) return;
    this.stopped = false;
    // A stopped engine starts no run (the first one is a timeout that may fire after stop()).
    const run = () => {
      if (this.stopped) return;
      void this.tick().catch((err) => this.deps.log?.warn({ err }, "billing job failed; it runs again next interval"));
    };
    this.timer = setInterval(run, this.config.intervalMs);
    this.timer.unref();
    this.first = setTimeout(run, 1000);
    this.first.unref();
  }

  async stop() {
    this.stopped = true;
    if (this.first) clearTimeout(this.first);
    this.first = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }
}
