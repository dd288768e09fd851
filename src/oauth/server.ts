import { createECDH, createHmac } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type Provider from "oidc-provider";
import type { Configuration, KoaContextWithOIDC } from "oidc-provider";

/** oidc-provider, imported on first use: it warns about Node 20 when imported, and commands like bootstrap never need it. */
type OidcModule = typeof import("oidc-provider");
import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { badRequest, notFound } from "../core/errors.js";
import { sha256Hex, type Sealer } from "../core/crypto.js";
import type { DB } from "../store/db.js";
import type { UsersService } from "../users/service.js";
import { artifactAdapter, CLIENT_EXTRA } from "./adapter.js";
import { artifactsRepo } from "./repo.js";
import { checkRedirectUri, clientSecretAad, GRANT_TYPES } from "./service.js";
import type { OAuthServerClientsTable } from "../store/schema.js";
import { deviceConfirmPage, deviceInputPage, deviceSuccessPage, oauthErrorPage } from "../accounts/pages.js";
import { randomSecret } from "../core/crypto.js";

/** The API as one resource server: every access token is for it (RFC 8707 resource indicator). */
export const API_RESOURCE = "urn:meshagent:api";
/** The scopes of the API (wire-contract §11's list); `project/<id>` and `room/<name>` narrow the two wildcards. */
export const API_SCOPES = [
  "profile",
  "project/*",
  "room/*",
  "create_users",
  "create_rooms",
  "llm_proxy",
  "admin",
  "developer",
  "connect_room",
  "delete_room",
  "update_room",
];
const DYNAMIC_SCOPE = /^(project\/[0-9a-f-]{36}|room\/[^\s*]{1,200})$/;
export const ACCESS_TOKEN_TTL_S = 3600;
export const REFRESH_TOKEN_TTL_S = 30 * 24 * 3600;
const DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code";

/** The official CLI (wire-contract §11): a public client (PKCE, no secret), registered as official at first start. */
export const OFFICIAL_CLI = {
  client_id: "p8xy1ZUi73jJUJbNfTg92HUSDpCSZJcc",
  redirect_uris: ["http://localhost:8765/callback"],
  grant_types: ["authorization_code", "refresh_token", DEVICE_CODE],
  scope: API_SCOPES.join(" "),
  metadata: { client_name: "MeshAgent CLI" },
};

/**
 * The web console (packages/console, served at /console): a public client (PKCE, no secret), registered as official
 * at first start. Its redirect URI follows the public URL (`<public URL>/console/callback`), so it is not stored.
 */
export const OFFICIAL_CONSOLE = {
  client_id: "meshagent-console",
  redirect_path: "/console/callback",
  // No refresh token: the browser holds one access token, and signs in again (silently, while the sign-in session
  // lasts) when it expires.
  grant_types: ["authorization_code"],
  scope: API_SCOPES.join(" "),
  metadata: { client_name: "MeshAgent Console" },
};

/** What the bearer check learns from an OAuth access token. */
export interface OAuthAccess {
  userId: string;
  grantId: string;
  clientId: string;
  scopes: string[];
  /** Tokens of a project's client act in that project only; null for instance-wide clients. */
  projectId: string | null;
  /** ms since epoch */
  expiresAt: number;
}

/** Which of the requested scopes a client may have: its registered ones, and the narrowed forms of its wildcards. */
export function allowedScopes(clientScope: string, requested: Iterable<string>): string[] {
  const mine = new Set(clientScope.split(" ").filter(Boolean));
  const out = new Set<string>([...mine].filter((s) => API_SCOPES.includes(s)));
  for (const s of requested) {
    if (!DYNAMIC_SCOPE.test(s)) continue;
    if ((s.startsWith("project/") && mine.has("project/*")) || (s.startsWith("room/") && mine.has("room/*")) || mine.has(s)) out.add(s);
  }
  return [...out];
}

/**
 * The provider's prompts, but official clients are never asked for consent: oidc-provider asks native (loopback)
 * clients every time, which would put a consent page in front of the official CLI's every login.
 */
