import type { Domain } from "../domain.js";
import { callRoutes, callSchemas } from "./routes.js";
import { callSecretAad } from "./service.js";

/**
 * The calls area: the delivery side of `room.call` (CallHandoff, ctx.calls) and the project's call-signing secret.
 * It publishes no events on the bus (the `room.call` event is sent to the target, see the webhook catalog).
 */
export const callsDomain: Domain = {
  name: "calls",
  routes: callRoutes,
  schemas: callSchemas,
  sealed: [{ table: "call_secrets", key: "project_id", column: "secret_sealed", aad: (row) => callSecretAad(String(row.project_id)) }],
};
