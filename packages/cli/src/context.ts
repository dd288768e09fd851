import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { Meshagent, MeshagentError } from "@meshagent-oss/sdk";
import { CliError, CurlPrinted, out, type Format } from "./output.js";

export const DEFAULT_API_URL = "http://localhost:8080";
export const CLIENT_ID = process.env.MESHAGENT_OAUTH_CLIENT_ID || "p8xy1ZUi73jJUJbNfTg92HUSDpCSZJcc";

export interface Session {
  access_token: string;
  refresh_token?: string | null;
  /** Unix seconds (the official CLI's now + expires_in - 30). */
  expires_at: number;
}
export interface UserEntry {
  profile: Record<string, unknown>;
  api_url: string;
  session?: Session | null;
  project: { active_project: string | null; active_api_keys: Record<string, string> };
}
/** ~/.meshagent/settings.json, the official CLI's layout. */
export interface Settings {
  active_user_id: string | null;
  users: Record<string, UserEntry>;
}

export const settingsPath = () => join(homedir(), ".meshagent", "settings.json");

export function loadSettings(): Settings {
  const file = settingsPath();
  if (!existsSync(file)) return { active_user_id: null, users: {} };
  try {
    const s = JSON.parse(readFileSync(file, "utf8")) as Partial<Settings>;
    return { active_user_id: s.active_user_id ?? null, users: s.users ?? {} };
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`, "bad_settings", `fix or delete ${file}, then run meshagent auth login`);
  }
}

/** Written whole through a rename, mode 0600 in a 0700 directory: it holds tokens and API keys. */
export function saveSettings(s: Settings) {
  const file = settingsPath();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export interface GlobalOptions {
  apiUrl?: string;
  apiKey?: string;
  token?: string;
  project?: string;
  output?: Format;
  curl?: boolean;
}

export type Source = "flag" | "env" | "profile" | "default" | "api key" | "none";

const env = (name: string) => process.env[name] || undefined;
const trim = (u: string) => u.replace(/\/+$/, "");

/** b64c of wire-contract §10.1 back to a UUID. */
function b64cToUuid(s: string): string | null {
  if (!/^[A-Za-z0-9_.]{22}$/.test(s)) return null;
  const h = Buffer.from(s.replace(/\./g, "-"), "base64url").toString("hex");
  return h.length === 32 ? `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}` : null;
}

/** An API key's parts: `ma-<b64c key id>-<b64c project id>-<secret>`. */
export function parseApiKey(value: string): { keyId: string; projectId: string; secret: string } | null {
  const m = /^ma-([A-Za-z0-9_.]{22})-([A-Za-z0-9_.]{22})-(.+)$/.exec(value);
  const keyId = m && b64cToUuid(m[1]);
  const projectId = m && b64cToUuid(m[2]);
  return m && keyId && projectId ? { keyId, projectId, secret: m[3] } : null;
}

const SECRET_FIELDS = new Set(["data_base64", "password", "secret", "client_secret", "token", "refresh_token"]);
/** A JSON body with its secret fields (a secret's value, passwords) replaced by REDACTED. */
function redactBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), (k, v) => (SECRET_FIELDS.has(k) && typeof v === "string" ? "REDACTED" : v));
  } catch {
    return body;
  }
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const redact = (v: string) => v.replace(/^(Bearer\s+)(ma-)?.*$/i, (_m, b: string, ma?: string) => `${b}${ma ?? ""}…REDACTED`);

/**
 * Everything a command needs: the output format, the settings, and the API URL, credentials and project resolved by
 * precedence (flags > environment > the active profile). See the README's "Command line" section.
 */
export class Context {
  readonly format: Format;
  private settings_?: Settings;
  /** What `--curl` prints as the body of a streamed upload (a file path, or - for stdin). */
  curlBody = "-";

  constructor(readonly opts: GlobalOptions) {
    this.format = opts.output ?? (process.stdout.isTTY ? "table" : "json");
  }

  get settings(): Settings {
    return (this.settings_ ??= loadSettings());
  }
  save() {
    saveSettings(this.settings);
  }

  /** The active profile, if any. */
  get user(): UserEntry | undefined {
    const id = this.settings.active_user_id;
    return id ? this.settings.users[id] : undefined;
  }

  get apiUrl(): { url: string; source: Source } {
    if (this.opts.apiUrl) return { url: trim(this.opts.apiUrl), source: "flag" };
    if (env("MESHAGENT_API_URL")) return { url: trim(env("MESHAGENT_API_URL")!), source: "env" };
    if (this.user?.api_url) return { url: trim(this.user.api_url), source: "profile" };
    return { url: DEFAULT_API_URL, source: "default" };
  }

  /** The profile, only when it belongs to the server in use: its tokens are never sent to another one. */
  get profile(): UserEntry | undefined {
    const u = this.user;
    return u && trim(u.api_url) === this.apiUrl.url ? u : undefined;
  }

  /** The bearer: --api-key/--token > MESHAGENT_API_KEY > MESHAGENT_TOKEN > the profile's session > its active API key. */
  get credential(): { token: string | null; source: Source; kind: "api key" | "token" | "session" | "none" } {
    if (this.opts.apiKey) return { token: this.opts.apiKey, source: "flag", kind: "api key" };
    if (this.opts.token) return { token: this.opts.token, source: "flag", kind: "token" };
    if (env("MESHAGENT_API_KEY")) return { token: env("MESHAGENT_API_KEY")!, source: "env", kind: "api key" };
    if (env("MESHAGENT_TOKEN")) return { token: env("MESHAGENT_TOKEN")!, source: "env", kind: "token" };
    const p = this.profile;
    if (p?.session?.access_token) return { token: p.session.access_token, source: "profile", kind: "session" };
    const key = p?.project.active_project ? p.project.active_api_keys[p.project.active_project] : undefined;
    if (key) return { token: key, source: "profile", kind: "api key" };
    return { token: null, source: "none", kind: "none" };
  }

  /** --project > MESHAGENT_PROJECT_ID > the profile's active project > the project of the API key in use. */
  get project(): { id: string | null; source: Source } {
    if (this.opts.project) return { id: this.opts.project, source: "flag" };
    if (env("MESHAGENT_PROJECT_ID")) return { id: env("MESHAGENT_PROJECT_ID")!, source: "env" };
    if (this.profile?.project.active_project) return { id: this.profile.project.active_project, source: "profile" };
    const key = this.credential.token && parseApiKey(this.credential.token);
    if (key) return { id: key.projectId, source: "api key" };
    return { id: null, source: "none" };
  }

  projectId(): string {
    const id = this.project.id;
    if (!id) throw new CliError("no project selected", "no_project", "pass --project ID, set MESHAGENT_PROJECT_ID, or run meshagent project activate ID");
    return id;
  }

  /** A client for the resolved server and bearer; the session is refreshed first when it is near expiry. */
  async client(): Promise<Meshagent> {
    const cred = this.credential;
    if (cred.kind === "session" && !this.opts.curl) await this.refreshIfDue();
    const token = this.credential.token;
    // --curl: no retries, so that each request is printed once; the SDK hands the CurlPrinted on as its cause.
    if (this.opts.curl) return new Meshagent({ baseUrl: this.apiUrl.url, token, fetch: this.curlFetch, maxRetries: 0 });
    return new Meshagent({ baseUrl: this.apiUrl.url, token });
  }

  /** §11 step 4: refresh when within 5 minutes of expiry; the old refresh token is kept if none comes back. */
  async refreshIfDue(force = false) {
    const p = this.profile;
    const s = p?.session;
    if (!p || !s || (!force && s.expires_at - Date.now() / 1000 > 300)) return;
    if (!s.refresh_token) throw new CliError("the session has expired", "session_expired", "run meshagent auth login");
    const http = new Meshagent({ baseUrl: this.apiUrl.url, token: null }).http;
    try {
      const t = await http.json<TokenResponse>({
        method: "POST",
        path: "/oauth/token",
        anonymous: true,
        noIdempotencyKey: true,
        form: refreshForm(s.refresh_token),
      });
      p.session = sessionOf(t, s.refresh_token);
      this.save();
    } catch (e) {
      if (e instanceof MeshagentError && e.status >= 400 && e.status < 500)
        throw new CliError("the session has expired", "session_expired", "run meshagent auth login");
      throw e;
    }
  }

  /** `--curl`: print the request as a curl command line (the bearer redacted) and send nothing. */
  private curlFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const parts = ["curl", "-X", init?.method ?? "GET", shq(String(input))];
    for (const [k, v] of Object.entries((init?.headers ?? {}) as Record<string, string>)) {
      if (k === "idempotency-key") continue;
      parts.push("-H", shq(`${k}: ${k.toLowerCase() === "authorization" ? redact(v) : v}`));
    }
    if (typeof init?.body === "string") parts.push("--data-raw", shq(redactBody(init.body)));
    else if (init?.body) parts.push("--data-binary", shq(`@${this.curlBody}`));
    out(parts.join(" "));
    throw new CurlPrinted();
  };
}

export interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  expires_in?: number;
  token_type?: string;
  scope?: string;
}

const refreshForm = (refresh: string) => ({
  grant_type: "refresh_token",
  refresh_token: refresh,
  client_id: CLIENT_ID,
  client_secret: env("MESHAGENT_OAUTH_CLIENT_SECRET"),
});

export function sessionOf(t: TokenResponse, oldRefresh?: string | null): Session {
  return {
    access_token: t.access_token,
    refresh_token: t.refresh_token ?? oldRefresh ?? null,
    expires_at: Math.floor(Date.now() / 1000) + (t.expires_in ?? 3600) - 30,
  };
}

/** A commander action that gets a Context from the global options, then the command's own arguments and options. */
export function act<A extends unknown[]>(fn: (ctx: Context, ...args: A) => Promise<void> | void) {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as { optsWithGlobals(): GlobalOptions };
    await fn(new Context(cmd.optsWithGlobals()), ...(args.slice(0, -1) as A));
  };
}

/** For repeatable options: `--value a=1 --value b=2`. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `k=v` pairs into an object. */
export function pairs(list: string[] = [], what = "--value"): Record<string, string> {
  const o: Record<string, string> = {};
  for (const p of list) {
    const i = p.indexOf("=");
    if (i <= 0) throw new CliError(`${what} expects key=value, got "${p}"`, "usage", undefined, 2);
    o[p.slice(0, i)] = p.slice(i + 1);
  }
  return o;
}

/** A JSON option value, with the option's name in the error. */
export function jsonArg(v: string | undefined, what: string): unknown {
  if (v === undefined) return undefined;
  try {
    return JSON.parse(v);
  } catch {
    throw new CliError(`${what} must be JSON`, "usage", undefined, 2);
  }
}
