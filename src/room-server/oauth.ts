import { createHash, randomBytes } from "node:crypto";
import { isObj } from "../core/json.js";
import { guardedFetch, parseHttpUrl, UnsafeUrlError } from "../core/ssrf.js";
import { ErrorCode, invalid, ToolError } from "./protocol.js";

/**
 * OAuth for the secrets toolkit: the client configuration a participant sends (0.39.9 `OAuthClientConfig`), PKCE,
 * the token endpoint calls (authorization code and refresh), and the stored form of a token (a room secret).
 */

/** The `oauth` object of request_oauth_token / get_offline_oauth_token. */
export interface OAuthClientConfig {
  client_id: string;
  client_secret: string | null;
  authorization_endpoint: string;
  /** Required to request a token; optional to read a stored one (then it is needed only to refresh). */
  token_endpoint: string | null;
  no_pkce: boolean;
  scopes: string[] | null;
}

/** A token as it is stored (the room secret's value, JSON). `expires_at`: epoch seconds. */
export interface StoredToken {
  access_token: string;
  token_type?: string;
  refresh_token?: string;
  expires_at?: number;
  scope?: string;
  client_id?: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
}

/** The type of the room secrets that hold OAuth tokens. */
export const OAUTH_TOKEN_TYPE = "application/vnd.meshagent.oauth-token+json";
/** A token that expires within this many seconds counts as expired (refreshed, or asked for again). */
const EXPIRY_SKEW_S = 30;
const MAX_URL = 2048;
const MAX_ANSWER_BYTES = 256 * 1024;
const USER_AGENT = "meshagent-server (room secrets)";

function url(v: unknown, field: string): string {
  if (typeof v !== "string" || !v.trim()) throw invalid(`oauth.${field} must be a non-empty string`);
  const s = v.trim();
  if (s.length > MAX_URL) throw invalid(`oauth.${field} must be at most ${MAX_URL} characters`);
  try {
    parseHttpUrl(s, `oauth.${field}`);
  } catch (e) {
    if (e instanceof UnsafeUrlError) throw invalid(e.message);
    throw e;
  }
  return s;
}

/** Read the client's `oauth` object; `needTokenEndpoint` for calls that will talk to the provider. */
export function parseOAuthConfig(v: unknown, needTokenEndpoint: boolean): OAuthClientConfig {
  if (!isObj(v)) throw invalid("oauth is required: {client_id, authorization_endpoint, token_endpoint, …} (connectors are not supported by this server)");
  if (typeof v.client_id !== "string" || !v.client_id.trim() || v.client_id.length > 512) throw invalid("oauth.client_id must be a string of 1-512 characters");
  const tokenEndpoint = v.token_endpoint === undefined || v.token_endpoint === null ? null : url(v.token_endpoint, "token_endpoint");
  if (needTokenEndpoint && tokenEndpoint === null) throw invalid("oauth.token_endpoint is required");
  if (v.scopes !== undefined && v.scopes !== null && (!Array.isArray(v.scopes) || v.scopes.some((s) => typeof s !== "string")))
    throw invalid("oauth.scopes must be a list of strings");
  if (v.client_secret !== undefined && v.client_secret !== null && typeof v.client_secret !== "string") throw invalid("oauth.client_secret must be a string");
  return {
    client_id: v.client_id.trim(),
    client_secret: typeof v.client_secret === "string" && v.client_secret ? v.client_secret : null,
    authorization_endpoint: url(v.authorization_endpoint, "authorization_endpoint"),
    token_endpoint: tokenEndpoint,
    no_pkce: v.no_pkce === true,
    scopes: Array.isArray(v.scopes) ? (v.scopes as string[]) : null,
  };
}

/**
 * The id of the room secret that holds the token of one OAuth client at one provider:
 * `oauth.` + the first 32 hex digits of sha256(`<authorization_endpoint>\n<client_id>`).
 */
export function oauthSecretId(cfg: Pick<OAuthClientConfig, "authorization_endpoint" | "client_id">): string {
  return "oauth." + createHash("sha256").update(`${cfg.authorization_endpoint}\n${cfg.client_id}`).digest("hex").slice(0, 32);
}

