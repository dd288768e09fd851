import type { Clock } from "../core/clock.js";
import { hashPassword, randomSecret, sha256Hex, verifyPassword } from "../core/crypto.js";
import { ApiError, badRequest, forbidden, gone, notFound } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { inTx, type DB } from "../store/db.js";
import type { UsersService } from "../users/service.js";
import { signInRepo } from "./repo.js";
import { checkPassword } from "./passwords.js";
import type { Mailer } from "../mailer/mailer.js";
import { generateSecret, generateURI, verify as verifyTotp } from "otplib";
import type { Sealer } from "../core/crypto.js";

/** How long the second step of a sign-in (the TOTP code) may wait after the password. */
export const SECOND_STEP_MS = 5 * 60 * 1000;
const TOTP_PERIOD_S = 30;
const PENDING_AAD = "sign_in_second_step";
const totpAad = (userId: string) => `totp:${userId}`;

export const SESSION_TTL_MS = 14 * 24 * 3600 * 1000;
/** Failed sign-ins allowed per window before a lock: per account, per IP address. */
export const ACCOUNT_FAILURES = 5;
export const IP_FAILURES = 20;
export const FAILURE_WINDOW_MS = 15 * 60 * 1000;
export const LOCK_MS = 15 * 60 * 1000;
export const RESET_TTL_MS = 3600 * 1000;
const RESET_EVERY_MS = 60 * 1000;

const tooMany = (what: string, until: number, now: number) =>
  new ApiError(
    429,
    "too_many_attempts",
    `too many failed sign-ins ${what}: try again in ${Math.max(1, Math.ceil((until - now) / 60_000))} minute(s), or reset the password`,
  );

/**
 * Sign-in with email and password (scrypt hashes, src/core/crypto.ts) and browser sessions. Guessing is slowed per
 * account (5 failures in 15 minutes lock it for 15 minutes) and per IP address (20), counted in the store so every
 * process sees them; unknown emails cost the same scrypt as known ones and answer the same "wrong email or password".
 * A session is a random cookie token (only its hash is stored), valid 14 days; a disabled account's sessions stop.
 */