function consentPolicy({ interactionPolicy }: OidcModule) {
  const policy = interactionPolicy.base();
  const checks = policy.get("consent")!.checks;
  const native = checks.get("native_client_prompt")!;
  checks.remove("native_client_prompt");
  checks.unshift(
    new interactionPolicy.Check(native.reason, native.description, native.error ?? "interaction_required", async (ctx) =>
      ctx.oidc.client?.["urn:meshagent:official"] ? interactionPolicy.Check.NO_NEED_TO_PROMPT : native.check(ctx),
    ),
  );
  return policy;
}

/** A P-256 signing key for ID tokens, derived from the master key: the same in every process, never stored. */
function signingJwk(masterKey: Buffer) {
  const ecdh = createECDH("prime256v1");
  let d = createHmac("sha256", masterKey).update("meshagent oidc signing key").digest();
  for (let i = 0; ; i++) {
    try {
      ecdh.setPrivateKey(d);
      break;
    } catch {
      d = createHmac("sha256", masterKey).update(`meshagent oidc signing key ${i}`).digest();
    }
  }
  const pub = ecdh.getPublicKey();
  const b64 = (b: Buffer) => b.toString("base64url");
  return { kty: "EC", crv: "P-256", d: b64(d), x: b64(pub.subarray(1, 33)), y: b64(pub.subarray(33, 65)), use: "sig", alg: "ES256" };
}

type Ctx = KoaContextWithOIDC;

/**
 * The OAuth 2.0 authorization server, on oidc-provider (certified, maintained): authorization code with PKCE S256
 * (always), refresh tokens rotated on every use with reuse detection (a reused one ends its grant), the device
 * authorization grant (RFC 8628), revocation (RFC 7009), introspection (RFC 7662), discovery, and OpenID Connect ID
 * tokens when `openid` is asked for. Artifacts live in the store (adapter.ts), so any process can serve any step.
 * Sign-in and consent are our account pages (src/oauth/interaction.ts): the provider sends the browser there.
 */
export class AuthorizationServer {
  private provider_?: Promise<Provider>;
  private callback_?: (req: IncomingMessage, res: ServerResponse) => void;

  constructor(
    private readonly deps: {
      db: DB;
      clock: Clock;
      sealer: Sealer;
      masterKey: Buffer;
      users: Pick<UsersService, "get">;
      publicUrl: () => string;
      /** Announce a revoked token hash or `oauth:<grant id>` to every process's bearer cache. */
      revoked: (key: string) => Promise<unknown>;
    },
  ) {}

  /** The provider, built on first use (the issuer is the public URL, known once the server listens). */
  provider(): Promise<Provider> {
    return (this.provider_ ??= import("oidc-provider").then((m) => this.build(m)));
  }

  /** Hands a request to the provider (its routes: /oauth/*, /.well-known/openid-configuration). */
  async handle(req: IncomingMessage, res: ServerResponse) {
    this.callback_ ??= (await this.provider()).callback();
    this.callback_(req, res);
  }

