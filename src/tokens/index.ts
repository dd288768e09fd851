import type { Domain } from "../domain.js";
import { tokenRoutes } from "./routes.js";

/** The tokens area: participant tokens. */
export const tokensDomain: Domain = {
  name: "tokens",
  routes: tokenRoutes,
  // The per-project signing keys of server-minted participant tokens.
  sealed: [{ table: "project_signing_keys", key: "id", column: "secret_sealed" }],
};
