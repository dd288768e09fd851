import type { Clock } from "../core/clock.js";
import { badRequest, conflict, notFound, quote } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { isUuid } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { InvalidatedCache, type Invalidator } from "../core/invalidation.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, type DB, type Queryable, type Tx } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import type { ProjectsService } from "../projects/service.js";
import type { UsersService } from "../users/service.js";
import { roomJson, type RoomRow, type RoomsService } from "../rooms/service.js";
import { validateScope, type Scope } from "../tokens/scope.js";
import { grantsRepo, type GrantOrder } from "./repo.js";

type RoomCols = Pick<RoomRow, "id" | "project_id" | "name" | "metadata" | "annotations" | "created_at" | "updated_at">;

/** ProjectRoomGrant (wire-contract §7.2): the room, the user and the ApiScope exactly as stored. */
export function grantJson(r: RoomCols & { user_id: string; permissions: string }) {
  return { room: roomJson(r), user_id: r.user_id, permissions: JSON.parse(r.permissions) as Scope };
}

function order(v: string | null | undefined): GrantOrder {
  const o = v ?? "room_name";
  if (o !== "room_name" && o !== "created_at") throw badRequest(`order_by must be room_name or created_at, not ${quote(v)}`);
  return o;
}

function requirePermissions(p: unknown): Scope {
  if (p === undefined || p === null) throw badRequest("permissions is required (an ApiScope object)");
  return validateScope(p);
}

/** connect_room's cached lookups; evicted (in every process) by grant, room and membership changes. */
const ACCESS_TOPIC = "room-access";
const accessKey = (projectId: string, roomName: string, userId: string) => `${projectId}/${roomName}/${userId}`;
type ConnectAccess = { room: RoomRow; scope: Scope | null; email: string | null };

/**
 * Room grants: one ApiScope per (room, user). A grant makes its holder a project member (so they see the project
 * and can connect); the scope becomes the `api` grant of the tokens connect_room mints for them.
 */
