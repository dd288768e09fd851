import { createHash, randomBytes } from "node:crypto";

/** A browser's cookies for one origin (enough for the sign-in flow: name=value, paths ignored). */
export class CookieJar {
  private jar = new Map<string, string>();
  take(h: Headers) {
    for (const c of h.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === "") this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }
  header() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  has(name: string) {
    return this.jar.has(name);
  }
}

export interface Browser {
  jar: CookieJar;
  /** One request, no redirects followed; cookies kept. */
  go(method: string, url: string, form?: Record<string, string>): Promise<{ status: number; location: string | null; text: string; headers: Headers }>;
}

export function browser(base: string): Browser {
  const jar = new CookieJar();
  return {
    jar,
    async go(method, url, form) {
      const res = await fetch(url.startsWith("http") ? url : base + url, {
        method,
        redirect: "manual",
        headers: {
          accept: "text/html",
          ...(jar.header() ? { cookie: jar.header() } : {}),
          ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
        },
        body: form ? new URLSearchParams(form).toString() : undefined,
      });
      jar.take(res.headers);
      return { status: res.status, location: res.headers.get("location"), text: await res.text(), headers: res.headers };
    },
  };
}

export const CLI_CLIENT_ID = "p8xy1ZUi73jJUJbNfTg92HUSDpCSZJcc";
export const CLI_REDIRECT = "http://localhost:8765/callback";
/** The official CLI's default scopes (wire-contract §11). */
export const CLI_SCOPES = "profile project/* room/* create_users create_rooms llm_proxy admin developer connect_room delete_room update_room";

export function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  return { verifier, challenge };
}

/**
 * The browser half of the CLI's login (§11 steps 1–2): /oauth/authorize, the sign-in page, the redirect to the
 * callback. Returns the callback's code and state (or the redirect when it went elsewhere).
 */
export async function authorize(
  base: string,
  who: { email: string; password: string },
  opts: { clientId?: string; redirectUri?: string; scope?: string; challenge: string; state?: string; b?: Browser; consent?: "allow" | "deny" },
) {
  const b = opts.b ?? browser(base);
  const state = opts.state ?? randomBytes(8).toString("hex");
  const q = new URLSearchParams({
    response_type: "code",
    client_id: opts.clientId ?? CLI_CLIENT_ID,
    redirect_uri: opts.redirectUri ?? CLI_REDIRECT,
    scope: opts.scope ?? CLI_SCOPES,
    code_challenge: opts.challenge,
    code_challenge_method: "S256",
    state,
  });
  let r = await b.go("GET", `/oauth/authorize?${q}`);
  const pages: string[] = [];
  for (let i = 0; i < 10 && r.location; i++) {
    const loc = r.location;
    if (loc.startsWith(opts.redirectUri ?? CLI_REDIRECT)) {
      const u = new URL(loc);
      return { code: u.searchParams.get("code"), state: u.searchParams.get("state"), error: u.searchParams.get("error"), sent: state, pages, b };
    }
    r = await b.go("GET", loc);
    pages.push(r.text);
    if (r.status === 200 && /<form method="post" action="(\/oauth\/interaction\/[^"]+\/login)"/.test(r.text)) {
      const action = /<form method="post" action="(\/oauth\/interaction\/[^"]+\/login)"/.exec(r.text)![1];
      r = await b.go("POST", action, { email: who.email, password: who.password });
    } else if (r.status === 200 && /action="(\/oauth\/interaction\/[^"]+\/consent)"/.test(r.text)) {
      const action = /action="(\/oauth\/interaction\/[^"]+\/consent)"/.exec(r.text)![1];
      const csrf = /name="csrf" value="([^"]+)"/.exec(r.text)![1];
      r = await b.go("POST", action, { csrf, decision: opts.consent ?? "allow" });
    }
  }
  throw new Error(`the authorization did not reach the callback: ${r.status} ${r.location} ${r.text.slice(0, 300)}`);
}

/** POST /oauth/token as the CLI sends it (form, no Authorization header unless given). */
export async function token(base: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}
