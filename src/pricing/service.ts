import { readFileSync } from "node:fs";

/**
 * The price list served at GET /pricing. Shape:
 * { currency, prices: [{ id, usage_type, unit, unit_price, provider?, model?, description }] }
 * unit_price is in `currency` per one `unit`. Override with MESHAGENT_PRICING_FILE (a JSON file of the same shape).
 */
export interface Price {
  id: string;
  usage_type: string;
  unit: string;
  unit_price: number;
  provider?: string;
  model?: string;
  description: string;
}
export interface PricingTable {
  currency: string;
  prices: Price[];
}

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
      description: "LLM proxy input tokens",
    },
    {
      id: "llm_openai_gpt-4o_output",
      usage_type: "llm",
      provider: "openai",
      model: "gpt-4o",
      unit: "1k_output_tokens",
      unit_price: 0.01,
      description: "LLM proxy output tokens",
    },
  ],
};

function validate(t: unknown, file: string): PricingTable {
  const bad = (why: string) => new Error(`MESHAGENT_PRICING_FILE ${file}: ${why}`);
  if (!t || typeof t !== "object") throw bad("must be a JSON object");
  const o = t as PricingTable;
  if (typeof o.currency !== "string") throw bad("currency must be a string");
  if (!Array.isArray(o.prices)) throw bad("prices must be an array");
  o.prices.forEach((p, i) => {
    for (const k of ["id", "usage_type", "unit", "description"] as const) if (typeof p[k] !== "string") throw bad(`prices[${i}].${k} must be a string`);
    if (typeof p.unit_price !== "number" || p.unit_price < 0) throw bad(`prices[${i}].unit_price must be a non-negative number`);
  });
  return o;
}

export class PricingService {
  readonly table: PricingTable;
  constructor(file?: string) {
    this.table = file ? validate(JSON.parse(readFileSync(file, "utf8")), file) : DEFAULT_PRICING;
  }
}
