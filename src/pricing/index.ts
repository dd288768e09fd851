import type { Domain } from "../domain.js";
import { pricingRoutes } from "./routes.js";

/** The pricing area: the price list (billing). */
export const pricingDomain: Domain = {
  name: "pricing",
  routes: pricingRoutes,
  events: [
    { event: "billing.balance_low", description: "the project's balance fell below its threshold", data: { balance: "number", threshold: "number", currency: "string" } },
  ],
};
