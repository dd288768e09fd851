import { iso, type Clock } from "../core/clock.js";
import { badRequest, conflict, notFound } from "../core/errors.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, type DB } from "../store/db.js";
import type { UsersTable as UserRow } from "../store/schema.js";
import { adminRepo } from "./repo.js";

export const SIGNUP_POLICIES = ["open", "invite", "closed"] as const;
export type SignupPolicy = (typeof SIGNUP_POLICIES)[number];

/** A user as a server administrator sees them. */
function adminUserJson(u: UserRow) {
  return {
    id: u.id,
    email: u.email,
    ...(u.first_name != null ? { first_name: u.first_name } : {}),
    ...(u.last_name != null ? { last_name: u.last_name } : {}),
    is_server_admin: u.is_server_admin === 1,
    disabled: u.disabled_at !== null,
    ...(u.disabled_at !== null ? { disabled_at: iso(Number(u.disabled_at)) } : {}),
    invited: u.invited === 1,
    created_at: iso(Number(u.created_at)),
  };
}

/**
 * The server's own administration: every user of the instance (list, make or unmake administrators, disable and
 * enable), and the instance-wide settings (`signup_policy`: `open` anyone may sign up, `invite` only invited people,
 * `closed` nobody new). A disabled user's tokens are refused at once in every process (`revokeUserTokens`). The server
 * always keeps one enabled administrator: the last one cannot be disabled or demoted.
 */
export class AdminService {
  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly revokeUserTokens: (userId: string) => Promise<unknown>,
  ) {}

  async users(opts: { count?: number; offset?: number; filter?: string }) {
    const filter = opts.filter?.trim();
    const { rows, total } = await adminRepo.usersPage(this.db, {
      limit: pageSize(opts.count, 100),
      offset: pageOffset(opts.offset),
      ...(filter ? { filter } : {}),
    });
    return { users: rows.map(adminUserJson), total };
  }

  async updateUser(callerId: string, userId: string, patch: { is_server_admin?: boolean | null; disabled?: boolean | null }) {
    const { row, revoke } = await inTx(this.db, async (tx) => {
      const u = await adminRepo.user(tx, userId);
      if (!u) throw notFound("user");
      const set: Partial<UserRow> = {};
      if (patch.disabled != null && patch.disabled !== (u.disabled_at !== null)) {
        if (patch.disabled && userId === callerId) throw badRequest("you cannot disable your own account");
        set.disabled_at = patch.disabled ? this.clock.now() : null;
      }
      if (patch.is_server_admin != null && patch.is_server_admin !== (u.is_server_admin === 1)) set.is_server_admin = patch.is_server_admin ? 1 : 0;
      if (!Object.keys(set).length) return { row: u, revoke: false };
      await adminRepo.setUser(tx, userId, set);
      if (u.is_server_admin === 1 && u.disabled_at === null && (set.is_server_admin === 0 || set.disabled_at))
        if ((await adminRepo.activeAdmins(tx)) === 0) throw conflict("this is the server's last enabled administrator: make another one first");
      return { row: { ...u, ...set }, revoke: set.disabled_at !== undefined && set.disabled_at !== null };
    });
    // Its tokens stop working everywhere now (each process drops them from its cache and finds the account disabled).
    if (revoke) await this.revokeUserTokens(userId);
    return adminUserJson(row);
  }

  async signupPolicy(): Promise<SignupPolicy> {
    const r = await adminRepo.setting(this.db, "signup_policy");
    const v = r ? (JSON.parse(r.value) as SignupPolicy) : "invite";
    return SIGNUP_POLICIES.includes(v) ? v : "invite";
  }

  async settings() {
    return { signup_policy: await this.signupPolicy() };
  }

  async updateSettings(patch: { signup_policy?: string | null }) {
    if (patch.signup_policy != null) {
      if (!SIGNUP_POLICIES.includes(patch.signup_policy as SignupPolicy)) throw badRequest(`signup_policy must be one of ${SIGNUP_POLICIES.join(", ")}`);
      await adminRepo.putSetting(this.db, "signup_policy", JSON.stringify(patch.signup_policy), this.clock.now());
    }
    return this.settings();
  }
}
