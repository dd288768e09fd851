/** Webhook settings, from MESHAGENT_WEBHOOK_* variables (documented in the README's configuration table). */
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

function num(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

const flag = (v: string | undefined, fallback: boolean) => (v === undefined || v === "" ? fallback : /^(1|true|yes|on)$/i.test(v));

export function loadWebhookConfig(env: NodeJS.ProcessEnv): WebhookConfig {
  const timeoutMs = num(env, "MESHAGENT_WEBHOOK_TIMEOUT_MS", 15_000);
  const leaseMs = num(env, "MESHAGENT_WEBHOOK_LEASE_MS", timeoutMs + 15_000);
  if (leaseMs <= timeoutMs) throw new Error("MESHAGENT_WEBHOOK_LEASE_MS must be larger than MESHAGENT_WEBHOOK_TIMEOUT_MS");
  return {
    allowPrivate: flag(env.MESHAGENT_WEBHOOK_ALLOW_PRIVATE, false),
    timeoutMs,
    leaseMs,
    pollMs: num(env, "MESHAGENT_WEBHOOK_POLL_MS", 1000, 10),
    concurrency: num(env, "MESHAGENT_WEBHOOK_CONCURRENCY", 64),
    dispatcher: flag(env.MESHAGENT_WEBHOOK_DISPATCHER, true),
  };
}
