import type { FastifyRequest } from "fastify";
import type { Clock } from "../core/clock.js";
import { forbidden, notFound, unauthorized } from "../core/errors.js";
import { safeEqualHex, sha256Hex } from "../core/crypto.js";
import { isUuid } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { InvalidatedCache, type Invalidator } from "../core/invalidation.js";
import type { ApiKeysService } from "../api-keys/service.js";
import { USER_TOKEN_PREFIX, type UsersService } from "../users/service.js";
import { MEMBERSHIP_TOPIC, membershipKey, type ProjectsService } from "../projects/service.js";
import { checkScopeRole, scopeRole } from "./scopes.js";
import { atLeast, requireRole, type ParticipantPrincipal, type Principal, type ProjectAccess, type Role } from "./principal.js";
import { grantOf, type ParticipantTokens } from "../tokens/service.js";

const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** oidc-provider's opaque access tokens: 43 base64url characters. */
const OAUTH_RE = /^[A-Za-z0-9_-]{43}$/;

interface CachedUserToken {
  tokenId: string;
  userId: string;
  expiresAt: number | null;
  hash: string;
  scopes?: string[];
  projectId?: string;
}

/** Resolves OAuth access tokens (src/oauth/server.ts). */
export interface OAuthTokenLookup {
  lookup(token: string): Promise<{ userId: string; grantId: string; scopes: string[]; projectId: string | null; expiresAt: number } | null>;
}

const TOPIC = "user_token";

declare module "fastify" {
  interface FastifyRequest {
    principalCache?: Promise<Principal | null>;
  }
}

/** Bearer resolution and project authorization: the one place every route asks "who is this, what may they do". */
export class AuthService {
  private userTokens = new Map<string, CachedUserToken>();
  private epoch = 0;

  private memberships: InvalidatedCache<NonNullable<Awaited<ReturnType<ProjectsService["membershipWithOwner"]>>>>;

  constructor(
    private readonly users: Pick<UsersService, "tokenByHash" | "deleteToken" | "get">,
    private readonly projects: Pick<ProjectsService, "membershipWithOwner">,
    private readonly clock: Clock,
    private readonly apiKeys: ApiKeysService,
    private readonly invalidator: Invalidator,
    private readonly participants?: ParticipantTokens,
  ) {
    invalidator.subscribe(TOPIC, (key) => {
      this.epoch++;
      if (key === "*") this.userTokens.clear();
      else if (key.endsWith("*")) {
        const prefix = key.slice(0, -1);
        for (const [h, t] of this.userTokens) if (t.tokenId.startsWith(prefix)) this.userTokens.delete(h);
      } else for (const [h, t] of this.userTokens) if (t.tokenId === key || t.userId === key || h === key) this.userTokens.delete(h);
    });
    this.memberships = new InvalidatedCache(invalidator, MEMBERSHIP_TOPIC, 100_000);
  }

  private oauth?: OAuthTokenLookup;
  /** OAuth access tokens are resolved by the authorization server (built after this service). */
  useOAuth(oauth: OAuthTokenLookup) {
    this.oauth = oauth;
  }

  /** Revoke one of a user's tokens: deleted, and no process accepts it from now on. */
  async revokeToken(userId: string, tokenId: string) {
    await this.users.deleteToken(userId, tokenId);
    await this.revokeUserTokens(tokenId);
  }

  /** Tell every process that a user's tokens (or one token id) changed. */
  revokeUserTokens(userOrTokenId: string) {
    return this.invalidator.publish(TOPIC, userOrTokenId);
  }

  static bearerOf(req: FastifyRequest): string | null {
    const h = req.headers.authorization;
    if (!h) return null;
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    return m ? m[1].trim() : null;
  }

  async resolve(token: string): Promise<Principal | null> {
    if (token.startsWith("ma-")) {
      const k = await this.apiKeys.authenticate(token);
      return k ? { kind: "api_key", keyId: k.keyId, projectId: k.projectId } : null;
    }
    if (token.startsWith(USER_TOKEN_PREFIX)) {
      const hash = sha256Hex(token);
      let t = this.userTokens.get(hash);
      if (!t) {
        const epoch = this.epoch;
        const row = await this.users.tokenByHash(hash);
        // A disabled account's tokens are refused (disabling it drops them from every process's cache).
        if (!row || row.disabled_at !== null) return null;
        t = { tokenId: row.id, userId: row.user_id, expiresAt: row.expires_at, hash: row.token_hash };
        if (epoch === this.epoch) this.userTokens.set(hash, t);
      }
      if (!safeEqualHex(hash, t.hash)) return null;
      if (t.expiresAt !== null && t.expiresAt <= this.clock.now()) return null;
      return { kind: "user", userId: t.userId, tokenId: t.tokenId };
    }
    if (this.oauth && OAUTH_RE.test(token)) {
      const hash = sha256Hex(token);
      let t = this.userTokens.get(hash);
      if (!t) {
        const epoch = this.epoch;
        const a = await this.oauth.lookup(token);
        if (!a) return null;
        const u = await this.users.get(a.userId);
        if (!u || u.disabled_at !== null) return null;
        t = {
          tokenId: `oauth:${a.grantId}`,
          userId: a.userId,
          expiresAt: a.expiresAt,
          hash,
          scopes: a.scopes,
          ...(a.projectId ? { projectId: a.projectId } : {}),
        };
        if (epoch === this.epoch) this.userTokens.set(hash, t);
      }
      if (t.expiresAt !== null && t.expiresAt <= this.clock.now()) return null;
      return { kind: "user", userId: t.userId, tokenId: t.tokenId, scopes: t.scopes!, ...(t.projectId ? { projectId: t.projectId } : {}) };
    }
    if (this.participants && JWT_RE.test(token)) {
      const claims = await this.participants.verify(token).catch(() => null);
      if (!claims) return null;
      const room = grantOf(claims, "room");
      const role = grantOf(claims, "role");
      const api = grantOf(claims, "api");
      const p: ParticipantPrincipal = {
        kind: "participant",
        keyId: claims.kid,
        projectId: claims.sub,
        name: claims.name,
        role: typeof role === "string" ? role : "user",
      };
      if (typeof room === "string") p.room = room;
      if (isObj(api)) p.api = api;
      if (typeof claims.exp === "number") p.exp = claims.exp;
      return p;
    }
    return null;
  }

