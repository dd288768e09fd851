import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { badRequest, conflict, forbidden, notFound } from "../core/errors.js";
import { isUuid, newId, uuidToB64c } from "../core/ids.js";
import { isObj } from "../core/json.js";
import type { EventBus } from "../core/events.js";
import { InvalidatedCache, type Invalidator } from "../core/invalidation.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, int, type DB, type Queryable } from "../store/db.js";
import type { UsersService } from "../users/service.js";
import type { ProjectAccess, Role } from "../auth/principal.js";
import { projectsRepo, type ProjectRow } from "./repo.js";

export interface MembershipFlags {
  is_admin?: boolean | null;
  is_developer?: boolean | null;
  can_create_rooms?: boolean | null;
  can_use_llm_proxy?: boolean | null;
}

const jsonOf = new WeakMap<ProjectRow, ReturnType<typeof buildProjectJson>>();

/** The project object clients read (ProjectInfo, §7.1). Rows are immutable once read, so the JSON is memoized per row. */
export function projectJson(p: ProjectRow) {
  let j = jsonOf.get(p);
  if (!j) jsonOf.set(p, (j = buildProjectJson(p)));
  return j;
}

function buildProjectJson(p: ProjectRow) {
  return {
    id: p.id,
    name: p.name,
    owner_user_id: p.owner_user_id ?? undefined,
    project_key: uuidToB64c(p.id),
    created_at: iso(p.created_at),
    enabled: !!p.enabled,
    settings: JSON.parse(p.settings) as Record<string, unknown>,
  };
}

function checkName(name: string) {
  const n = name.trim();
  if (!n) throw badRequest("name must not be empty");
  if (n.length > 200) throw badRequest("name must be at most 200 characters");
  return n;
}

const TOPIC = "project";

/** Memberships are cached by the auth service; every change to an existing one is announced on this topic. */
export const MEMBERSHIP_TOPIC = "membership";
export const membershipKey = (projectId: string, userId: string) => `${projectId}:${userId}`;