  private build(oidc: OidcModule): Provider {
    const { errors } = oidc;
    const { db, clock, sealer, users } = this.deps;
    const issuer = this.deps.publicUrl();
    const cookieKey = createHmac("sha256", this.deps.masterKey).update("meshagent oauth cookies").digest("base64url");
    const config: Configuration = {
      adapter: artifactAdapter({
        db,
        clock,
        sealer,
        revoked: this.deps.revoked,
        reused: (m) => new errors.InvalidGrant(m),
        extraRedirects: (id) => (id === OFFICIAL_CONSOLE.client_id ? [this.deps.publicUrl() + OFFICIAL_CONSOLE.redirect_path] : []),
      }) as never,
      clients: [],
      async findAccount(_ctx, id) {
        const u = await users.get(id);
        if (!u || u.disabled_at !== null) return undefined;
        return {
          accountId: u.id,
          async claims() {
            const name = [u.first_name, u.last_name].filter(Boolean).join(" ");
            return { sub: u.id, email: u.email, ...(name ? { name } : {}) };
          },
        };
      },
      claims: { openid: ["sub"], email: ["email"] },
      scopes: ["openid", "offline_access", "email"],
      clientDefaults: { id_token_signed_response_alg: "ES256", grant_types: ["authorization_code"], response_types: ["code"] },
      enabledJWA: { idTokenSigningAlgValues: ["ES256"] } as never,
      jwks: { keys: [signingJwk(this.deps.masterKey)] as never },
      cookies: { keys: [cookieKey], long: { signed: true, httpOnly: true, sameSite: "lax" }, short: { signed: true, httpOnly: true, sameSite: "lax" } },
      extraClientMetadata: { properties: CLIENT_EXTRA },
      interactions: { url: (_ctx, interaction) => `/oauth/interaction/${interaction.uid}`, policy: consentPolicy(oidc) },
      pkce: { required: () => true },
      rotateRefreshToken: true,
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
      expiresWithSession: async () => false,
      ttl: {
        AccessToken: ACCESS_TOKEN_TTL_S,
        AuthorizationCode: 60,
        RefreshToken: REFRESH_TOKEN_TTL_S,
        DeviceCode: 600,
        Grant: REFRESH_TOKEN_TTL_S,
        Interaction: 3600,
        Session: 14 * 24 * 3600,
        IdToken: 3600,
      },
      routes: {
        authorization: "/oauth/authorize",
        token: "/oauth/token",
        revocation: "/oauth/revoke",
        introspection: "/oauth/introspect",
        device_authorization: "/oauth/device/auth",
        code_verification: "/oauth/device",
        jwks: "/oauth/jwks",
        userinfo: "/oauth/userinfo",
        end_session: "/oauth/session/end",
        pushed_authorization_request: "/oauth/par",
      },
      loadExistingGrant: (ctx) => this.existingGrant(ctx),
      features: {
        devInteractions: { enabled: false },
        revocation: { enabled: true },
        introspection: { enabled: true },
        userinfo: { enabled: true },
        rpInitiatedLogout: { enabled: false },
        resourceIndicators: {
          enabled: true,
          defaultResource: async () => API_RESOURCE,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (ctx, resource, client) => {
            if (resource !== API_RESOURCE) throw new errors.InvalidTarget(`the only resource here is ${API_RESOURCE}`);
            return {
              scope: allowedScopes(String(client["urn:meshagent:scope"] ?? ""), requestedScopes(ctx)).join(" "),
              accessTokenFormat: "opaque",
              accessTokenTTL: ACCESS_TOKEN_TTL_S,
            };
          },
        },
        deviceFlow: {
          enabled: true,
          charset: "base-20",
          mask: "****-****",
          userCodeInputSource: async (ctx, form, _out, err) => page(ctx, deviceInputPage({ ...formParts(form), error: err ? deviceError(err) : undefined })),
          userCodeConfirmSource: async (ctx, form, client, _info, userCode) =>
            page(ctx, deviceConfirmPage({ ...formParts(form), client: String(client.clientName ?? client.clientId), userCode })),
          successSource: async (ctx) => page(ctx, deviceSuccessPage({ client: String(ctx.oidc.client?.clientName ?? "the device") })),
        },
      },
      renderError: async (ctx, out) => {
        page(ctx, oauthErrorPage({ error: String(out.error), description: String(out.error_description ?? "") }));
      },
    };
    const provider = new oidc.Provider(issuer, config);
    provider.proxy = true;
    return provider;
  }

  /**
   * The grant a request may use without asking: the one this browser gave the client before, or, for an official
   * client, one made now with every scope it asked for (official clients skip the consent page).
   */
  private async existingGrant(ctx: Ctx) {
    const { client, session, provider } = ctx.oidc;
    if (!client || !session?.accountId) return undefined;
    const grantId = (ctx.oidc.result?.consent as { grantId?: string } | undefined)?.grantId ?? session.grantIdFor(client.clientId);
    let grant = grantId ? await provider.Grant.find(grantId) : undefined;
    if (!client["urn:meshagent:official"]) return grant;
    grant ??= new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    const requested = requestedScopes(ctx);
    grant.addResourceScope(API_RESOURCE, allowedScopes(String(client["urn:meshagent:scope"] ?? ""), requested).join(" "));
    if (requested.includes("openid")) grant.addOIDCScope("openid email");
    await grant.save();
    return grant;
  }

