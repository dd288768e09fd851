import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { billingRoutes, billingSchemas } from "./routes.js";

const events: EventSpec[] = [
  {
    event: "billing.balance_low",
    description: "the project's balance fell below its auto-recharge threshold (else MESHAGENT_BILLING_LOW_BALANCE); once per crossing",
    data: { balance: "number", threshold: "number", currency: "string" },
  },
  {
    event: "billing.transaction.created",
    description: "a transaction was added to the project's ledger (purchase, usage, adjustment, refund, recharge)",
    data: { id: "string", amount: "number", kind: "string", description: "string", balance: "number" },
  },
  {
    event: "billing.recharge.succeeded",
    description: "auto-recharge charged the payment provider and credited the balance",
    data: { amount: "number", currency: "string", balance: "number", transaction_id: "string" },
  },
  {
    event: "billing.recharge.failed",
    description: "an auto-recharge charge failed; auto-recharge is paused until set again",
    data: { amount: "number", currency: "string", reason: "string" },
  },
  {
    event: "billing.subscription.updated",
    description: "the project's subscription started, renewed, changed or ended",
    data: { plan: "string", status: "string", current_period_end: "string" },
  },
];

/** Billing and usage: the ledger, metering, the pricing job, auto-recharge, checkout (local and Stripe), usage reports. */
export const billingDomain: Domain = { name: "billing", tag: "billing", routes: billingRoutes, schemas: billingSchemas, events };