export class ProjectsService {
  /** Project rows by id: read on nearly every request, changed rarely; evicted in every process on change. */
  private cache: InvalidatedCache<ProjectRow>;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly users: UsersService,
    private readonly bus: EventBus,
    private readonly invalidator: Invalidator,
  ) {
    this.cache = new InvalidatedCache(invalidator, TOPIC, 10_000);
  }

  async create(ownerUserId: string, input: { name: string; settings?: Record<string, unknown> | null }, q?: Queryable) {
    const now = this.clock.now();
    const row: ProjectRow = {
      id: newId(),
      name: checkName(input.name),
      settings: JSON.stringify(input.settings ?? {}),
      enabled: 1,
      owner_user_id: ownerUserId,
      created_at: now,
    };
    const run = async (tx: Queryable) => {
      await projectsRepo.insert(tx, row);
      await projectsRepo.insertMembership(tx, {
        project_id: row.id,
        user_id: ownerUserId,
        is_admin: 1,
        is_developer: 1,
        can_create_rooms: 1,
        can_use_llm_proxy: 1,
        created_at: now,
      });
      return this.bus.publish(tx, { type: "project.created", project_id: row.id, data: { id: row.id, name: row.name } });
    };
    (q ? await run(q) : await inTx(this.db, run))();
    return projectJson(row);
  }

  /** The user's own project of this name (the oldest when there are several), or undefined. */
  byNameForOwner(ownerUserId: string, name: string, q: Queryable = this.db) {
    return projectsRepo.byNameForOwner(q, ownerUserId, name);
  }

  async listForUser(userId: string) {
    return (await projectsRepo.listForUser(this.db, userId)).map(projectJson);
  }

  async get(projectId: string): Promise<ProjectRow> {
    const p = await this.cache.get(projectId, () => projectsRepo.byId(this.db, projectId));
    if (!p) throw notFound("project");
    return p;
  }

  async updateSettings(projectId: string, settings: unknown) {
    if (!isObj(settings)) throw badRequest("the body must be a JSON object of settings");
    await projectsRepo.update(this.db, projectId, { settings: JSON.stringify(settings) });
    await this.invalidator.publish(TOPIC, projectId);
    return settings as Record<string, unknown>;
  }

  /** Whether the user is a member of the project (any role, invited users included). */
  async hasMember(projectId: string, userId: string): Promise<boolean> {
    return !!(await projectsRepo.membership(this.db, projectId, userId));
  }

  /** The user's membership flags in the project with the project's owner, or undefined (read by the auth service, which caches it). */
  membershipWithOwner(projectId: string, userId: string, q: Queryable = this.db) {
    return projectsRepo.membershipWithOwner(q, projectId, userId);
  }

  roleJson(a: ProjectAccess) {
    return { role: a.role as Role, can_create_rooms: a.canCreateRooms, can_use_llm_proxy: a.canUseLlmProxy };
  }

  /** Add a member by user id, or by email (an unknown email becomes an invited user). */
  async addUser(projectId: string, input: { user_id?: string | null; email?: string | null } & MembershipFlags) {
    let userId = input.user_id ?? undefined;
    if (!userId && !input.email) throw badRequest("user_id is required");
    const after = await inTx(this.db, async (tx) => {
      if (!userId) {
        const existing = await this.users.byEmail(input.email!, tx);
        userId = existing?.id ?? (await this.users.create({ email: input.email!, invited: true }, tx)).id;
      } else {
        if (!isUuid(userId) || !(await this.users.get(userId, tx))) throw notFound("user");
      }
      if (await projectsRepo.membership(tx, projectId, userId)) throw conflict("the user is already a member of this project");
      await projectsRepo.insertMembership(tx, {
        project_id: projectId,
        user_id: userId,
        is_admin: int(input.is_admin),
        is_developer: int(input.is_developer),
        can_create_rooms: int(input.can_create_rooms),
        can_use_llm_proxy: int(input.can_use_llm_proxy),
        created_at: this.clock.now(),
      });
      return this.bus.publish(tx, { type: "project.user.added", project_id: projectId, data: { user_id: userId } });
    });
    after();
    return { ok: true, user_id: userId! };
  }

  /**
   * Make a user a plain member (no flags) unless they already are one, inside the caller's transaction. Room grants
   * use it: a grant makes its holder a member so they can see the project and connect to the room.
   * Returns the after-commit notifier of the `project.user.added` event (a no-op when nothing changed).
   */
  async ensureMember(projectId: string, userId: string, q: Queryable): Promise<() => void> {
    const added = await projectsRepo.insertMembershipIfAbsent(q, {
      project_id: projectId,
      user_id: userId,
      is_admin: 0,
      is_developer: 0,
      can_create_rooms: 0,
      can_use_llm_proxy: 0,
      created_at: this.clock.now(),
    });
    if (!added) return () => {};
    return this.bus.publish(q, { type: "project.user.added", project_id: projectId, data: { user_id: userId } });
  }

  async updateUser(projectId: string, userId: string, flags: MembershipFlags) {
    const p = await this.get(projectId);
    if (!isUuid(userId) || !(await projectsRepo.membership(this.db, projectId, userId))) throw notFound("project member");
    if (p.owner_user_id === userId && flags.is_admin === false) throw forbidden("the project owner is always an admin");
    const patch: Record<string, number> = {};
    for (const k of ["is_admin", "is_developer", "can_create_rooms", "can_use_llm_proxy"] as const)
      if (flags[k] !== undefined && flags[k] !== null) patch[k] = int(flags[k]);
    if (Object.keys(patch).length) {
      await projectsRepo.updateMembership(this.db, projectId, userId, patch);
      await this.invalidator.publish(MEMBERSHIP_TOPIC, membershipKey(projectId, userId));
    }
    return { ok: true };
  }

  async removeUser(projectId: string, userId: string) {
    const p = await this.get(projectId);
    if (p.owner_user_id === userId) throw forbidden("the project owner cannot be removed");
    const after = await inTx(this.db, async (tx) => {
      if (!isUuid(userId) || !(await projectsRepo.deleteMembership(tx, projectId, userId))) throw notFound("project member");
      return this.bus.publish(tx, { type: "project.user.removed", project_id: projectId, data: { user_id: userId } });
    });
    await this.invalidator.publish(MEMBERSHIP_TOPIC, membershipKey(projectId, userId));
    after();
    return { ok: true };
  }

  async members(projectId: string, opts: { count?: number; offset?: number; filter?: string | null }) {
    const p = await this.get(projectId);
    const filter = opts.filter?.trim() || undefined;
    const { rows, total } = await projectsRepo.membersPage(this.db, projectId, {
      limit: pageSize(opts.count, 100),
      offset: pageOffset(opts.offset),
      filter,
    });
    return {
      users: rows.map((r) => {
        const isOwner = p.owner_user_id === r.id;
        return {
          id: r.id,
          user_id: r.id,
          email: r.email,
          first_name: r.first_name ?? undefined,
          last_name: r.last_name ?? undefined,
          role: isOwner || r.is_admin ? "admin" : r.is_developer ? "developer" : "member",
          is_owner: isOwner,
          is_admin: isOwner || !!r.is_admin,
          is_developer: !!r.is_developer,
          can_create_rooms: !!r.can_create_rooms,
          can_use_llm_proxy: !!r.can_use_llm_proxy,
          invited: !!r.invited,
          added_at: iso(r.created_at),
        };
      }),
      total,
    };
  }
}
