import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { Meshagent, type Project } from "@meshagent-oss/sdk";
import { act, CLIENT_ID, sessionOf, settingsPath, type Context, type TokenResponse } from "../context.js";
import { CliError, log, out, printOne } from "../output.js";

const SCOPES =
  process.env.MESHAGENT_OAUTH_SCOPES || "profile project/* room/* create_users create_rooms llm_proxy admin developer connect_room delete_room update_room";
const DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

export interface LoginOptions {
  device?: boolean;
  browser?: boolean;
  port?: string;
}

const anon = (url: string) => new Meshagent({ baseUrl: url, token: null, maxRetries: 0 }).http;
const tokenCall = (url: string, form: Record<string, string | undefined>) =>
  anon(url).json<TokenResponse>({ method: "POST", path: "/oauth/token", anonymous: true, noIdempotencyKey: true, form });

function openBrowser(url: string) {
  const cmd = process.platform === "darwin" ? "open" : process.platform === "win32" ? "explorer" : "xdg-open";
  try {
    const child = spawn(cmd, [url], { stdio: "ignore", detached: true });
    child.on("error", () => {}); // no browser here: the URL is on stderr
    child.unref();
  } catch {
    // same
  }
}

/** Listens on 127.0.0.1 and, when it can, [::1] on the same port: "localhost" in a browser may be either. */
async function loopback(port: number, handler: Parameters<typeof createServer>[1]): Promise<{ port: number; close(): void }> {
  const listen = (srv: Server, host: string, p: number) =>
    new Promise<number>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(p, host, () => resolve((srv.address() as { port: number }).port));
    });
  const v4 = createServer(handler);
  let bound: number;
  try {
    bound = await listen(v4, "127.0.0.1", port);
  } catch (e) {
    throw new CliError(`cannot listen on localhost:${port}: ${(e as Error).message}`, "port_in_use", "pass --port 0 for any free port");
  }
  const v6 = createServer(handler);
  await listen(v6, "::1", bound).catch(() => undefined);
  return {
    port: bound,
    close() {
      v4.close();
      v6.close();
      v4.closeAllConnections();
      v6.closeAllConnections?.();
    },
  };
}

/** §11 steps 1–3: authorization code + PKCE through the browser, the code received on a loopback callback. */
async function browserLogin(api: string, o: LoginOptions): Promise<TokenResponse> {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const state = randomBytes(16).toString("hex");
  let settle!: { resolve(code: string): void; reject(e: Error): void };
  const code = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  const server = await loopback(Number(o.port ?? 8765), (req, res) => {
    const u = new URL(req.url ?? "/", "http://localhost");
    if (u.pathname !== "/callback") return void res.writeHead(404).end();
    const error = u.searchParams.get("error");
    const ok = !error && u.searchParams.get("state") === state && u.searchParams.get("code");
    res.writeHead(ok ? 200 : 400, { "content-type": "text/html; charset=utf-8" });
    res.end(ok ? "<p>Signed in to MeshAgent. You can close this window.</p>" : "<p>Sign-in failed. Return to the terminal.</p>");
    if (error) settle.reject(new CliError(`the sign-in was refused: ${u.searchParams.get("error_description") ?? error}`, error));
    else if (!ok) settle.reject(new CliError("the callback's state does not match this login", "state_mismatch", "run meshagent auth login again"));
    else settle.resolve(u.searchParams.get("code")!);
  });
  const redirectUri = `http://localhost:${server.port}/callback`;
  const q = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirectUri,
    scope: SCOPES,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
  });
  const url = `${api}/oauth/authorize?${q}`;
  log(`Open this URL in a browser to sign in:\n${url}`);
  if (o.browser !== false) openBrowser(url);
  const timer = setTimeout(() => settle.reject(new CliError("no sign-in within 10 minutes", "timeout", "run meshagent auth login again")), 600_000);
  try {
    const c = await code;
    return await tokenCall(api, {
      grant_type: "authorization_code",
      code: c,
      redirect_uri: redirectUri,
      client_id: CLIENT_ID,
      code_verifier: verifier,
      client_secret: process.env.MESHAGENT_OAUTH_CLIENT_SECRET || undefined,
    });
  } finally {
    clearTimeout(timer);
    server.close();
  }
}

/** RFC 8628: show the code, poll the token endpoint at `interval`, slower on `slow_down`. */
async function deviceLogin(api: string): Promise<TokenResponse> {
  const d = await anon(api).json<{
    device_code: string;
    user_code: string;
    verification_uri: string;
    verification_uri_complete?: string;
    interval?: number;
    expires_in?: number;
  }>({ method: "POST", path: "/oauth/device/auth", anonymous: true, noIdempotencyKey: true, form: { client_id: CLIENT_ID, scope: SCOPES } });
  log(`Open ${d.verification_uri} and enter the code: ${d.user_code}`);
  if (d.verification_uri_complete) log(`(or open ${d.verification_uri_complete})`);
  let interval = (d.interval ?? 5) * 1000;
  const deadline = Date.now() + (d.expires_in ?? 600) * 1000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, interval));
    try {
      return await tokenCall(api, { grant_type: DEVICE_GRANT, device_code: d.device_code, client_id: CLIENT_ID });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const err = ((e as { body?: { error?: string } }).body?.error ?? code) as string;
      if (err === "authorization_pending") continue;
      if (err === "slow_down") {
        interval += 5000;
        continue;
      }
      throw e;
    }
  }
  throw new CliError("the device code expired before it was approved", "expired_token", "run meshagent auth login --device again");
}

