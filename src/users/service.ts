import { iso, type Clock } from "../core/clock.js";
import { badRequest, conflict, forbidden, notFound, quote } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { hashPassword, randomSecret, sha256Hex } from "../core/crypto.js";
import type { DB, Queryable } from "../store/db.js";
import { usersRepo, type UserRow } from "./repo.js";

export interface UserProfile {
  id: string;
  email: string;
  first_name?: string;
  last_name?: string;
}

export function toProfile(u: UserRow): UserProfile {
  const p: UserProfile = { id: u.id, email: u.email };
  if (u.first_name != null) p.first_name = u.first_name;
  if (u.last_name != null) p.last_name = u.last_name;
  return p;
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Personal access tokens look like "mpat_<43 url-safe chars>"; OAuth access tokens reuse the same table. */
export const USER_TOKEN_PREFIX = "mpat_";

export class UsersService {
  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
  ) {}

  /** Whether any user exists yet. */
  any(q: Queryable = this.db) {
    return usersRepo.any(q);
  }

  get(id: string, q: Queryable = this.db) {
    return usersRepo.byId(q, id);
  }

  async require(id: string, q: Queryable = this.db) {
    const u = await usersRepo.byId(q, id);
    if (!u) throw notFound("user");
    return u;
  }

  byEmail(email: string, q: Queryable = this.db) {
    return usersRepo.byEmail(q, email);
  }

  /** Create a user. A password may be absent (an invited user who has not signed up yet). */
  async create(
    input: { email: string; password?: string; first_name?: string | null; last_name?: string | null; invited?: boolean },
    q: Queryable = this.db,
  ): Promise<UserRow> {
    const email = input.email.trim();
    if (!EMAIL_RE.test(email)) throw badRequest(`email ${quote(email)} is not a valid address`);
    if (await usersRepo.byEmail(q, email)) throw conflict(`a user with email ${quote(email)} already exists`);
    const row: UserRow = {
      id: newId(),
      email,
      email_lower: email.toLowerCase(),
      first_name: input.first_name ?? null,
      last_name: input.last_name ?? null,
      password_hash: input.password ? await hashPassword(input.password) : null,
      invited: input.invited ? 1 : 0,
      created_at: this.clock.now(),
      is_server_admin: 0,
      disabled_at: null,
      totp_sealed: null,
      totp_last_step: null,
    };
    await usersRepo.insert(q, row);
    return row;
  }

  /** Make a user a server administrator (bootstrap's user is one). */
  async makeServerAdmin(id: string, q: Queryable = this.db) {
    await usersRepo.update(q, id, { is_server_admin: 1 });
  }

  /** An invited user becomes a real account: a password (hashed by the caller: `hashPassword`), names, no longer invited. */
  async acceptInvitation(id: string, input: { password_hash: string; first_name: string | null; last_name: string | null }, q: Queryable = this.db) {
    await usersRepo.update(q, id, { password_hash: input.password_hash, invited: 0, first_name: input.first_name, last_name: input.last_name });
  }

  /** Store a new password hash (`hashPassword`). */
  async setPasswordHash(id: string, password_hash: string, q: Queryable = this.db) {
    await usersRepo.update(q, id, { password_hash, invited: 0 });
  }

  /** The sealed TOTP secret (null turns the second factor off). */
  async setTotp(id: string, totp_sealed: string | null, lastStep: number | null = null) {
    await usersRepo.update(this.db, id, { totp_sealed, totp_last_step: lastStep });
  }

  /** Spends a TOTP time step: false when it (or a later one) was used already. */
  useTotpStep(id: string, step: number) {
    return usersRepo.useTotpStep(this.db, id, step);
  }

  async setPassword(id: string, password: string) {
    await usersRepo.update(this.db, id, { password_hash: await hashPassword(password), invited: 0 });
  }

  /** Profiles are readable by the user themselves and by anyone who shares a project with them. */
  async profileFor(callerId: string, userId: string): Promise<UserProfile> {
    const target = userId === "me" ? callerId : userId;
    const u = await usersRepo.byId(this.db, target);
    if (!u) throw notFound("user");
    if (target !== callerId && !(await usersRepo.shareAProject(this.db, callerId, target))) throw notFound("user");
    return toProfile(u);
  }

  async updateProfile(callerId: string, userId: string, patch: { first_name?: string | null; last_name?: string | null }) {
    const target = userId === "me" ? callerId : userId;
    if (target !== callerId) {
      // Don't reveal whether a stranger exists; a co-member learns only that it is not theirs to change.
      if (!(await usersRepo.shareAProject(this.db, callerId, target))) throw notFound("user");
      throw forbidden("you can only update your own profile");
    }
    const set: Partial<UserRow> = {};
    if (patch.first_name !== undefined) set.first_name = patch.first_name;
    if (patch.last_name !== undefined) set.last_name = patch.last_name;
    if (Object.keys(set).length) await usersRepo.update(this.db, target, set);
  }

  /** Issue a user token; the plaintext is returned once, only its hash is stored. */
  async issueToken(userId: string, opts: { kind: "pat" | "oauth"; name: string; ttlMs?: number }, q: Queryable = this.db) {
    const token = USER_TOKEN_PREFIX + randomSecret(32);
    const now = this.clock.now();
    await usersRepo.insertToken(q, {
      id: newId(),
      user_id: userId,
      token_hash: sha256Hex(token),
      kind: opts.kind,
      name: opts.name,
      created_at: now,
      expires_at: opts.ttlMs ? now + opts.ttlMs : null,
    });
    return token;
  }

  /** The tokens a user holds (personal access tokens, OAuth access tokens); `current` marks the one in use. */
  async tokens(userId: string, currentTokenId: string | null) {
    const now = this.clock.now();
    return (await usersRepo.tokensOf(this.db, userId))
      .filter((t) => t.expires_at === null || Number(t.expires_at) > now)
      .map((t) => ({
        id: t.id,
        kind: t.kind,
        name: t.name,
        created_at: iso(Number(t.created_at)),
        ...(t.expires_at !== null ? { expires_at: iso(Number(t.expires_at)) } : {}),
        current: t.id === currentTokenId,
      }));
  }

  /** A new personal access token (`expires_in` seconds, else no expiry); its value is returned this once. */
  async createPat(userId: string, input: { name: string; expires_in?: number | null }) {
    const name = input.name.trim();
    if (!name) throw badRequest("name must not be empty");
    const ttlMs = input.expires_in ? input.expires_in * 1000 : undefined;
    const token = await this.issueToken(userId, { kind: "pat", name, ...(ttlMs ? { ttlMs } : {}) });
    const row = await usersRepo.tokenByHash(this.db, sha256Hex(token));
    return {
      id: row!.id,
      kind: "pat",
      name,
      created_at: iso(Number(row!.created_at)),
      ...(row!.expires_at !== null ? { expires_at: iso(Number(row!.expires_at)) } : {}),
      token,
    };
  }

  /** Delete one of the user's tokens (the caller then tells every process: AuthService.revokeToken). */
  async deleteToken(userId: string, tokenId: string) {
    if (!(await usersRepo.deleteTokenOf(this.db, userId, tokenId))) throw notFound("token");
  }

  /** The user token row with this hash (bearer resolution; the caller compares and checks expiry). */
  tokenByHash(hash: string, q: Queryable = this.db) {
    return usersRepo.tokenByHash(q, hash);
  }
}