export class SignInService {
  /** A hash to verify against when the email is unknown, so the answer takes as long. */
  private dummy: Promise<string> | null = null;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly users: Pick<UsersService, "byEmail" | "get" | "setPasswordHash" | "setTotp" | "useTotpStep" | "create">,
    private readonly sealer: Sealer,
    private readonly reset?: { mailer: Mailer; publicUrl: () => string; log: { warn(obj: object, msg: string): void } },
  ) {}

  // Two-step verification (TOTP, RFC 6238, otplib): 6 digits, 30 s steps, one step of clock drift either way; a code
  // works once. Wrong codes count as failed sign-ins (the same lockout as passwords).

  /** After the password: a sealed, short-lived value the code form sends back (it names the user; it cannot be forged). */
  secondStep(userId: string): string {
    return this.sealer.seal(JSON.stringify({ u: userId, exp: this.clock.now() + SECOND_STEP_MS }), PENDING_AAD);
  }

  private async checkCode(userId: string, sealed: string, code: string): Promise<boolean> {
    const secret = this.sealer.open(sealed, totpAad(userId));
    const token = code.replace(/\s/g, "");
    if (!/^\d{6}$/.test(token)) return false;
    const epoch = Math.floor(this.clock.now() / 1000);
    const r = await verifyTotp({ secret, token, epoch, epochTolerance: TOTP_PERIOD_S });
    if (!r.valid) return false;
    return this.users.useTotpStep(userId, Math.floor(epoch / TOTP_PERIOD_S) + r.delta);
  }

  /** The code of the second step: the user it signs in, or 401 (wrong or reused code) / 400 (the step expired). */
  async completeSecondStep(pending: string, code: string, ip: string) {
    let claim: { u: string; exp: number };
    try {
      claim = JSON.parse(this.sealer.open(pending, PENDING_AAD)) as { u: string; exp: number };
    } catch {
      throw badRequest("this sign-in expired: start again with your password");
    }
    if (claim.exp <= this.clock.now()) throw badRequest("this sign-in expired (5 minutes): start again with your password");
    const u = await this.users.get(claim.u);
    if (!u || u.disabled_at !== null || !u.totp_sealed) throw badRequest("this sign-in cannot go on: start again");
    const acct = `account:${u.email.toLowerCase()}`;
    await this.locked(acct, "for this account");
    if (!(await this.checkCode(u.id, u.totp_sealed, code))) {
      await this.fail(acct, ACCOUNT_FAILURES);
      await this.fail(`ip:${ip}`, IP_FAILURES);
      throw new ApiError(401, "invalid_code", "that code is not right (or was used already): enter the current one");
    }
    await signInRepo.clearFailures(this.db, acct);
    return u;
  }

  /** The user a pending second step is for (to show the code form again), or null. */
  async pendingUser(pending: string) {
    try {
      const claim = JSON.parse(this.sealer.open(pending, PENDING_AAD)) as { u: string; exp: number };
      return claim.exp > this.clock.now() ? ((await this.users.get(claim.u)) ?? null) : null;
    } catch {
      return null;
    }
  }

  /** A new secret to enroll (nothing is stored until a code from it is confirmed). */
  totpSetup(email: string) {
    const secret = generateSecret();
    return { secret, uri: generateURI({ issuer: "MeshAgent", label: email, secret }) };
  }

  async enableTotp(userId: string, secret: string, code: string) {
    if (!/^[A-Z2-7]{16,128}=*$/.test(secret)) throw badRequest("the key is not valid: reload the page");
    const token = code.replace(/\s/g, "");
    const epoch = Math.floor(this.clock.now() / 1000);
    const r = /^\d{6}$/.test(token) ? await verifyTotp({ secret, token, epoch, epochTolerance: TOTP_PERIOD_S }) : { valid: false as const };
    if (!r.valid) throw badRequest("that code is not right: check the app's clock and enter the current code", "invalid_code");
    await this.users.setTotp(userId, this.sealer.seal(secret, totpAad(userId)), Math.floor(epoch / TOTP_PERIOD_S) + r.delta);
  }

  async disableTotp(userId: string, code: string) {
    const u = await this.users.get(userId);
    if (!u?.totp_sealed) return;
    if (!(await this.checkCode(userId, u.totp_sealed, code))) throw badRequest("that code is not right: enter the current one", "invalid_code");
    await this.users.setTotp(userId, null);
  }

  /** Sign-up (when the server's policy lets this person in): a new account with a password, signed in. */
  async signUp(input: { email: string; password: string; password_confirm: string; first_name?: string; last_name?: string }) {
    const email = input.email.trim();
    if (input.password !== input.password_confirm) throw badRequest("the two passwords differ", "password_mismatch");
    checkPassword(input.password, email);
    if (await this.users.byEmail(email))
      throw new ApiError(409, "conflict", "an account with this email exists already: sign in, reset its password, or use the invitation you were mailed");
    const name = (v?: string) => (v && v.trim() ? v.trim().slice(0, 200) : null);
    return this.users.create({ email, password: input.password, first_name: name(input.first_name), last_name: name(input.last_name) });
  }

  private async locked(key: string, what: string) {
    const now = this.clock.now();
    const f = await signInRepo.failures(this.db, key);
    if (f?.locked_until && f.locked_until > now) throw tooMany(what, f.locked_until, now);
  }

  private async fail(key: string, max: number) {
    const now = this.clock.now();
    const f = await signInRepo.failures(this.db, key);
    const fresh = !f || now - f.window_start > FAILURE_WINDOW_MS;
    const failures = fresh ? 1 : f.failures + 1;
    await signInRepo.putFailures(this.db, {
      key,
      failures,
      window_start: fresh ? now : f.window_start,
      locked_until: failures >= max ? now + LOCK_MS : null,
    });
  }

  /** The user these credentials sign in, or a 401 / 403 / 429 that says why. */
  async check(emailIn: string, password: string, ip: string) {
    const email = emailIn.trim().toLowerCase();
    if (!email || !password) throw badRequest("enter your email and your password");
    const acct = `account:${email}`;
    const addr = `ip:${ip}`;
    await this.locked(addr, "from this address");
    await this.locked(acct, "for this account");
    const u = await this.users.byEmail(email);
    this.dummy ??= hashPassword(randomSecret(16));
    const ok = await verifyPassword(password, u?.password_hash ?? (await this.dummy));
    if (!u || !u.password_hash || !ok) {
      await this.fail(acct, ACCOUNT_FAILURES);
      await this.fail(addr, IP_FAILURES);
      throw new ApiError(401, "invalid_credentials", "wrong email or password");
    }
    if (u.disabled_at !== null) throw forbidden("this account is disabled: ask the server's administrator");
    await signInRepo.clearFailures(this.db, acct);
    return u;
  }

  /** A new session for a signed-in user: the cookie's value. */
  async startSession(userId: string): Promise<string> {
    const token = randomSecret(32);
    const now = this.clock.now();
    await signInRepo.insertSession(this.db, { id: newId(), user_id: userId, token_hash: sha256Hex(token), created_at: now, expires_at: now + SESSION_TTL_MS });
    return token;
  }

  /** The user of a session cookie, or null (none, unknown, expired, disabled). */
  async session(token: string | undefined) {
    if (!token || token.length > 200) return null;
    const s = await signInRepo.sessionByHash(this.db, sha256Hex(token));
    if (!s || s.expires_at <= this.clock.now() || s.disabled_at !== null) return null;
    return { userId: s.user_id, email: s.email };
  }

  async endSession(token: string | undefined) {
    if (token) await signInRepo.deleteSession(this.db, sha256Hex(token));
  }

  /** Change the password (the current one required); the user's other browser sessions end. */
  async changePassword(userId: string, sessionToken: string, input: { current: string; password: string; password_confirm: string }) {
    const u = await this.users.get(userId);
    if (!u) throw forbidden("sign in again");
    if (!u.password_hash || !(await verifyPassword(input.current, u.password_hash)))
      throw new ApiError(400, "invalid_credentials", "the current password is wrong");
    if (input.password !== input.password_confirm) throw badRequest("the two new passwords differ", "password_mismatch");
    checkPassword(input.password, u.email);
    const hash = await hashPassword(input.password);
    await inTx(this.db, async (tx) => {
      await this.users.setPasswordHash(userId, hash, tx);
      await signInRepo.deleteOtherSessions(tx, userId, sha256Hex(sessionToken));
    });
  }

  /**
   * Mail a password reset link to the account with this email, if there is one that may sign in (the answer is the
   * same either way, so the form does not tell who has an account). At most one mail a minute per account.
   */
  async requestReset(emailIn: string): Promise<void> {
    const email = emailIn.trim();
    if (!email || email.length > 320) throw badRequest("enter the email address of your account");
    const u = await this.users.byEmail(email);
    if (!u || u.disabled_at !== null || !this.reset) return;
    const now = this.clock.now();
    const last = await signInRepo.latestReset(this.db, u.id);
    if (last && now - Number(last.created_at) < RESET_EVERY_MS) return;
    const token = randomSecret(32);
    await signInRepo.insertReset(this.db, {
      id: newId(),
      user_id: u.id,
      token_hash: sha256Hex(token),
      created_at: now,
      expires_at: now + RESET_TTL_MS,
      used_at: null,
    });
    const link = `${this.reset.publicUrl()}/accounts/password-reset/choose?token=${encodeURIComponent(token)}`;
    // Not awaited: the answer takes as long whether the account exists or not.
    void this.reset.mailer
      .send({
        to: u.email,
        subject: "Reset your MeshAgent password",
        text:
          `Someone (you, we hope) asked to reset the password of ${u.email} on the MeshAgent server at ${this.reset.publicUrl()}.\n\n` +
          `Choose a new password here (the link works once, for one hour):\n\n${link}\n\nIf it was not you, ignore this mail: your password stays as it is.\n`,
      })
      .catch((e) => this.reset!.log.warn({ err: e, user: u.id }, "password reset mail failed"));
  }

  /** The reset behind a link: 404 unknown, 410 used or expired. */
  async openReset(token: string) {
    if (!token || token.length > 200) throw notFound("reset link");
    const r = await signInRepo.resetByHash(this.db, sha256Hex(token));
    if (!r) throw notFound("reset link");
    if (r.used_at !== null) throw gone("this reset link was already used: ask for a new one");
    if (r.expires_at <= this.clock.now()) throw gone("this reset link expired (they last one hour): ask for a new one");
    const u = await this.users.get(r.user_id);
    if (!u || u.disabled_at !== null) throw notFound("reset link");
    return { reset: r, user: u };
  }

  /** Set the new password from a reset link: the link is spent, every session ends, the lockout is lifted. */
  async completeReset(token: string, input: { password: string; password_confirm: string }) {
    const { reset, user } = await this.openReset(token);
    if (input.password !== input.password_confirm) throw badRequest("the two passwords differ", "password_mismatch");
    checkPassword(input.password, user.email);
    const hash = await hashPassword(input.password);
    await inTx(this.db, async (tx) => {
      if (!(await signInRepo.useResets(tx, reset.id, user.id, this.clock.now()))) throw gone("this reset link was already used: ask for a new one");
      await this.users.setPasswordHash(user.id, hash, tx);
      await signInRepo.deleteSessionsOf(tx, user.id);
      await signInRepo.clearFailures(tx, `account:${user.email.toLowerCase()}`);
    });
    return { email: user.email };
  }
}
