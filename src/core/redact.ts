/**
 * Query strings are redacted before a URL is logged: a signed room-storage URL's `signature`, a `?token=`, an OAuth
 * `code`, and any parameter whose name contains "secret", "key", "token", "password" or "signature" keep their name
 * and lose their value (`[redacted]`). Used by the request serializer of the app's logger (src/app.ts).
 */
const SECRET_NAME = /secret|key|token|password|signature/i;
const SECRET_EXACT = new Set(["code", "sig", "jwt", "auth", "authorization"]);

export const REDACTED = "[redacted]";

/** True when a query parameter's value must not reach the log. */
export function isSecretParam(name: string): boolean {
  let n = name;
  try {
    n = decodeURIComponent(name.replace(/\+/g, " "));
  } catch {
    // a broken escape: judge the raw name
  }
  return SECRET_EXACT.has(n.toLowerCase()) || SECRET_NAME.test(n);
}

/** The URL with the values of secret query parameters replaced by [redacted]; the path and other parameters as sent. */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url;
  const parts = url
    .slice(q + 1)
    .split("&")
    .map((p) => {
      const eq = p.indexOf("=");
      const name = eq < 0 ? p : p.slice(0, eq);
      return isSecretParam(name) && eq >= 0 ? `${name}=${REDACTED}` : p;
    });
  return `${url.slice(0, q)}?${parts.join("&")}`;
}

/** The logger's `req` serializer: Fastify's own fields (method, url, host, remote address), the URL redacted. */
export function requestSerializer(req: {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  headers?: Record<string, unknown>;
  socket?: { remotePort?: number };
}) {
  return {
    method: req.method,
    url: typeof req.url === "string" ? redactUrl(req.url) : req.url,
    version: typeof req.headers?.["accept-version"] === "string" ? req.headers["accept-version"] : undefined,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}
