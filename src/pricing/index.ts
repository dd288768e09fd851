import type { Domain } from "../domain.js";
import { pricingRoutes } from "./routes.js";

/** The pricing area: the price list and plans (billing prices usage with it). */
export const pricingDomain: Domain = { name: "pricing", tag: "billing", routes: pricingRoutes };
