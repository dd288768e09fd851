import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { pricingRoutes } from "./routes.js";

const events: EventSpec[] = [
  {
    event: "billing.balance_low",
    description: "the project's balance fell below its threshold",
    data: { balance: "number", threshold: "number", currency: "string" },
  },
];

/** The pricing area: the price list (billing). */
export const pricingDomain: Domain = { name: "pricing", tag: "billing", routes: pricingRoutes, events };