  /** The caller, or 401. Resolved once per request. */
  async principal(req: FastifyRequest): Promise<Principal> {
    if (!req.principalCache) {
      const bearer = AuthService.bearerOf(req);
      req.principalCache = bearer ? this.resolve(bearer) : Promise.resolve(null);
    }
    const p = await req.principalCache;
    if (!p) throw unauthorized(AuthService.bearerOf(req) ? "invalid or revoked token" : "missing bearer token");
    return p;
  }

  /** Instance-wide calls (src/admin) need a user who is a server administrator. */
  async serverAdmin(req: FastifyRequest): Promise<Extract<Principal, { kind: "user" }>> {
    const p = await this.principal(req);
    if (p.kind !== "user") throw forbidden("this call needs a server administrator's user token");
    const u = await this.users.get(p.userId);
    if (!u || u.is_server_admin !== 1) throw forbidden("this call needs a server administrator");
    return p;
  }

  /** Whether a caller is a user who administers the server. */
  async isServerAdmin(p: Principal): Promise<boolean> {
    if (p.kind !== "user") return false;
    return (await this.users.get(p.userId))?.is_server_admin === 1;
  }

  /** Account-level calls (projects list/create, profiles) need a user. */
  async user(req: FastifyRequest): Promise<Extract<Principal, { kind: "user" }>> {
    const p = await this.principal(req);
    if (p.kind !== "user") throw forbidden(`this call needs a user token, not a ${p.kind === "api_key" ? "project API key" : "participant token"}`);
    return p;
  }

  /** What the caller may do in a project; 404 when the caller has no access (existence is not revealed). */
  async projectAccess(req: FastifyRequest, projectId: string, min: Role = "member"): Promise<ProjectAccess> {
    const principal = await this.principal(req);
    const access = await this.accessFor(principal, projectId);
    if (!access) throw notFound("project");
    checkScopeRole(principal, min);
    requireRole(access, min);
    return access;
  }

  /**
   * A user's membership row (with the project owner), cached: read on every user request, changed rarely. Only
   * existing memberships are cached (a new one is found on the next lookup); updates and removals are announced by
   * ProjectsService on MEMBERSHIP_TOPIC and evicted at once in every process.
   */
  private membership(projectId: string, userId: string) {
    return this.memberships.get(membershipKey(projectId, userId), () => this.projects.membershipWithOwner(projectId, userId));
  }

  async accessFor(principal: Principal, projectId: string): Promise<ProjectAccess | null> {
    if (!isUuid(projectId)) return null;
    if (principal.kind === "api_key") {
      if (principal.projectId !== projectId) return null;
      return { projectId, principal, role: "admin", isOwner: false, canCreateRooms: true, canUseLlmProxy: true };
    }
    if (principal.kind === "participant") {
      // A room participant is not a project admin: a plain member of its own project, with no user behind it.
      if (principal.projectId !== projectId) return null;
      return { projectId, principal, role: "member", isOwner: false, canCreateRooms: false, canUseLlmProxy: false };
    }
    // A project client's OAuth token acts in that project only.
    if (principal.projectId && principal.projectId !== projectId) return null;
    const row = await this.membership(projectId, principal.userId);
    if (!row) return null;
    const isOwner = row.owner_user_id === principal.userId;
    let role: Role = isOwner || row.is_admin ? "admin" : row.is_developer ? "developer" : "member";
    // An OAuth token acts with no more than its scopes allow.
    if (principal.scopes && !atLeast(scopeRole(principal.scopes), role)) role = scopeRole(principal.scopes);
    return {
      projectId,
      principal,
      role,
      isOwner,
      canCreateRooms: role !== "member" || !!row.can_create_rooms,
      canUseLlmProxy: !!row.can_use_llm_proxy || role === "admin",
      userId: principal.userId,
    };
  }
}
