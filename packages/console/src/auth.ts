/**
 * Sign-in: the OAuth 2.0 authorization-code flow with PKCE (S256) as the public client `meshagent-console`, which the
 * server registers as official at first start (no consent page). The access token is the only secret the browser
 * keeps, in sessionStorage (gone with the tab); when it expires the console signs in again, silently while the
 * server's sign-in session lasts.
 */
export const CLIENT_ID = "meshagent-console";
export const SCOPES = "profile project/* room/* create_users create_rooms llm_proxy admin developer connect_room delete_room update_room";
const TOKEN_KEY = "meshagent.console.token";
const FLOW_KEY = "meshagent.console.flow";

export interface StoredToken {
  access_token: string;
  /** ms since epoch */
  expires_at: number;
}

interface Flow {
  verifier: string;
  state: string;
  returnTo: string;
}

const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

export function randomString(bytes = 32): string {
  return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The S256 code challenge of a verifier (RFC 7636 §4.2). */
export async function codeChallenge(verifier: string): Promise<string> {
  return b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
}

export const redirectUri = (origin = location.origin) => `${origin}/console/callback`;

export function storedToken(storage: Storage = sessionStorage, now = Date.now()): StoredToken | null {
  try {
    const t = JSON.parse(storage.getItem(TOKEN_KEY) ?? "null") as StoredToken | null;
    // A minute of margin: a call started with it must not fail half way.
    if (t && typeof t.access_token === "string" && t.expires_at - 60_000 > now) return t;
  } catch {
    /* a damaged entry counts as none */
  }
  return null;
}

let starting: Promise<void> | null = null;

/**
 * Starts the flow: remembers the verifier, state and where to come back to, and goes to the authorization endpoint.
 * Once per page: several calls failing with 401 at the same moment start one flow, not several racing for the state.
 */
export function beginSignIn(returnTo: string, storage: Storage = sessionStorage, go = (url: string) => location.assign(url)): Promise<void> {
  return (starting ??= startFlow(returnTo, storage, go));
}

async function startFlow(returnTo: string, storage: Storage, go: (url: string) => void) {
  const flow: Flow = { verifier: randomString(48), state: randomString(16), returnTo };
  storage.setItem(FLOW_KEY, JSON.stringify(flow));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirectUri(),
    scope: SCOPES,
    state: flow.state,
    code_challenge: await codeChallenge(flow.verifier),
    code_challenge_method: "S256",
  });
  go(`/oauth/authorize?${q}`);
}

export class SignInError extends Error {}

/** The callback: checks the state, trades the code for a token, and answers where to go next. */
export async function finishSignIn(search: string, storage: Storage = sessionStorage, fetchImpl: typeof fetch = fetch): Promise<string> {
  const q = new URLSearchParams(search);
  const flow = JSON.parse(storage.getItem(FLOW_KEY) ?? "null") as Flow | null;
  storage.removeItem(FLOW_KEY);
  if (q.get("error")) throw new SignInError(`${q.get("error")}: ${q.get("error_description") ?? "the sign-in was not completed"}`);
  if (!flow || !q.get("state") || q.get("state") !== flow.state)
    throw new SignInError("this sign-in link does not belong to this tab (its state does not match): sign in again");
  const code = q.get("code");
  if (!code) throw new SignInError("the sign-in answer carries no code: sign in again");
  const res = await fetchImpl("/oauth/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: redirectUri(), client_id: CLIENT_ID, code_verifier: flow.verifier }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
  if (!res.ok || !body.access_token)
    throw new SignInError(`${body.error ?? `HTTP ${res.status}`}: ${body.error_description ?? "the token endpoint refused the code"}`);
  const token: StoredToken = { access_token: body.access_token, expires_at: Date.now() + (body.expires_in ?? 3600) * 1000 };
  storage.setItem(TOKEN_KEY, JSON.stringify(token));
  return flow.returnTo.startsWith("/console") ? flow.returnTo : "/console/";
}

/** Forgets the token here and revokes it at the server. */
export async function signOut(storage: Storage = sessionStorage) {
  const t = storedToken(storage, 0);
  storage.removeItem(TOKEN_KEY);
  if (t)
    await fetch("/oauth/revoke", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: t.access_token, client_id: CLIENT_ID }),
    }).catch(() => {});
}
