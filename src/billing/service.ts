import type { Clock } from "../core/clock.js";
import { iso, isoOrNull } from "../core/clock.js";
import { ApiError, badRequest, notFound } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { newId } from "../core/ids.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import type { PricingService } from "../pricing/service.js";
import { billingRepo, type AccountRow, type CheckoutRow, type TransactionRow } from "./repo.js";
import type { PaymentProvider } from "./providers.js";

export const MICROS = 1_000_000;
/** Currency units (the wire's floats) → integer micro-units, refusing what is not a finite amount. */
export function toMicros(v: number, what: string, opts: { min?: number; allowZero?: boolean } = {}): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw badRequest(`${what} must be a number`);
  const m = Math.round(v * MICROS);
  if (!Number.isSafeInteger(m) || Math.abs(m) > 1e15) throw badRequest(`${what} is out of range`);
  if (opts.min !== undefined && m < opts.min * MICROS) throw badRequest(`${what} must be at least ${opts.min}`);
  if (opts.allowZero === false && m === 0) throw badRequest(`${what} must not be 0`);
  return m;
}
export const fromMicros = (m: number | null) => (m === null ? null : m / MICROS);

/** Start of the calendar month (UTC) of `t`. */
export const monthStart = (t: number) => {
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
};
/** Same day of the next month (UTC), clamped to that month's length. */
export const addMonth = (t: number) => {
  const d = new Date(t);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + 1;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return Date.UTC(y, m, Math.min(d.getUTCDate(), last), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds());
};

export type TransactionKind = "purchase" | "usage" | "adjustment" | "refund" | "recharge";

export interface LedgerEntry {
  projectId: string;
  amountMicros: number;
  kind: TransactionKind;
  description: string;
  /** Unique per project: a second post with the same key changes nothing (retries, replays, re-runs). */
  dedupe: string;
  reference?: string | null;
  referenceType?: string | null;
  actor?: string | null;
}

export interface BillingConfig {
  provider: "local" | "stripe";
  enforce: boolean;
  intervalMs: number;
  graceMs: number;
  enabled: boolean;
  lowBalanceMicros: number;
  meterFlushMs: number;
  checkoutTtlMs: number;
  stripe: { secretKey?: string; webhookSecret?: string; priceId?: string; apiUrl?: string };
}

export interface BillingDeps {
  db: DB;
  clock: Clock;
  bus: EventBus;
  pricing: PricingService;
  provider: PaymentProvider;
  log?: { warn(obj: unknown, msg?: string): void };
}

const RECHARGE_GAP_MS = 60_000;
const ENFORCE_CACHE_MS = 2_000;

