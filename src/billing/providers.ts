/**
 * Payment providers behind one interface: `local` (the default: checkout is a page of this server where a project
 * admin confirms, and the "card" it saves pays auto-recharges; for self-hosting without payments, and tests) and
 * `stripe` (src/billing/stripe.ts: Checkout Sessions, off-session PaymentIntents, signed webhooks).
 */
export interface CheckoutRequest {
  /** Our checkout id (the local page's path; Stripe's metadata and client_reference_id). */
  id: string;
  project_id: string;
  kind: "subscription" | "credits";
  /** Credits: what is bought, in micro-units of `currency`. */
  amountMicros: number | null;
  plan: string | null;
  currency: string;
  success_url: string;
  cancel_url: string;
  customer: string | null;
}

export interface ChargeRequest {
  project_id: string;
  customer: string | null;
  payment_method: string | null;
  amountMicros: number;
  currency: string;
  /** The same key for a retry of the same recharge (Stripe's Idempotency-Key). */
  idempotencyKey: string;
}

export type ChargeResult = { ok: true; ref: string } | { ok: false; reason: string };

export interface PaymentProvider {
  readonly name: "local" | "stripe";
  /** Start a checkout: the URL to send the payer to, the provider's reference, and the customer it created. */
  checkout(c: CheckoutRequest): Promise<{ url: string; ref: string | null; customer?: string }>;
  /** Charge the project's saved payment method (auto-recharge). */
  charge(c: ChargeRequest): Promise<ChargeResult>;
}

/** The built-in provider: no payment network; the checkout page confirms, and confirming saves a "card". */
export class LocalProvider implements PaymentProvider {
  readonly name = "local" as const;
  constructor(private publicUrl: () => string) {}

  async checkout(c: CheckoutRequest) {
    return { url: `${this.publicUrl()}/billing/checkout/${c.id}`, ref: null };
  }

  async charge(c: ChargeRequest): Promise<ChargeResult> {
    if (!c.payment_method)
      return { ok: false, reason: "no payment method on file: buy credits once through a checkout (get_credits_checkout_url) to save one" };
    return { ok: true, ref: `local_charge_${c.idempotencyKey}` };
  }
}

/** Micro-units → the currency's smallest unit (cents), as Stripe counts amounts. */
export const toMinorUnits = (micros: number, currency: string) =>
  ZERO_DECIMAL.has(currency.toLowerCase()) ? Math.round(micros / 1e6) : Math.round(micros / 1e4);
export const fromMinorUnits = (minor: number, currency: string) => (ZERO_DECIMAL.has(currency.toLowerCase()) ? minor * 1e6 : minor * 1e4);
const ZERO_DECIMAL = new Set(["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]);
