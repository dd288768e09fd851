/**
 * Idempotency-Key on POST (Stripe's semantics). No routes of its own: `installIdempotency` (app.ts) adds its hooks to
 * every POST route, `IdempotencyService` (wiring.ts) keeps the keys. README: "Reliability and limits" → "Idempotency".
 */
export { installIdempotency, HEADER as IDEMPOTENCY_HEADER, REPLAYED_HEADER } from "./plugin.js";
export { IdempotencyService, MAX_KEY_LENGTH, type IdempotencyConfig } from "./service.js";