function urlOf(v: unknown, what: string): string {
  if (typeof v !== "string" || v.length > 2000) throw badRequest(`${what} must be an absolute http(s) URL of at most 2000 characters`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw badRequest(`${what} must be an absolute http(s) URL`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw badRequest(`${what} must be an http(s) URL`);
  return v;
}

/**
 * The ledger: a project's balance is the sum of its immutable transactions (integer micro-units of the pricing
 * currency); the account row caches that sum, updated in the transaction that adds one. Checkout, subscriptions,
 * auto-recharge and enforcement live here too; the billing job (engine.ts) prices usage into debits.
 */
export class BillingService {
  private refusals = new Map<string, { at: number; message: string | null }>();

  constructor(
    private deps: BillingDeps,
    readonly config: BillingConfig,
  ) {}

  get provider() {
    return this.deps.provider;
  }
  get currency() {
    return this.deps.pricing.currency;
  }

  // ------------------------------------------------------------------ the ledger

  /**
   * Add one transaction inside the caller's transaction (nothing when its dedupe key was used), keep the balance and
   * note a low-balance crossing (`billing.balance_low`, once per crossing). Returns what to run after the commit.
   */
  async post(q: Queryable, e: LedgerEntry): Promise<{ inserted: boolean; balance: number; transaction: TransactionRow | null; after: () => void }> {
    if (!Number.isSafeInteger(e.amountMicros)) throw badRequest("the amount is out of range");
    const now = this.deps.clock.now();
    await billingRepo.createAccount(q, e.projectId, now);
    const row: TransactionRow = {
      id: newId(),
      project_id: e.projectId,
      amount_micros: e.amountMicros,
      kind: e.kind,
      reference: e.reference ?? null,
      reference_type: e.referenceType ?? null,
      description: e.description,
      dedupe: e.dedupe,
      actor: e.actor ?? null,
      created_at: now,
    };
    if (!(await billingRepo.insertTransaction(q, row))) {
      const acct = (await billingRepo.account(q, e.projectId))!;
      return { inserted: false, balance: Number(acct.balance_micros), transaction: null, after: () => {} };
    }
    const acct = await billingRepo.addToBalance(q, e.projectId, e.amountMicros, now);
    const balance = acct.balance_micros;
    const afters = [
      await this.deps.bus.publish(q, {
        type: "billing.transaction.created",
        project_id: e.projectId,
        data: { id: row.id, amount: fromMicros(row.amount_micros), kind: row.kind, description: row.description, balance: fromMicros(balance) },
      }),
    ];
    afters.push(await this.crossing(q, e.projectId, acct));
    this.refusals.delete(e.projectId);
    return { inserted: true, balance, transaction: row, after: () => afters.forEach((f) => f()) };
  }

  /** billing.balance_low once when the balance goes below the threshold; re-armed when it is back at or above it. */
  private async crossing(
    q: Queryable,
    projectId: string,
    acct: Pick<AccountRow, "balance_micros" | "auto_recharge_threshold_micros" | "balance_low">,
  ): Promise<() => void> {
    const balance = Number(acct.balance_micros);
    const threshold = acct.auto_recharge_threshold_micros ?? this.config.lowBalanceMicros;
    const below = balance < Number(threshold);
    if (below === !!acct.balance_low) return () => {};
    await billingRepo.updateAccount(q, projectId, { balance_low: below ? 1 : 0 });
    if (!below) return () => {};
    return this.deps.bus.publish(q, {
      type: "billing.balance_low",
      project_id: projectId,
      data: { balance: fromMicros(balance), threshold: fromMicros(Number(threshold)), currency: this.currency },
    });
  }

  /** Post in a transaction of its own. */
  async postNow(e: LedgerEntry) {
    const r = await inTx(this.deps.db, (tx) => this.post(tx, e));
    r.after();
    return r;
  }

  /** An operator's adjustment (positive credits, negative debits), with its reason; idempotent on `key` when given. */
  async adjust(projectId: string, amount: number, reason: string, actor: string | null, key?: string) {
    const amountMicros = toMicros(amount, "amount", { allowZero: false });
    if (typeof reason !== "string" || !reason.trim() || reason.length > 500) throw badRequest("reason must be a non-empty string of at most 500 characters");
    const r = await this.postNow({
      projectId,
      amountMicros,
      kind: "adjustment",
      description: `Adjustment: ${reason.trim()}`,
      dedupe: key ? `adjust:${key}` : `adjust:${newId()}`,
      reference: actor,
      referenceType: "adjustment",
      actor,
    });
    const t = r.transaction ?? (key ? await billingRepo.transactionByDedupe(this.deps.db, projectId, `adjust:${key}`) : undefined);
    return { transaction: t ? this.transactionJson(t) : null, balance: fromMicros(r.balance)!, created: r.inserted };
  }

  /** A refund of an earlier credit (never more than it credited): a negative transaction referencing it. */
  async refund(projectId: string, transactionId: string, actor: string | null) {
    const original = await billingRepo.transaction(this.deps.db, projectId, transactionId);
    if (!original) throw notFound("transaction");
    if (original.amount_micros <= 0 || original.kind === "refund")
      throw badRequest("only a credit (purchase, recharge or positive adjustment) can be refunded");
    const r = await this.postNow({
      projectId,
      amountMicros: -original.amount_micros,
      kind: "refund",
      description: `Refund of ${original.description}`,
      dedupe: `refund:${original.id}`,
      reference: original.id,
      referenceType: "transaction",
      actor,
    });
    return { balance: fromMicros(r.balance)!, created: r.inserted };
  }

  transactionJson(t: TransactionRow) {
    return {
      id: t.id,
      amount: fromMicros(Number(t.amount_micros))!,
      reference: t.reference,
      referenceType: t.reference_type,
      kind: t.kind,
      description: t.description,
      created_at: iso(Number(t.created_at)),
    };
  }

  private async account(projectId: string): Promise<AccountRow> {
    return billingRepo.ensureAccount(this.deps.db, projectId, this.deps.clock.now());
  }

  async balance(projectId: string) {
    const a = await this.account(projectId);
    const num = (v: number | null) => (v === null ? null : fromMicros(Number(v)));
    return {
      balance: fromMicros(Number(a.balance_micros))!,
      currency: this.currency,
      auto_recharge_enabled: !!a.auto_recharge_enabled,
      auto_recharge_threshold: num(a.auto_recharge_threshold_micros),
      auto_recharge_amount: num(a.auto_recharge_amount_micros),
      last_recharge: isoOrNull(a.last_recharge_at === null ? null : Number(a.last_recharge_at)),
      monthly_budget: num(a.monthly_budget_micros),
      auto_recharge_paused: !!a.auto_recharge_paused,
      auto_recharge_error: a.auto_recharge_error,
      auto_recharged_this_month: fromMicros(await billingRepo.rechargedSince(this.deps.db, projectId, monthStart(this.deps.clock.now()))),
    };
  }

  async transactions(projectId: string, limit: number) {
    const rows = await billingRepo.recentTransactions(this.deps.db, projectId, limit);
    return { transactions: rows.map((t) => this.transactionJson(t)) };
  }

  /** set_auto_recharge: enabling clears a pause; the job recharges within its interval if the balance is already low. */
  async setAutoRecharge(projectId: string, b: { enabled: boolean; amount: number; threshold: number; monthly_budget?: number | null }) {
    const amount = toMicros(b.amount, "amount");
    const threshold = toMicros(b.threshold, "threshold");
    const budget = b.monthly_budget == null ? null : toMicros(b.monthly_budget, "monthly_budget");
    if (b.enabled && amount <= 0) throw badRequest("amount must be positive to enable auto-recharge");
    if (budget !== null && budget < 0) throw badRequest("monthly_budget must not be negative");
    if (b.enabled && budget !== null && budget < amount) throw badRequest("monthly_budget must be at least one recharge's amount");
    await inTx(this.deps.db, async (tx) => {
      await billingRepo.ensureAccount(tx, projectId, this.deps.clock.now());
      await billingRepo.updateAccount(tx, projectId, {
        auto_recharge_enabled: b.enabled ? 1 : 0,
        auto_recharge_amount_micros: amount,
        auto_recharge_threshold_micros: threshold,
        monthly_budget_micros: budget,
        ...(b.enabled ? { auto_recharge_paused: 0, auto_recharge_error: null } : {}),
        updated_at: this.deps.clock.now(),
      });
      const acct = (await billingRepo.account(tx, projectId))!;
      // The threshold moved: re-evaluate the crossing against it.
      (await this.crossing(tx, projectId, acct))();
    });
    return this.balance(projectId);
  }

  // ------------------------------------------------------------------ auto-recharge

  /**
   * Recharge a project whose balance is below its threshold, if its month's recharges stay within the budget: charge
   * the provider, then credit. A failed charge pauses auto-recharge (`billing.recharge.failed`) until it is set again.
   * Returns what happened (for the job's log and tests).
   */
  async autoRecharge(projectId: string): Promise<"recharged" | "skipped" | "budget" | "failed"> {
    const now = this.deps.clock.now();
    const a = await billingRepo.account(this.deps.db, projectId);
    if (!a || !a.auto_recharge_enabled || a.auto_recharge_paused || a.auto_recharge_threshold_micros === null || !a.auto_recharge_amount_micros)
      return "skipped";
    if (Number(a.balance_micros) >= Number(a.auto_recharge_threshold_micros)) return "skipped";
    const amount = Number(a.auto_recharge_amount_micros);
    const month = monthStart(now);
    const done = await billingRepo.rechargedSince(this.deps.db, projectId, month);
    if (a.monthly_budget_micros !== null && done + amount > Number(a.monthly_budget_micros)) return "budget";
    if (!(await billingRepo.claimRecharge(this.deps.db, projectId, now, RECHARGE_GAP_MS))) return "skipped";
    const key = `recharge:${projectId}:${now}`;
    let result;
    try {
      result = await this.deps.provider.charge({
        project_id: projectId,
        customer: a.customer_ref,
        payment_method: a.payment_method,
        amountMicros: amount,
        currency: this.currency,
        idempotencyKey: key,
      });
    } catch (err) {
      result = { ok: false as const, reason: `the payment provider failed: ${(err as Error).message}` };
    }
    if (!result.ok) {
      const reason = result.reason;
      const after = await inTx(this.deps.db, async (tx) => {
        await billingRepo.updateAccount(tx, projectId, { auto_recharge_paused: 1, auto_recharge_error: reason.slice(0, 500), updated_at: now });
        return this.deps.bus.publish(tx, {
          type: "billing.recharge.failed",
          project_id: projectId,
          data: { amount: fromMicros(amount), currency: this.currency, reason },
        });
      });
      after();
      this.deps.log?.warn({ project_id: projectId, reason }, "auto-recharge failed: paused until set_auto_recharge enables it again");
      return "failed";
    }
    const ref = result.ref;
    await inTx(this.deps.db, async (tx) => {
      const r = await this.post(tx, {
        projectId,
        amountMicros: amount,
        kind: "recharge",
        description: "Auto-recharge",
        dedupe: key,
        reference: ref,
        referenceType: `${this.deps.provider.name}_charge`,
      });
      const after = await this.deps.bus.publish(tx, {
        type: "billing.recharge.succeeded",
        project_id: projectId,
        data: { amount: fromMicros(amount), currency: this.currency, balance: fromMicros(r.balance), transaction_id: r.transaction?.id ?? null },
      });
      return () => {
        r.after();
        after();
      };
    }).then((f) => f());
    return "recharged";
  }

  /** Every due recharge (the billing job, each interval). */
  async runRecharges() {
    const due = await billingRepo.dueRecharges(this.deps.db);
    const out: Record<string, string> = {};
    for (const { project_id } of due) out[project_id] = await this.autoRecharge(project_id);
    return out;
  }

  // ------------------------------------------------------------------ checkout and subscriptions

  async checkout(projectId: string, kind: "subscription" | "credits", b: { success_url: string; cancel_url: string; quantity?: number }, actor: string | null) {
    const success = urlOf(b.success_url, "success_url");
    const cancel = urlOf(b.cancel_url, "cancel_url");
    let amountMicros: number | null = null;
    let plan: string | null = null;
    if (kind === "credits") {
      amountMicros = toMicros(b.quantity as number, "quantity", { min: 1 });
      if (amountMicros > 1_000_000 * MICROS) throw badRequest("quantity must be at most 1000000 credits per checkout");
    } else {
      plan = this.deps.pricing.subscriptionPlan;
      if (!plan) throw new ApiError(409, "no_plan", "the pricing table has no plan to subscribe to (plans in MESHAGENT_PRICING_FILE)");
    }
    const now = this.deps.clock.now();
    const acct = await this.account(projectId);
    const row: CheckoutRow = {
      id: newId(),
      project_id: projectId,
      kind,
      plan,
      amount_micros: amountMicros,
      provider: this.deps.provider.name,
      provider_ref: null,
      success_url: success,
      cancel_url: cancel,
      status: "open",
      actor,
      created_at: now,
      expires_at: now + this.config.checkoutTtlMs,
      completed_at: null,
    };
    await billingRepo.insertCheckout(this.deps.db, row);
    const started = await this.deps.provider.checkout({
      id: row.id,
      project_id: projectId,
      kind,
      amountMicros,
      plan,
      currency: this.currency,
      success_url: success,
      cancel_url: cancel,
      customer: acct.customer_ref,
    });
    if (started.ref) await billingRepo.setCheckoutRef(this.deps.db, row.id, started.ref);
    if (started.customer && started.customer !== acct.customer_ref)
      await billingRepo.updateAccount(this.deps.db, projectId, { customer_ref: started.customer, updated_at: now });
    return { checkout_url: started.url };
  }

  /** An open checkout of this server (the local page), or 404/410. */
  async openCheckout(id: string): Promise<CheckoutRow> {
    const c = await billingRepo.checkout(this.deps.db, id);
    if (!c) throw notFound("checkout");
    if (c.status !== "open") throw new ApiError(410, "gone", `this checkout is already ${c.status}`);
    if (Number(c.expires_at) <= this.deps.clock.now()) throw new ApiError(410, "gone", "this checkout expired: start a new one");
    return c;
  }

  /** A paid checkout: credits credited, or the plan's subscription started. Idempotent (false: already completed). */
  async completeCheckout(c: CheckoutRow, paid: { payment_method?: string | null; subscription_ref?: string | null; period?: [number, number] | null }) {
    const now = this.deps.clock.now();
    const after = await inTx(this.deps.db, async (tx) => {
      if (!(await billingRepo.closeCheckout(tx, c.id, "completed", now))) return null;
      const fns: (() => void)[] = [];
      if (paid.payment_method) await billingRepo.updateAccount(tx, c.project_id, { payment_method: paid.payment_method, updated_at: now });
      if (c.kind === "credits") {
        const r = await this.post(tx, {
          projectId: c.project_id,
          amountMicros: Number(c.amount_micros),
          kind: "purchase",
          description: `Credits purchase (${c.provider} checkout)`,
          dedupe: `checkout:${c.id}`,
          reference: c.provider_ref ?? c.id,
          referenceType: `${c.provider}_checkout`,
          actor: c.actor,
        });
        fns.push(r.after);
      } else {
        const [start, end] = paid.period ?? [now, addMonth(now)];
        const acct = await billingRepo.ensureAccount(tx, c.project_id, now);
        // Stripe may announce the subscription (customer.subscription.created) before the checkout completed: what it
        // said about its status and period stands.
        const known = !!paid.subscription_ref && acct.subscription_ref === paid.subscription_ref;
        await billingRepo.updateAccount(
          tx,
          c.project_id,
          known
            ? { plan: c.plan, updated_at: now }
            : {
                plan: c.plan,
                subscription_status: "active",
                subscription_ref: paid.subscription_ref ?? `local_${c.id}`,
                period_start: start,
                period_end: end,
                cancel_at_period_end: 0,
                updated_at: now,
              },
        );
        fns.push(
          await this.deps.bus.publish(tx, {
            type: "billing.subscription.updated",
            project_id: c.project_id,
            data: { plan: c.plan, status: "active", current_period_end: iso(end) },
          }),
        );
      }
      this.refusals.delete(c.project_id);
      return fns;
    });
    after?.forEach((f) => f());
    return !!after;
  }

  async cancelCheckout(c: CheckoutRow) {
    return billingRepo.closeCheckout(this.deps.db, c.id, "canceled", this.deps.clock.now());
  }

  /** A provider's word on a subscription (Stripe's customer.subscription.* events). */
  async updateSubscription(
    projectId: string,
    s: { ref: string; status: string; period_start?: number | null; period_end?: number | null; cancel_at_period_end: boolean; plan?: string | null },
  ) {
    const now = this.deps.clock.now();
    const after = await inTx(this.deps.db, async (tx) => {
      await billingRepo.ensureAccount(tx, projectId, now);
      const a = (await billingRepo.account(tx, projectId))!;
      await billingRepo.updateAccount(tx, projectId, {
        subscription_ref: s.ref,
        subscription_status: s.status,
        plan: s.plan ?? a.plan ?? this.deps.pricing.subscriptionPlan,
        ...(s.period_start != null ? { period_start: s.period_start } : {}),
        ...(s.period_end != null ? { period_end: s.period_end } : {}),
        cancel_at_period_end: s.cancel_at_period_end ? 1 : 0,
        updated_at: now,
      });
      return this.deps.bus.publish(tx, {
        type: "billing.subscription.updated",
        project_id: projectId,
        data: { plan: s.plan ?? a.plan, status: s.status, current_period_end: s.period_end != null ? iso(s.period_end) : null },
      });
    });
    after();
    this.refusals.delete(projectId);
  }

  /** Local subscriptions at their period's end: renewed for a month, or ended when set to cancel (the billing job). */
  async renewLocalSubscriptions() {
    const now = this.deps.clock.now();
    for (const a of await billingRepo.lapsedSubscriptions(this.deps.db, now)) {
      const end = Number(a.period_end);
      if (a.cancel_at_period_end) await this.updateSubscription(a.project_id, { ref: a.subscription_ref!, status: "canceled", cancel_at_period_end: false });
      else {
        let next = end;
        while (next <= now) next = addMonth(next);
        await this.updateSubscription(a.project_id, {
          ref: a.subscription_ref!,
          status: "active",
          period_start: end,
          period_end: next,
          cancel_at_period_end: false,
        });
      }
    }
  }

  /** Cancel at the period's end (a project admin; local subscriptions — Stripe's are managed in Stripe). */
  async cancelSubscription(projectId: string, atPeriodEnd: boolean) {
    const a = await this.account(projectId);
    if (a.subscription_status !== "active" || !a.subscription_ref) throw new ApiError(409, "no_subscription", "the project has no active subscription");
    if (!a.subscription_ref.startsWith("local_"))
      throw new ApiError(409, "managed_by_provider", "this subscription is managed by Stripe: cancel it in the Stripe customer portal");
    await this.updateSubscription(projectId, {
      ref: a.subscription_ref,
      status: atPeriodEnd ? "active" : "canceled",
      cancel_at_period_end: atPeriodEnd,
    });
    return this.subscription(projectId);
  }

  /** get_subscription: `{plan, status, current_period_start, current_period_end, cancel_at_period_end, provider}`. */
  async subscription(projectId: string) {
    const a = await this.account(projectId);
    const active = a.subscription_status === "active" || a.subscription_status === "trialing";
    const planId = active ? a.plan : this.deps.pricing.defaultPlan;
    const plan = this.deps.pricing.plan(planId);
    return {
      plan: planId,
      plan_name: plan?.name ?? null,
      monthly_price: plan?.monthly_price ?? null,
      currency: this.currency,
      status: a.subscription_status ?? "none",
      current_period_start: active || a.period_start !== null ? isoOrNull(a.period_start === null ? null : Number(a.period_start)) : null,
      current_period_end: isoOrNull(a.period_end === null ? null : Number(a.period_end)),
      cancel_at_period_end: !!a.cancel_at_period_end,
      provider: a.subscription_ref ? (a.subscription_ref.startsWith("local_") ? "local" : "stripe") : null,
    };
  }

  /** The plan whose allowances apply to a project (its active subscription's, else the default plan). */
  planOf(a: AccountRow | undefined) {
    const active = a && (a.subscription_status === "active" || a.subscription_status === "trialing");
    return this.deps.pricing.plan(active ? a.plan : this.deps.pricing.defaultPlan);
  }

  // ------------------------------------------------------------------ enforcement

  /**
   * With MESHAGENT_BILLING_ENFORCE: why a project may not start paid work now (a negative balance and no active
   * subscription), else null. Cached for two seconds per project (and dropped when its ledger changes here).
   */
  async refusal(projectId: string): Promise<string | null> {
    if (!this.config.enforce) return null;
    const now = Date.now();
    const hit = this.refusals.get(projectId);
    if (hit && now - hit.at < ENFORCE_CACHE_MS) return hit.message;
    const a = await billingRepo.account(this.deps.db, projectId);
    const balance = a ? Number(a.balance_micros) : 0;
    const subscribed = a?.subscription_status === "active" || a?.subscription_status === "trialing";
    const message =
      balance < 0 && !subscribed
        ? `the project's balance is ${(balance / MICROS).toFixed(2)} ${this.currency.toUpperCase()}: buy credits (get_credits_checkout_url) or subscribe (get_checkout_url) to continue`
        : null;
    if (this.refusals.size > 10_000) this.refusals.clear();
    this.refusals.set(projectId, { at: now, message });
    return message;
  }

  /** Throws 402 payment_required when enforcement refuses the project. */
  async enforce(projectId: string) {
    const m = await this.refusal(projectId);
    if (m) throw new ApiError(402, "payment_required", m);
  }
}
