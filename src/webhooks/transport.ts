import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { bareHost, guardedLookup, isPrivateAddress } from "../core/ssrf.js";

/** The first bytes of an answer that an attempt records. */
export const EXCERPT_BYTES = 1024;

/** What one signed POST came to: an HTTP status (null: no answer, then `error` says why). */
export interface PostOutcome {
  status: number | null;
  error: string | null;
  excerpt: string | null;
  retryAfter?: string;
}

export interface PostOptions {
  /** Connect to private, loopback and link-local addresses too (MESHAGENT_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate: boolean;
  timeoutMs: number;
  /** Aborts the request; the outcome's error is `aborted: <abortReason>`. */
  signal?: AbortSignal;
  abortReason?: string;
  /** Keep-alive agents (built with {@link guardedLookup}); absent: one connection for this request. */
  agents?: { http: http.Agent; https: https.Agent };
}

/** Why an IP-literal host is refused before connecting (IP literals never reach an agent's lookup); null if it may be used. */
export function refusedLiteral(u: URL, allowPrivate: boolean): string | null {
  const host = bareHost(u.hostname);
  if (!allowPrivate && isIP(host) && isPrivateAddress(host)) return `refused: ${host} is a private, loopback or link-local address`;
  return null;
}

/**
 * POST a delivery body (already serialized and signed: see signing.ts) to `u`, the outbound-URL rules of
 * src/core/ssrf.ts applied at connect time; redirects are not followed (a 3xx is the outcome). Used by the webhook
 * dispatcher and by room.call handoffs (src/calls). Never throws: failures are outcomes with `status: null`.
 */
export function postSigned(u: URL, body: string, headers: Record<string, string | number>, opts: PostOptions): Promise<PostOutcome> {
  const refused = refusedLiteral(u, opts.allowPrivate);
  if (refused) return Promise.resolve({ status: null, error: refused, excerpt: null });
  const bytes = Buffer.from(body, "utf8");
  const isHttps = u.protocol === "https:";
  const signal = opts.signal;
  return new Promise<PostOutcome>((resolve) => {
    let settled = false;
    const done = (o: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve(o);
    };
    const req = (isHttps ? https : http).request(u, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers, "content-length": bytes.length },
      agent: opts.agents ? (isHttps ? opts.agents.https : opts.agents.http) : false,
      lookup: guardedLookup(opts.allowPrivate) as never,
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ status: null, error: `timeout after ${opts.timeoutMs} ms`, excerpt: null });
    }, opts.timeoutMs);
    const onAbort = () => {
      req.destroy();
      done({ status: null, error: `aborted: ${opts.abortReason ?? "stopping"}`, excerpt: null });
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort);
    req.on("error", (err: NodeJS.ErrnoException) => done({ status: null, error: err.message || err.code || "request failed", excerpt: null }));
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () =>
        done({
          status: res.statusCode ?? null,
          error: null,
          excerpt: Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString("utf8") || null,
          retryAfter: res.headers["retry-after"],
        });
      res.on("data", (c: Buffer) => {
        if (size < EXCERPT_BYTES) chunks.push(c);
        size += c.length;
        if (size > 64 * 1024) {
          // We only keep an excerpt: stop reading a huge answer (the socket is not reused).
          res.destroy();
          finish();
        }
      });
      res.on("end", finish);
      res.on("error", finish);
    });
    req.end(bytes);
  });
}
