import { createHash, createHmac, randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";

/** A new webhook secret in the Standard Webhooks form: "whsec_" + base64 of 32 random bytes. */
export const generateWebhookSecret = () => "whsec_" + randomBytes(32).toString("base64");

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");
// PyJWT's header for jwt.encode(payload, key, "HS256"); the JWT carries the one claim the receiver checks.
const JWT_HEADER = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));

/**
 * `Meshagent-Signature` value (wire-contract §9): "Bearer " + an HS256 JWT keyed with the webhook secret (its UTF-8
 * bytes, as PyJWT uses a str key) whose only claim is `sha256`, the lowercase hex SHA-256 of the body. The body must
 * already be in Python json.dumps form (see pyjson.ts) because that is what the receiver hashes.
 */
export function meshagentSignature(body: string, secret: string): string {
  const sha256 = createHash("sha256").update(body, "utf8").digest("hex");
  const signingInput = JWT_HEADER + "." + b64url(JSON.stringify({ sha256 }));
  const sig = createHmac("sha256", Buffer.from(secret, "utf8")).update(signingInput).digest("base64url");
  return `Bearer ${signingInput}.${sig}`;
}

const WHSEC = /^whsec_[A-Za-z0-9+/]+={0,2}$/;

/**
 * The Standard Webhooks signer for a secret: a "whsec_<base64>" secret is used as the spec says (the decoded bytes
 * are the HMAC key); any other secret a user chose is used as raw UTF-8 bytes.
 */
export function standardSigner(secret: string): Webhook {
  if (WHSEC.test(secret)) {
    try {
      return new Webhook(secret);
    } catch {
      // not valid base64 after all: fall through to raw
    }
  }
  return new Webhook(new Uint8Array(Buffer.from(secret, "utf8")), { format: "raw" });
}

/** Standard Webhooks headers for one attempt: `webhook-id` is the delivery id, stable across retries. */
export function standardHeaders(signer: Webhook, deliveryId: string, nowMs: number, body: string): Record<string, string> {
  const ts = new Date(Math.floor(nowMs / 1000) * 1000);
  return {
    "webhook-id": deliveryId,
    "webhook-timestamp": String(Math.floor(nowMs / 1000)),
    "webhook-signature": signer.sign(deliveryId, ts, body),
  };
}

/**
 * Every header that signs and describes one delivery attempt, webhook event or room.call alike: `Meshagent-Signature`
 * (keyed with `secret`), the Standard Webhooks trio (from `signer`, made from the same secret by {@link standardSigner}),
 * `Meshagent-Event`, `Meshagent-Delivery` (= `webhook-id`), `Meshagent-Attempt` and `User-Agent`. `body` is the
 * Python json.dumps text that is sent (the POST body, or the `Meshagent-Webhook` header of a WebSocket handoff).
 */
export function signedHeaders(d: { body: string; secret: string; signer: Webhook; event: string; deliveryId: string; attempt: number; nowMs: number }) {
  return {
    "user-agent": "meshagent-server-webhooks/0.1",
    "meshagent-signature": meshagentSignature(d.body, d.secret),
    "meshagent-event": d.event,
    "meshagent-delivery": d.deliveryId,
    "meshagent-attempt": String(d.attempt),
    ...standardHeaders(d.signer, d.deliveryId, d.nowMs, d.body),
  };
}
