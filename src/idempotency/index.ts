/**
 * Idempotency-Key on POST (Stripe's semantics). No routes of its own: `installIdempotency` (app.ts) adds its hooks to
 * every POST route, `IdempotencyService` (wiring.ts) keeps the keys. README: "Reliability and limits" → "Idempotency".
 */
import type { Domain } from "../domain.js";

export { installIdempotency, HEADER as IDEMPOTENCY_HEADER, REPLAYED_HEADER } from "./plugin.js";
export { IdempotencyService, MAX_KEY_LENGTH, type IdempotencyConfig } from "./service.js";

/** The idempotency area as a Domain: no routes (see above), only its sealed column (stored response bodies). */
export const idempotencyDomain: Domain = {
  name: "idempotency",
  sealed: [{ table: "idempotency_keys", key: ["scope", "key_hash"], column: "body" }],
};
