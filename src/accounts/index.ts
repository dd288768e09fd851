import type { Domain } from "../domain.js";
import { accountRoutes } from "./routes.js";

/** The accounts area: people's own pages (invitations today; sign-up, sign-in and resets with the authorization server). */
export const accountsDomain: Domain = { name: "accounts", routes: accountRoutes };
