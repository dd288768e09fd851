import Stripe from "stripe";
import { ApiError } from "../core/errors.js";
import type { DB } from "../store/db.js";
import type { Clock } from "../core/clock.js";
import { billingRepo } from "./repo.js";
import type { BillingService } from "./service.js";
import { toMinorUnits, type ChargeRequest, type ChargeResult, type CheckoutRequest, type PaymentProvider } from "./providers.js";

export interface StripeSettings {
  secretKey?: string;
  webhookSecret?: string;
  /** The recurring Price the subscription checkout sells (price_…). */
  priceId?: string;
  /** Another API base (tests: a local stand-in), e.g. http://127.0.0.1:12111. */
  apiUrl?: string;
}

/** The Stripe client, pointed at `apiUrl` when given (the SDK's host/port/protocol options). */
export function stripeClient(s: StripeSettings): Stripe {
  if (!s.secretKey) throw new Error("MESHAGENT_BILLING_PROVIDER=stripe needs MESHAGENT_STRIPE_SECRET_KEY");
  const opts: Record<string, unknown> = { maxNetworkRetries: 2, timeout: 20_000 };
  if (s.apiUrl) {
    const u = new URL(s.apiUrl);
    opts.host = u.hostname;
    opts.port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
    opts.protocol = u.protocol.replace(":", "");
  }
  return new Stripe(s.secretKey, opts as never);
}

/**
 * Stripe: a customer per project (created with the first checkout, `metadata.project_id`), Checkout Sessions in
 * `subscription` mode for the plan (MESHAGENT_STRIPE_PRICE_ID) and `payment` mode for credits (saving the card for
 * off-session use, which auto-recharge charges through a PaymentIntent with an idempotency key).
 */
export class StripeProvider implements PaymentProvider {
  readonly name = "stripe" as const;
  readonly stripe: Stripe;

  constructor(private settings: StripeSettings) {
    this.stripe = stripeClient(settings);
  }

  private async customer(c: { project_id: string; customer: string | null }) {
    if (c.customer) return c.customer;
    const made = await this.stripe.customers.create({ metadata: { project_id: c.project_id } }, { idempotencyKey: `customer:${c.project_id}` });
    return made.id;
  }

  async checkout(c: CheckoutRequest) {
    if (c.kind === "subscription" && !this.settings.priceId)
      throw new ApiError(409, "no_plan", "subscriptions need MESHAGENT_STRIPE_PRICE_ID (the plan's recurring Stripe price)");
    const customer = await this.customer(c);
    const common = {
      customer,
      client_reference_id: c.project_id,
      success_url: c.success_url,
      cancel_url: c.cancel_url,
      metadata: { project_id: c.project_id, checkout_id: c.id, kind: c.kind },
    };
    let session: Stripe.Checkout.Session;
    if (c.kind === "subscription") {
      if (!this.settings.priceId) throw new ApiError(409, "no_plan", "subscriptions need MESHAGENT_STRIPE_PRICE_ID (the plan's recurring Stripe price)");
      session = await this.stripe.checkout.sessions.create(
        {
          ...common,
          mode: "subscription",
          line_items: [{ price: this.settings.priceId, quantity: 1 }],
          subscription_data: { metadata: { project_id: c.project_id } },
        },
        { idempotencyKey: `checkout:${c.id}` },
      );
    } else {
      session = await this.stripe.checkout.sessions.create(
        {
          ...common,
          mode: "payment",
          line_items: [
            {
              price_data: { currency: c.currency, unit_amount: toMinorUnits(c.amountMicros ?? 0, c.currency), product_data: { name: "MeshAgent credits" } },
              quantity: 1,
            },
          ],
          payment_intent_data: { setup_future_usage: "off_session", metadata: { project_id: c.project_id, checkout_id: c.id } },
        },
        { idempotencyKey: `checkout:${c.id}` },
      );
    }
    if (!session.url) throw new ApiError(502, "provider_error", "Stripe returned a checkout session without a URL");
    return { url: session.url, ref: session.id, customer };
  }

