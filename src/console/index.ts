import type { Domain } from "../domain.js";
import { consoleRoutes } from "./routes.js";

/** The web console (packages/console), served as static files at /console. */
export const consoleDomain: Domain = { name: "console", routes: consoleRoutes };
