import { parseHttpUrl } from "../core/ssrf.js";

/**
 * Webhook URLs follow the outbound-URL rules of src/core/ssrf.ts (private ranges, connect-time checks); the address
 * check is re-exported for the webhook unit tests.
 */
export { isPrivateAddress } from "../core/ssrf.js";

/** Parse and check a webhook URL's shape (http/https, a host, no credentials). Throws UnsafeUrlError. */
export const parseWebhookUrl = (raw: string): URL => parseHttpUrl(raw);