  /** Registers the official CLI and the console at first start (and leaves them as an administrator changed them). */
  async seed() {
    await artifactsRepo.insertServerClient(this.deps.db, {
      client_id: OFFICIAL_CONSOLE.client_id,
      secret_sealed: null,
      grant_types: JSON.stringify(OFFICIAL_CONSOLE.grant_types),
      redirect_uris: "[]",
      scope: OFFICIAL_CONSOLE.scope,
      metadata: JSON.stringify(OFFICIAL_CONSOLE.metadata),
      official: 1,
      created_at: this.deps.clock.now(),
    });
    await artifactsRepo.insertServerClient(this.deps.db, {
      client_id: OFFICIAL_CLI.client_id,
      secret_sealed: null,
      grant_types: JSON.stringify(OFFICIAL_CLI.grant_types),
      redirect_uris: JSON.stringify(OFFICIAL_CLI.redirect_uris),
      scope: OFFICIAL_CLI.scope,
      metadata: JSON.stringify(OFFICIAL_CLI.metadata),
      official: 1,
      created_at: this.deps.clock.now(),
    });
  }

  /** An OAuth access token's holder and scopes, or null (unknown, expired, revoked). Read by the bearer check. */
  async lookup(token: string): Promise<OAuthAccess | null> {
    if (token.length < 20 || token.length > 200) return null;
    const r = await artifactsRepo.byId(this.deps.db, "AccessToken", sha256Hex(token));
    if (!r || !r.account_id || !r.grant_id || !r.client_id) return null;
    const expiresAt = Number(r.expires_at ?? 0);
    if (expiresAt <= this.deps.clock.now()) return null;
    const p = JSON.parse(r.payload) as { scope?: string };
    // The client must still exist: a deleted project takes its clients with it, and their tokens stop here.
    const client = await artifactsRepo.projectClient(this.deps.db, r.client_id);
    if (!client && !(await artifactsRepo.serverClient(this.deps.db, r.client_id))) return null;
    return {
      userId: r.account_id,
      grantId: r.grant_id,
      clientId: r.client_id,
      scopes: (p.scope ?? "").split(" ").filter(Boolean),
      projectId: client?.project_id ?? null,
      expiresAt,
    };
  }

  /** The OAuth grants a user gave (the applications holding tokens for them), newest first. */
  async grantsOf(userId: string) {
    const rows = await artifactsRepo.grantsOf(this.deps.db, userId, this.deps.clock.now());
    return rows.map((r) => {
      const p = JSON.parse(r.payload) as { resources?: Record<string, string>; openid?: { scope?: string } };
      return {
        id: `oauth:${r.grant_id}`,
        kind: "oauth",
        name: r.client_id ?? "",
        client_id: r.client_id ?? "",
        scope: [p.resources?.[API_RESOURCE], p.openid?.scope].filter(Boolean).join(" "),
        created_at: iso(Number(r.created_at)),
        ...(r.expires_at !== null ? { expires_at: iso(Number(r.expires_at)) } : {}),
      };
    });
  }

  /** Revoke a grant the user gave: every code and token issued from it stops working at once, in every process. */
  async revokeGrant(userId: string, grantId: string) {
    const g = await artifactsRepo.byId(this.deps.db, "Grant", sha256Hex(grantId));
    if (!g || g.account_id !== userId) throw notFound("token");
    await artifactsRepo.destroyGrant(this.deps.db, grantId);
    await this.deps.revoked(`oauth:${grantId}`);
  }

  /** A deleted client's codes, tokens and grants go with it. */
  async revokeClient(clientId: string) {
    await artifactsRepo.destroyClient(this.deps.db, clientId);
    // Which grants they were is gone with them: every process drops its cached OAuth bearers (rare: a deletion).
    await this.deps.revoked("oauth:*");
  }

  /** Expired artifacts, removed in batches. */
  async sweep(limit = 1000) {
    await artifactsRepo.sweep(this.deps.db, this.deps.clock.now(), limit);
  }

