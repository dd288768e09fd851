import type { Domain } from "../domain.js";
import { metricsRoutes } from "./routes.js";

/** Prometheus metrics of the process (`GET /metrics`); the per-request collector is installed by the app. */
export const metricsDomain: Domain = { name: "metrics", routes: metricsRoutes };
