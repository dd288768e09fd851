import { readFileSync } from "node:fs";

/**
 * The price list served at GET /pricing, and what the billing job prices usage with (src/billing). A price says what
 * one `unit` of a `usage_type` (optionally of one `provider` and `model`) costs in `currency`; usage is metered in
 * smaller units (`metered_unit`: participant seconds, bytes × hours, tokens…), `unit_size` of which make one `unit`.
 * Both have defaults for the units below; a price in another unit must give them.
 *
 * MESHAGENT_PRICING_FILE (JSON) replaces the built-in table. Either `{currency, prices, plans?}` (one version, in
 * force since the epoch) or `{currency, versions: [{effective_from, prices}], plans?}`: a version applies to usage
 * periods that start at or after its `effective_from` (ISO 8601), until the next one. Plans: `{id, name,
 * monthly_price, allowances: {<price id>: <units free per calendar month>}}`; `default_plan` (a project without a
 * subscription) and `subscription_plan` (what a subscription checkout buys) name them.
 */
export interface Price {
  id: string;
  usage_type: string;
  unit: string;
  unit_price: number;
  provider?: string;
  model?: string;
  description: string;
  /** The unit usage of this type is recorded in (`usage.recorded` `unit`). */
  metered_unit?: string;
  /** How many metered units make one priced `unit`. */
  unit_size?: number;
}
export interface Plan {
  id: string;
  name: string;
  monthly_price: number;
  allowances: Record<string, number>;
}
export interface PriceVersion {
  effective_from: string;
  prices: Price[];
}
export interface PricingTable {
  currency: string;
  prices: Price[];
  plans?: Plan[];
  versions?: PriceVersion[];
  default_plan?: string;
  subscription_plan?: string;
}

/** Priced unit → [metered unit, metered units per priced unit], for the units the server meters. */
export const UNIT_CONVERSIONS: Record<string, [string, number]> = {
  participant_minute: ["participant_second", 60],
  participant_hour: ["participant_second", 3600],
  gb_month: ["byte_hour", 2 ** 30 * 730],
  gb_hour: ["byte_hour", 2 ** 30],
  gb: ["byte", 2 ** 30],
  container_minute: ["container_second", 60],
  container_hour: ["container_second", 3600],
  "1k_input_tokens": ["input_token", 1000],
  "1m_input_tokens": ["input_token", 1e6],
  "1k_output_tokens": ["output_token", 1000],
  "1m_output_tokens": ["output_token", 1e6],
  "1k_requests": ["request", 1000],
  run: ["run", 1],
  delivery: ["delivery", 1],
  message: ["message", 1],
  call: ["call", 1],
  request: ["request", 1],
  update: ["update", 1],
};

export const DEFAULT_PRICING: PricingTable = {
  currency: "usd",
  prices: [
    {
      id: "room_participant_minutes",
      usage_type: "room",
      unit: "participant_minute",
      unit_price: 0.0005,
      description: "A participant connected to a room for one minute",
    },
    { id: "storage_gb_month", usage_type: "storage", unit: "gb_month", unit_price: 0.02, description: "One GiB stored for a month (project and room storage)" },
    { id: "egress_gb", usage_type: "egress", unit: "gb", unit_price: 0.05, description: "One GiB downloaded from storage" },
    {
      id: "container_minutes",
      usage_type: "container",
      unit: "container_minute",
      unit_price: 0.0002,
      description: "A service container running for one minute",
    },
    { id: "api_requests", usage_type: "api", unit: "1k_requests", unit_price: 0.001, description: "One thousand REST API requests" },
    { id: "queue_messages", usage_type: "queue", unit: "message", unit_price: 0.000001, description: "One message sent to a room queue" },
    { id: "tool_calls", usage_type: "tool_calls", unit: "call", unit_price: 0.000005, description: "One call to a toolkit hosted in a room" },
    { id: "scheduled_task_runs", usage_type: "scheduler", unit: "run", unit_price: 0.0001, description: "One scheduled task run" },
    { id: "webhook_deliveries", usage_type: "webhooks", unit: "delivery", unit_price: 0.00001, description: "One webhook delivery attempt" },
    { id: "mailbox_messages", usage_type: "mail", unit: "message", unit_price: 0.0001, description: "One inbound email delivered to a room queue" },
    {
      id: "llm_openai_gpt-4o_input",
      usage_type: "llm",
      provider: "openai",
      model: "gpt-4o",
      unit: "1k_input_tokens",
      unit_price: 0.0025,
      description: "LLM input tokens",
    },
    {
      id: "llm_openai_gpt-4o_output",
      usage_type: "llm",
      provider: "openai",
      model: "gpt-4o",
      unit: "1k_output_tokens",
      unit_price: 0.01,
      description: "LLM output tokens",
    },
  ],
  plans: [
    {
      id: "free",
      name: "Free",
      monthly_price: 0,
      allowances: { room_participant_minutes: 1000, storage_gb_month: 1, api_requests: 100, container_minutes: 600 },
    },
    {
      id: "pro",
      name: "Pro",
      monthly_price: 20,
      allowances: { room_participant_minutes: 50000, storage_gb_month: 100, api_requests: 10000, container_minutes: 30000, tool_calls: 100000 },
    },
  ],
  default_plan: "free",
  subscription_plan: "pro",
};