  private timer?: NodeJS.Timeout;
  /** Sweeps expired codes, tokens and sessions every 10 minutes (servers; stopped by stop()). */
  start() {
    this.timer ??= setInterval(() => void this.sweep().catch(() => {}), 10 * 60 * 1000);
    this.timer.unref();
  }
  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  // Instance-wide clients (server administrators).
  async serverClients() {
    return (await artifactsRepo.serverClients(this.deps.db)).map((r) => serverClientJson(r));
  }

  async createServerClient(input: { redirect_uris: string[]; grant_types?: string[]; scope?: string; name?: string; public?: boolean; official?: boolean }) {
    const grants = input.grant_types ?? ["authorization_code", "refresh_token"];
    for (const g of grants) if (!GRANT_TYPES.includes(g)) throw badRequest(`grant_types: "${g}" is not served here`);
    const uris = input.redirect_uris.map((u, i) => checkRedirectUri(u, `redirect_uris[${i}]`));
    if (grants.includes("authorization_code") && !uris.length) throw badRequest("a client with the authorization_code grant needs a redirect URI");
    const clientId = randomSecret(24).replace(/[-_]/g, "x");
    const secret = input.public ? null : randomSecret(32);
    const row = {
      client_id: clientId,
      secret_sealed: secret === null ? null : this.deps.sealer.seal(secret, clientSecretAad(clientId)),
      grant_types: JSON.stringify(grants),
      redirect_uris: JSON.stringify(uris),
      scope: input.scope ?? API_SCOPES.join(" "),
      metadata: JSON.stringify(input.name ? { client_name: input.name } : {}),
      official: input.official === false ? 0 : 1,
      created_at: this.deps.clock.now(),
    };
    await artifactsRepo.insertServerClient(this.deps.db, row);
    return { ...serverClientJson(row), ...(secret !== null ? { client_secret: secret } : {}) };
  }

  async deleteServerClient(clientId: string) {
    if (!(await artifactsRepo.deleteServerClient(this.deps.db, clientId))) throw notFound("oauth client");
    await this.revokeClient(clientId);
  }
}

function serverClientJson(r: OAuthServerClientsTable) {
  return {
    client_id: r.client_id,
    public: r.secret_sealed === null,
    grant_types: JSON.parse(r.grant_types) as string[],
    redirect_uris: JSON.parse(r.redirect_uris) as string[],
    scope: r.scope,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    official: r.official === 1,
    created_at: iso(Number(r.created_at)),
  };
}

/** Every scope this request names: its own parameter, and those of the code, refresh token or device code it redeems. */
function requestedScopes(ctx: Ctx): string[] {
  const out = new Set<string>();
  const add = (s: unknown) => typeof s === "string" && s.split(" ").forEach((x) => x && out.add(x));
  add(ctx.oidc.params?.scope);
  const e = ctx.oidc.entities as Record<string, { scope?: string } | undefined>;
  for (const k of ["AuthorizationCode", "RefreshToken", "DeviceCode", "Interaction"]) add(e?.[k]?.scope);
  return [...out];
}

/** The action and anti-forgery value of the provider's device form (our page renders its own, labelled, form). */
function formParts(form: string) {
  const action = /action="([^"]+)"/.exec(form)?.[1] ?? "/oauth/device";
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(form)?.[1] ?? "";
  const code = /name="user_code" value="([^"]+)"/.exec(form)?.[1];
  return { action, xsrf, ...(code ? { code } : {}) };
}

function deviceError(err: Error & { userCode?: string }) {
  if (err.userCode || err.name === "NoCodeError") return "That code is not right (or it expired): check the code your device shows and try again.";
  if (err.name === "AbortedError") return "The sign-in was cancelled.";
  return "Something went wrong with this sign-in: start again on your device.";
}

function page(ctx: Ctx, html: string) {
  ctx.type = "html";
  ctx.set("cache-control", "no-store");
  ctx.set("x-frame-options", "DENY");
  ctx.set("referrer-policy", "no-referrer");
  ctx.set("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
  ctx.body = html;
}
