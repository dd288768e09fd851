/**
 * Webhook settings. They come from the MESHAGENT_WEBHOOK_* variables, declared (type, default, unit, meaning) with all
 * the others in ConfigSchema (src/config.ts) and read by loadConfig into `Config.webhooks`.
 */
export interface WebhookConfig {
  /** Deliver to private, loopback and link-local addresses (tests, trusted networks). */
  allowPrivate: boolean;
  /** Per-attempt timeout. */
  timeoutMs: number;
  /** How long a claimed delivery stays leased to one process: longer than the timeout, so a live claim never expires. */
  leaseMs: number;
  /** How often an idle dispatcher looks for due rows (it is also woken at once by events committed in-process). */
  pollMs: number;
  /** Deliveries in flight at once per process. */
  concurrency: number;
  /** Run a dispatcher in this process (turn off in API-only processes). */
  dispatcher: boolean;
}