/** The PKCE pair (RFC 7636, S256): the verifier stays on the server, the challenge goes to the authorizing participant. */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** A stored value as a token: the JSON form above, or (a token a client stored itself as text) the text itself. */
export function parseStoredToken(value: Buffer): StoredToken | null {
  const text = value.toString("utf8").trim();
  if (!text) return null;
  if (text.startsWith("{")) {
    try {
      const j = JSON.parse(text) as unknown;
      if (isObj(j) && typeof j.access_token === "string" && j.access_token) return j as unknown as StoredToken;
    } catch {
      // not JSON: fall through
    }
    return null;
  }
  return /^\S+$/.test(text) ? { access_token: text } : null;
}

export const tokenExpired = (t: StoredToken, nowMs: number) => typeof t.expires_at === "number" && t.expires_at - EXPIRY_SKEW_S <= nowMs / 1000;

/** A short, printable piece of what a provider said, for an error text (never a token: only `error` fields are read). */
const said = (v: unknown) => (typeof v === "string" ? v.replace(/[^\x20-\x7e]/g, "?").slice(0, 200) : "");

/**
 * POST to the token endpoint (application/x-www-form-urlencoded, RFC 6749 §4.1.3 / §6), through the guarded fetch
 * (no private addresses unless `allowPrivate`). Answers the token to store, or throws a ToolError naming the
 * reason (the provider's `error` and `error_description`, never a token or a secret).
 */
export async function tokenRequest(
  cfg: OAuthClientConfig,
  form: Record<string, string>,
  opts: { allowPrivate: boolean; timeoutMs: number; nowMs: number },
): Promise<StoredToken> {
  if (!cfg.token_endpoint) throw invalid("oauth.token_endpoint is required");
  const body = new URLSearchParams({ ...form, client_id: cfg.client_id });
  if (cfg.client_secret) body.set("client_secret", cfg.client_secret);
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException(`the token endpoint did not answer within ${opts.timeoutMs} ms`, "AbortError")), opts.timeoutMs);
  const f = guardedFetch({ allowPrivate: opts.allowPrivate, maxBodyBytes: MAX_ANSWER_BYTES, signal: ctl.signal, defaultHeaders: { "user-agent": USER_AGENT } });
  let status: number;
  let answer: unknown;
  try {
    const res = await f.fetch(cfg.token_endpoint, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: body.toString(),
      redirect: "error",
    });
    status = res.status;
    const text = await res.text();
    const type = res.headers.get("content-type") ?? "";
    if (/application\/x-www-form-urlencoded/i.test(type)) answer = Object.fromEntries(new URLSearchParams(text));
    else
      try {
        answer = JSON.parse(text);
      } catch {
        answer = undefined;
      }
  } catch (e) {
    const err = e as Error & { cause?: { message?: string } };
    const why = err.name === "AbortError" ? `no answer within ${opts.timeoutMs} ms` : said(err.cause?.message ?? err.message);
    throw new ToolError(`the token endpoint could not be reached: ${why}`, ErrorCode.OPERATION_FAILED);
  } finally {
    clearTimeout(timer);
    f.close();
  }
  if (!isObj(answer)) throw new ToolError(`the token endpoint answered ${status} without a JSON object`, ErrorCode.OPERATION_FAILED);
  if (status < 200 || status >= 300 || typeof answer.access_token !== "string" || !answer.access_token) {
    const error = said(answer.error);
    const desc = said(answer.error_description);
    throw new ToolError(
      `the token endpoint answered ${status}${error ? `: ${error}` : " without an access_token"}${desc ? ` (${desc})` : ""}`,
      ErrorCode.OPERATION_FAILED,
    );
  }
  const t: StoredToken = {
    access_token: answer.access_token,
    client_id: cfg.client_id,
    authorization_endpoint: cfg.authorization_endpoint,
    token_endpoint: cfg.token_endpoint,
  };
  if (typeof answer.token_type === "string") t.token_type = answer.token_type;
  if (typeof answer.refresh_token === "string" && answer.refresh_token) t.refresh_token = answer.refresh_token;
  else if (form.grant_type === "refresh_token" && form.refresh_token) t.refresh_token = form.refresh_token; // the old one stays valid
  const expiresIn = Number(answer.expires_in);
  if (Number.isFinite(expiresIn) && expiresIn > 0) t.expires_at = Math.floor(opts.nowMs / 1000 + expiresIn);
  if (typeof answer.scope === "string") t.scope = answer.scope;
  return t;
}