export class GrantsService {
  private readonly access: InvalidatedCache<ConnectAccess>;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly rooms: RoomsService,
    private readonly users: UsersService,
    private readonly projects: ProjectsService,
    invalidator: Invalidator,
  ) {
    this.access = new InvalidatedCache<ConnectAccess>(invalidator, ACCESS_TOPIC, 50_000);
    // Evict connect_room's cache once a change committed (evicting earlier would let a lookup racing with the
    // transaction cache the old row). A grant change evicts its (room, user); a room update or deletion, or a
    // member leaving, evicts the whole project (rare). Other processes hear it through the invalidator.
    bus.on((e) => {
      let key: string;
      if (e.type === "grant.changed") key = accessKey(e.project_id, String(e.data.room_name), String(e.data.user_id));
      else if (e.type === "room.updated" || e.type === "room.deleted" || e.type === "project.user.removed") key = `${e.project_id}/*`;
      else return;
      invalidator.publish(ACCESS_TOPIC, key).catch(() => {
        // the local eviction happened already; another process keeps its entry until its cache is cleared
      });
    });
    // Leaving a project (or being removed) takes the user's grants in it along, in the same transaction.
    bus.subscribeTx(async (q, e) => {
      if (e.type !== "project.user.removed") return;
      const userId = String(e.data.user_id);
      const gone = await grantsRepo.deleteForUser(q, e.project_id, userId);
      for (const g of gone)
        await bus.publish(q, {
          type: "grant.changed",
          project_id: e.project_id,
          data: { change: "deleted", room_id: g.room_id, room_name: g.room_name, user_id: userId },
        });
    });
  }

  /** Write a grant in the caller's transaction (create_room's `permissions`, create_room_grant). */
  async put(tx: Tx, room: RoomRow, userId: string, permissions: Scope, mode: "create" | "upsert"): Promise<() => void> {
    const now = this.clock.now();
    const json = JSON.stringify(permissions);
    const exists = await grantsRepo.byKey(tx, room.id, userId);
    if (exists && mode === "create") throw conflict(`user ${userId} already has a grant on room ${room.name}; update it instead`);
    if (exists) await grantsRepo.updatePermissions(tx, room.id, userId, json, now);
    else await grantsRepo.insert(tx, { project_id: room.project_id, room_id: room.id, user_id: userId, permissions: json, created_at: now, updated_at: now });
    const member = await this.projects.ensureMember(room.project_id, userId, tx);
    const changed = await this.bus.publish(tx, {
      type: "grant.changed",
      project_id: room.project_id,
      data: { change: exists ? "updated" : "created", room_id: room.id, room_name: room.name, user_id: userId },
    });
    return () => {
      member();
      changed();
    };
  }

  /** The user a grant is for: by id (must exist), or by email (an unknown email becomes an invited user). */
  private async grantee(tx: Tx, input: { user_id?: string | null; email?: string | null }): Promise<string> {
    if (input.user_id) {
      if (!isUuid(input.user_id)) throw badRequest(`user_id must be a user id (a UUID), got ${quote(input.user_id)}`);
      if (!(await this.users.get(input.user_id, tx))) throw notFound("user");
      return input.user_id;
    }
    if (input.email) {
      const u = await this.users.byEmail(input.email, tx);
      return u ? u.id : (await this.users.create({ email: input.email, invited: true }, tx)).id;
    }
    throw badRequest("user_id or email is required");
  }

  /** Validate create_room's `permissions` ({user_id: ApiScope}) before the room exists. */
  checkInitial(permissions: unknown): Record<string, Scope> {
    if (permissions === null || permissions === undefined) return {};
    if (!isObj(permissions)) throw badRequest("permissions must be an object of user id → ApiScope");
    const out: Record<string, Scope> = {};
    for (const [userId, scope] of Object.entries(permissions)) {
      if (!isUuid(userId)) throw badRequest(`permissions keys must be user ids (UUIDs), got ${quote(userId)}`);
      out[userId] = validateScope(scope, `permissions.${userId}`);
    }
    return out;
  }

  /** Grants create_room gives, in its transaction. */
  async putInitial(tx: Tx, room: RoomRow, grants: Record<string, Scope>): Promise<() => void> {
    const after: (() => void)[] = [];
    for (const [userId, scope] of Object.entries(grants)) {
      if (!(await this.users.get(userId, tx))) throw notFound(`user ${userId}`);
      after.push(await this.put(tx, room, userId, scope, "upsert"));
    }
    return () => after.forEach((f) => f());
  }

  async create(projectId: string, input: { room_id: string; user_id?: string | null; email?: string | null; permissions?: unknown }) {
    const permissions = requirePermissions(input.permissions);
    if (!input.room_id) throw badRequest("room_id is required");
    try {
      const { after, room, userId } = await inTx(this.db, async (tx) => {
        const room = await this.rooms.byRef(projectId, input.room_id, tx);
        const userId = await this.grantee(tx, input);
        return { room, userId, after: await this.put(tx, room, userId, permissions, "create") };
      });
      after();
      return grantJson({ ...room, user_id: userId, permissions: JSON.stringify(permissions) });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict("that user already has a grant on this room");
      throw e;
    }
  }

  async update(projectId: string, input: { room_id: string; user_id: string; permissions?: unknown }) {
    const permissions = requirePermissions(input.permissions);
    const { after, room } = await inTx(this.db, async (tx) => {
      const room = await this.rooms.byRef(projectId, input.room_id, tx);
      if (!isUuid(input.user_id) || !(await grantsRepo.updatePermissions(tx, room.id, input.user_id, JSON.stringify(permissions), this.clock.now())))
        throw notFound("room grant");
      const after = await this.bus.publish(tx, {
        type: "grant.changed",
        project_id: projectId,
        data: { change: "updated", room_id: room.id, room_name: room.name, user_id: input.user_id },
      });
      return { after, room };
    });
    after();
    return grantJson({ ...room, user_id: input.user_id, permissions: JSON.stringify(permissions) });
  }

  async remove(projectId: string, roomRef: string, userId: string) {
    const after = await inTx(this.db, async (tx) => {
      const room = await this.rooms.byRef(projectId, roomRef, tx);
      if (!(await grantsRepo.delete(tx, room.id, userId))) throw notFound("room grant");
      return this.bus.publish(tx, {
        type: "grant.changed",
        project_id: projectId,
        data: { change: "deleted", room_id: room.id, room_name: room.name, user_id: userId },
      });
    });
    after();
  }

  async get(projectId: string, roomRef: string, userId: string) {
    const room = await this.rooms.byRef(projectId, roomRef);
    const g = await grantsRepo.byKey(this.db, room.id, userId);
    if (!g) throw notFound("room grant");
    return grantJson({ ...room, user_id: userId, permissions: g.permissions });
  }

  /** The stored scope of a user's grant on a room, or null. */
  async scopeOf(roomId: string, userId: string, q: Queryable = this.db): Promise<Scope | null> {
    const g = await grantsRepo.byKey(q, roomId, userId);
    return g ? (JSON.parse(g.permissions) as Scope) : null;
  }

  /**
   * connect_room's lookup in one query, cached: the room by name, the user's grant scope on it (null without one) and
   * their email. Without a user (API-key callers) only the room. Unknown rooms are 404 and are not cached.
   */
  async connectLookup(projectId: string, roomName: string, userId: string | null): Promise<ConnectAccess> {
    const hit = await this.access.get(accessKey(projectId, roomName, userId ?? ""), async () => {
      // "" matches no user: the joins come back empty and only the room is read
      const r = await grantsRepo.connectLookup(this.db, projectId, roomName, userId ?? "");
      if (!r) return undefined;
      const { permissions, email, ...room } = r;
      return { room: room as RoomRow, scope: permissions == null ? null : (JSON.parse(permissions) as Scope), email: email ?? null };
    });
    if (!hit) throw notFound("room");
    return hit;
  }

  async list(
    projectId: string,
    opts: { limit?: number; offset?: number; order_by?: string | null; userId?: string; roomId?: string; filter?: string | null },
    defLimit = 50,
  ) {
    const q = {
      limit: pageSize(opts.limit, defLimit),
      offset: pageOffset(opts.offset),
      order: order(opts.order_by),
      userId: opts.userId,
      roomId: opts.roomId,
      filter: opts.filter ? opts.filter.toLowerCase() : undefined,
    };
    const [rows, total] = await Promise.all([grantsRepo.page(this.db, projectId, q), grantsRepo.count(this.db, projectId, q)]);
    return { room_grants: rows.map(grantJson), total };
  }

  async listByRoom(projectId: string, roomRef: string, opts: { limit?: number; offset?: number }) {
    const room = await this.rooms.byRef(projectId, roomRef);
    return this.list(projectId, { ...opts, roomId: room.id, order_by: "created_at" });
  }

  async roomsWithGrants(projectId: string, opts: { limit?: number; offset?: number }) {
    const limit = pageSize(opts.limit, 50);
    const offset = pageOffset(opts.offset);
    const [rows, total] = await Promise.all([
      grantsRepo.roomsWithGrants(this.db, projectId, limit, offset),
      grantsRepo.countRoomsWithGrants(this.db, projectId),
    ]);
    return { rooms: rows.map((r) => ({ room: roomJson(r), count: Number(r.n) })), total };
  }

  async usersWithGrants(projectId: string, opts: { limit?: number; offset?: number; filter?: string | null }) {
    const filter = opts.filter?.trim() ? opts.filter.trim() : undefined;
    const q = { limit: pageSize(opts.limit, 100), offset: pageOffset(opts.offset), filter };
    const [rows, total] = await Promise.all([grantsRepo.usersWithGrants(this.db, projectId, q), grantsRepo.countUsersWithGrants(this.db, projectId, filter)]);
    return {
      users: rows.map((r) => ({
        user_id: r.id,
        count: Number(r.n),
        email: r.email,
        ...(r.first_name != null ? { first_name: r.first_name } : {}),
        ...(r.last_name != null ? { last_name: r.last_name } : {}),
      })),
      total,
    };
  }
}