function validate(t: unknown, file: string): PricingTable {
  const bad = (why: string) => new Error(`MESHAGENT_PRICING_FILE ${file}: ${why}`);
  if (!t || typeof t !== "object") throw bad("must be a JSON object");
  const o = t as PricingTable;
  if (typeof o.currency !== "string" || !/^[a-z]{3}$/i.test(o.currency)) throw bad("currency must be a three-letter currency code");
  const checkPrices = (list: unknown, at: string) => {
    if (!Array.isArray(list)) throw bad(`${at} must be an array`);
    const ids = new Set<string>();
    list.forEach((p: Price, i) => {
      for (const k of ["id", "usage_type", "unit", "description"] as const) if (typeof p?.[k] !== "string") throw bad(`${at}[${i}].${k} must be a string`);
      if (typeof p.unit_price !== "number" || !Number.isFinite(p.unit_price) || p.unit_price < 0)
        throw bad(`${at}[${i}].unit_price must be a non-negative number`);
      if (ids.has(p.id)) throw bad(`${at}[${i}].id "${p.id}" appears twice`);
      ids.add(p.id);
      const known = UNIT_CONVERSIONS[p.unit];
      if (p.metered_unit !== undefined && typeof p.metered_unit !== "string") throw bad(`${at}[${i}].metered_unit must be a string`);
      if (p.unit_size !== undefined && !(typeof p.unit_size === "number" && p.unit_size > 0)) throw bad(`${at}[${i}].unit_size must be a positive number`);
      if (!known && (p.metered_unit === undefined || p.unit_size === undefined))
        throw bad(`${at}[${i}]: unit "${p.unit}" is not one the server knows (${Object.keys(UNIT_CONVERSIONS).join(", ")}); give metered_unit and unit_size`);
    });
  };
  if (o.versions !== undefined) {
    if (!Array.isArray(o.versions) || o.versions.length === 0) throw bad("versions must be a non-empty array");
    let last = -Infinity;
    o.versions.forEach((v, i) => {
      const t = Date.parse(v?.effective_from);
      if (typeof v?.effective_from !== "string" || !Number.isFinite(t)) throw bad(`versions[${i}].effective_from must be an ISO 8601 date-time`);
      if (t <= last) throw bad(`versions[${i}].effective_from must be later than the version before it`);
      last = t;
      checkPrices(v.prices, `versions[${i}].prices`);
    });
  } else checkPrices(o.prices, "prices");
  if (o.plans !== undefined) {
    if (!Array.isArray(o.plans)) throw bad("plans must be an array");
    o.plans.forEach((p, i) => {
      if (typeof p?.id !== "string" || typeof p.name !== "string") throw bad(`plans[${i}] needs a string id and name`);
      if (typeof p.monthly_price !== "number" || p.monthly_price < 0) throw bad(`plans[${i}].monthly_price must be a non-negative number`);
      if (!p.allowances || typeof p.allowances !== "object") throw bad(`plans[${i}].allowances must be an object of price id → units per month`);
      for (const [k, n] of Object.entries(p.allowances))
        if (typeof n !== "number" || n < 0) throw bad(`plans[${i}].allowances.${k} must be a non-negative number`);
    });
  }
  for (const k of ["default_plan", "subscription_plan"] as const)
    if (o[k] !== undefined && !o.plans?.some((p) => p.id === o[k])) throw bad(`${k} "${o[k]}" is not one of the plans`);
  return o;
}