/** Sign in and save the profile (§11 step 5); it becomes the active one. */
export async function login(ctx: Context, o: LoginOptions) {
  if (ctx.opts.curl) throw new CliError("--curl does not apply to signing in", "usage", "sign in first, then use --curl on the other commands", 2);
  const api = ctx.apiUrl.url;
  const t = o.device ? await deviceLogin(api) : await browserLogin(api, o);
  const profile = await new Meshagent({ baseUrl: api, token: t.access_token }).getUserProfile("me");
  const id = String(profile.id);
  const s = ctx.settings;
  const prev = s.users[id];
  s.users[id] = {
    profile: profile as Record<string, unknown>,
    api_url: api,
    session: sessionOf(t),
    project: prev && prev.api_url === api ? prev.project : { active_project: null, active_api_keys: {} },
  };
  s.active_user_id = id;
  ctx.save();
  log(`Signed in to ${api} as ${String(profile.email)}.`);
  return s.users[id];
}

const loginOptions = (c: Command) =>
  c
    .option("--device", "the device flow: enter a code in a browser anywhere")
    .option("--no-browser", "print the URL only, do not open a browser")
    .option("--port <port>", "the loopback callback's port (0: any free port)", "8765");

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

export function registerAuth(program: Command) {
  const auth = program.command("auth").description("sign in and out, and show who you are");
  loginOptions(auth.command("login").description("sign in through the browser (or --device)")).action(
    act((ctx, o: LoginOptions) => login(ctx, o).then(() => {})),
  );

  auth
    .command("logout")
    .description("forget the active profile's session and keys (local)")
    .action(
      act((ctx) => {
        const id = ctx.settings.active_user_id;
        if (!id) return log("not signed in");
        const email = ctx.settings.users[id]?.profile.email;
        delete ctx.settings.users[id];
        ctx.settings.active_user_id = null;
        ctx.save();
        log(`signed out ${email ?? id}`);
      }),
    );

  auth
    .command("whoami")
    .description("the user, server, project and where the credentials come from")
    .action(
      act(async (ctx) => {
        const cred = ctx.credential;
        if (!cred.token) throw new CliError("not signed in", "not_logged_in", "run meshagent auth login or set MESHAGENT_API_KEY");
        const client = await ctx.client();
        let user: Record<string, unknown> | null = null;
        try {
          user = (await client.getUserProfile("me")) as Record<string, unknown>;
        } catch (e) {
          // An API key acts for a project, not a user: there may be no profile to show.
          if (cred.kind !== "api key" || ![401, 403, 404].includes((e as { status?: number }).status ?? 0)) throw e;
        }
        const project = ctx.project;
        printOne(ctx.format, {
          email: user?.email ?? null,
          user_id: user?.id ?? null,
          api_url: ctx.apiUrl.url,
          api_url_source: ctx.apiUrl.source,
          credentials: cred.kind,
          credentials_source: cred.source,
          project: project.id,
          project_source: project.source,
          profile: ctx.profile ? ctx.settings.active_user_id : null,
          settings: settingsPath(),
        });
      }),
    );

  auth
    .command("token")
    .description("print the session's access token (refreshed when near expiry)")
    .action(
      act(async (ctx) => {
        if (!ctx.profile?.session) throw new CliError("not signed in", "not_logged_in", "run meshagent auth login");
        await ctx.refreshIfDue();
        out(ctx.profile.session.access_token);
      }),
    );

  loginOptions(program.command("setup").description("sign in, pick or create a project, and make an API key for it"))
    .option("--project <name>", "the project (name or id) to use; created when no project has that name")
    .option("-y, --yes", "never ask: create what is missing")
    .action(
      act(async (ctx, o: LoginOptions & { yes?: boolean }) => {
        if (ctx.opts.curl) throw new CliError("--curl does not apply to setup", "usage", "run setup, then use --curl on the other commands", 2);
        // The global --project means a project id elsewhere; here it may be a name too.
        const wanted = ctx.opts.project;
        ctx.opts.project = undefined;
        if (!ctx.profile?.session) await login(ctx, o);
        else await ctx.refreshIfDue();
        const user = ctx.profile!;
        const client = new Meshagent({ baseUrl: ctx.apiUrl.url, token: user.session!.access_token });
        const projects = await client.listProjects();
        let project: Project | undefined;
        let name = wanted;
        if (!name && projects.length === 1) project = projects[0];
        else if (!name && projects.length > 1 && !o.yes && process.stdin.isTTY) {
          projects.forEach((p, i) => log(`  ${i + 1}. ${p.name} (${p.id})`));
          const a = await ask("project (number or a new name): ");
          project = projects[Number(a) - 1];
          if (!project) name = a;
        } else if (!name && projects.length > 1) throw new CliError("there are several projects", "usage", "pass --project NAME", 2);
        if (name) project = projects.find((p) => p.id === name || p.name === name);
        if (!project) {
          name ??= o.yes || !process.stdin.isTTY ? "default" : (await ask("name of the new project [default]: ")) || "default";
          project = await client.createProject(name);
          log(`created project ${project.name} (${project.id})`);
        }
        user.project.active_project = project.id;
        let key = "existing";
        if (!user.project.active_api_keys[project.id]) {
          const k = await client.createApiKey(project.id, "meshagent-cli", "created by meshagent setup");
          user.project.active_api_keys[project.id] = k.value;
          key = "created";
        }
        ctx.save();
        log(`Ready: ${String(user.profile.email)} on ${ctx.apiUrl.url}, project ${project.name}.`);
        printOne(ctx.format, { email: user.profile.email, api_url: ctx.apiUrl.url, project_id: project.id, project_name: project.name, api_key: key });
      }),
    );
}