  async charge(c: ChargeRequest): Promise<ChargeResult> {
    if (!c.customer) return { ok: false, reason: "no Stripe customer yet: buy credits once through a checkout to save a card" };
    let pm = c.payment_method;
    if (!pm) {
      const list = await this.stripe.customers.listPaymentMethods(c.customer, { limit: 1 });
      pm = list.data[0]?.id ?? null;
    }
    if (!pm) return { ok: false, reason: "the Stripe customer has no saved payment method" };
    try {
      const intent = await this.stripe.paymentIntents.create(
        {
          amount: toMinorUnits(c.amountMicros, c.currency),
          currency: c.currency,
          customer: c.customer,
          payment_method: pm,
          off_session: true,
          confirm: true,
          metadata: { project_id: c.project_id, purpose: "auto_recharge" },
        },
        { idempotencyKey: c.idempotencyKey },
      );
      if (intent.status !== "succeeded") return { ok: false, reason: `the payment is ${intent.status}` };
      return { ok: true, ref: intent.id };
    } catch (err) {
      return { ok: false, reason: `Stripe refused the charge: ${(err as Error).message}` };
    }
  }
}

const seconds = (v: unknown) => (typeof v === "number" ? v * 1000 : null);

/**
 * `POST /billing/stripe/webhook`: the signature (Stripe-Signature, MESHAGENT_STRIPE_WEBHOOK_SECRET) is checked on the
 * raw body; each event id is handled once (recorded after it was handled, so one whose handling failed is handled
 * again on Stripe's retry). `checkout.session.completed` completes our checkout (credits credited, or the subscription
 * started); `customer.subscription.created|updated|deleted` keep the subscription's status, period and
 * cancel-at-period-end. Other events are acknowledged and ignored.
 */
export async function handleStripeEvent(
  deps: { db: DB; clock: Clock; billing: BillingService; stripe: Stripe; webhookSecret?: string },
  raw: Buffer,
  signature: string | undefined,
): Promise<{ received: true; duplicate?: boolean; ignored?: boolean }> {
  if (!deps.webhookSecret) throw new ApiError(409, "not_configured", "Stripe webhooks need MESHAGENT_STRIPE_WEBHOOK_SECRET");
  if (!signature) throw new ApiError(400, "invalid_signature", "the Stripe-Signature header is missing");
  let event: Stripe.Event;
  try {
    event = deps.stripe.webhooks.constructEvent(raw, signature, deps.webhookSecret);
  } catch (err) {
    throw new ApiError(400, "invalid_signature", `the Stripe signature does not verify: ${(err as Error).message}`);
  }
  // The event id is recorded once it was handled, not before: an event whose handling failed (a 500) is handled again
  // when Stripe retries it. Handling twice (a concurrent delivery, a crash before the record) is harmless: a checkout
  // completes once, and a subscription event writes the same values again.
  const seen = await deps.db.selectFrom("billing_provider_events").select("id").where("id", "=", event.id).executeTakeFirst();
  if (seen) return { received: true, duplicate: true };
  const result = await dispatchStripeEvent(deps, event);
  await billingRepo.firstSeen(deps.db, event.id, event.type, deps.clock.now());
  return result;
}

async function dispatchStripeEvent(deps: { db: DB; billing: BillingService }, event: Stripe.Event): Promise<{ received: true; ignored?: boolean }> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Stripe event objects vary by type; read defensively
  const obj = event.data.object as unknown as Record<string, any>;
  if (event.type === "checkout.session.completed" || event.type === "checkout.session.async_payment_succeeded") {
    if (obj.payment_status !== "paid" && obj.payment_status !== "no_payment_required") return { received: true, ignored: true };
    const c =
      (obj.metadata?.checkout_id && (await billingRepo.checkout(deps.db, obj.metadata.checkout_id))) || (await billingRepo.checkoutByRef(deps.db, obj.id));
    if (!c) return { received: true, ignored: true };
    await deps.billing.completeCheckout(c, {
      subscription_ref: typeof obj.subscription === "string" ? obj.subscription : (obj.subscription?.id ?? null),
      payment_method: null,
    });
    return { received: true };
  }
  if (event.type.startsWith("customer.subscription.")) {
    const projectId =
      obj.metadata?.project_id ??
      (await billingRepo.bySubscription(deps.db, obj.id))?.project_id ??
      (await billingRepo.byCustomer(deps.db, obj.customer))?.project_id;
    if (!projectId || !(await billingRepo.account(deps.db, projectId))) return { received: true, ignored: true };
    const item = obj.items?.data?.[0];
    await deps.billing.updateSubscription(projectId, {
      ref: obj.id,
      status: event.type === "customer.subscription.deleted" ? "canceled" : String(obj.status),
      period_start: seconds(obj.current_period_start ?? item?.current_period_start),
      period_end: seconds(obj.current_period_end ?? item?.current_period_end),
      cancel_at_period_end: !!obj.cancel_at_period_end,
    });
    return { received: true };
  }
  return { received: true, ignored: true };
}