/** One version of the prices, resolved: each price with its metered unit and size. */
export interface ResolvedPrice extends Price {
  metered_unit: string;
  unit_size: number;
}

export class PricingService {
  /** The file's content (or the built-in table). */
  readonly source: PricingTable;
  private readonly versions: { from: number; prices: ResolvedPrice[] }[];

  constructor(file?: string) {
    this.source = file ? validate(JSON.parse(readFileSync(file, "utf8")), file) : DEFAULT_PRICING;
    const resolve = (list: Price[]): ResolvedPrice[] =>
      list.map((p) => ({ ...p, metered_unit: p.metered_unit ?? UNIT_CONVERSIONS[p.unit][0], unit_size: p.unit_size ?? UNIT_CONVERSIONS[p.unit][1] }));
    this.versions = this.source.versions
      ? this.source.versions.map((v) => ({ from: Date.parse(v.effective_from), prices: resolve(v.prices) }))
      : [{ from: 0, prices: resolve(this.source.prices) }];
  }

  get currency() {
    return this.source.currency.toLowerCase();
  }
  get plans(): Plan[] {
    return this.source.plans ?? [];
  }
  plan(id: string | null | undefined): Plan | undefined {
    return this.plans.find((p) => p.id === id);
  }
  get defaultPlan() {
    return this.source.default_plan ?? this.plans.find((p) => p.monthly_price === 0)?.id ?? null;
  }
  get subscriptionPlan() {
    return this.source.subscription_plan ?? this.plans.find((p) => p.monthly_price > 0)?.id ?? null;
  }

  /** The prices in force at `t` (ms): the latest version whose effective_from is ≤ t. */
  pricesAt(t: number): ResolvedPrice[] {
    let v = this.versions[0];
    for (const x of this.versions) if (x.from <= t) v = x;
    return t < v.from ? [] : v.prices;
  }

  /** The public document: the prices in force now, the next version if one is scheduled, and the plans. */
  table(now: number) {
    const upcoming = this.versions.find((v) => v.from > now);
    return {
      currency: this.currency,
      prices: this.pricesAt(now),
      effective_from: new Date(this.versions.filter((v) => v.from <= now).at(-1)?.from ?? 0).toISOString(),
      ...(upcoming ? { next: { effective_from: new Date(upcoming.from).toISOString(), prices: upcoming.prices } } : {}),
      plans: this.plans,
      default_plan: this.defaultPlan,
      subscription_plan: this.subscriptionPlan,
    };
  }

  /**
   * The price of a usage record in force at `t`: same usage type and metered unit, and the most specific match on
   * provider and model (a price without them applies to every provider/model). Undefined: not priced (free).
   */
  priceFor(t: number, r: { usage_type: string; unit: string; provider?: string | null; model?: string | null }): ResolvedPrice | undefined {
    let best: ResolvedPrice | undefined;
    let bestScore = -1;
    for (const p of this.pricesAt(t)) {
      if (p.usage_type !== r.usage_type || p.metered_unit !== r.unit) continue;
      if (p.provider !== undefined && p.provider !== r.provider) continue;
      if (p.model !== undefined && p.model !== r.model) continue;
      const score = (p.provider !== undefined ? 2 : 0) + (p.model !== undefined ? 1 : 0);
      if (score > bestScore) [best, bestScore] = [p, score];
    }
    return best;
  }
}
