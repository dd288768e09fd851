import type { Domain } from "../domain.js";
import { tokenRoutes } from "./routes.js";

/** The tokens area: participant tokens. */
export const tokensDomain: Domain = { name: "tokens", routes: tokenRoutes };
