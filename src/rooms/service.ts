import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import { badRequest, conflict, notFound, quote } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { isUuid, newId } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, type DB, type Queryable, type Tx } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import { roomsRepo, type RoomListQuery, type RoomOrder, type RoomRow } from "./repo.js";

export type { RoomRow } from "./repo.js";

/** The Room object of wire-contract §7.2: `metadata` always present, annotations default {}. */
export function roomJson(r: RoomRow) {
  return {
    id: r.id,
    name: r.name,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    annotations: JSON.parse(r.annotations) as Record<string, string>,
    created_at: iso(r.created_at),
  };
}
export type RoomJson = ReturnType<typeof roomJson>;

/** The WebSocket URL of a room (wire-contract §10.3): the public URL with http(s) → ws(s), then /rooms/{name}. */
export function roomUrl(publicUrl: string, name: string): string {
  return `${publicUrl
    .replace(/^https:/i, "wss:")
    .replace(/^http:/i, "ws:")
    .replace(/\/+$/, "")}/rooms/${encodeURIComponent(name)}`;
}

/** The SDK's `is_valid_room_name` (wire-contract §2). */
export const ROOM_NAME_RE = /^(?=.{1,63}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;

export function checkRoomName(name: unknown, field = "name"): string {
  if (typeof name !== "string" || !ROOM_NAME_RE.test(name))
    throw badRequest(`${field} must be 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit; got ${quote(name)}`);
  return name;
}

function checkAnnotations(a: unknown): Record<string, string> {
  if (!isObj(a)) throw badRequest("annotations must be an object of strings");
  for (const [k, v] of Object.entries(a)) if (typeof v !== "string") throw badRequest(`annotations.${k} must be a string`);
  return a as Record<string, string>;
}

function checkMetadata(m: unknown): Record<string, unknown> {
  if (!isObj(m)) throw badRequest("metadata must be a JSON object");
  return m;
}

/**
 * Runs inside the transaction that deletes a room, before the room row goes. Areas that own rows belonging to a
 * room (room services, mailboxes, scheduled tasks, storage) register one with `rooms.onDelete` and remove or detach
 * their rows with `tx` (never with the top-level db: on SQLite that would wait for this very transaction); a hook
 * that throws rolls the whole deletion back.
 */
export type RoomDeleteHook = (tx: Tx, room: RoomRow) => Promise<void>;

export interface RoomInput {
  name: string;
  if_not_exists?: boolean | null;
  metadata?: Record<string, unknown> | null;
  annotations?: Record<string, string> | null;
}

/** Rooms: the service other areas (mailboxes, scheduler, room server, storage) use to find a room. */
export class RoomsService {
  private deleteHooks: RoomDeleteHook[] = [];

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly bus: EventBus,
  ) {}

  /** Register a hook that runs in the room-deletion transaction (see RoomDeleteHook). */
  onDelete(hook: RoomDeleteHook) {
    this.deleteHooks.push(hook);
  }

  async byName(projectId: string, name: string, q: Queryable = this.db): Promise<RoomRow> {
    const r = await roomsRepo.byName(q, projectId, name);
    if (!r) throw notFound("room");
    return r;
  }

  async byId(projectId: string, id: string, q: Queryable = this.db): Promise<RoomRow> {
    const r = isUuid(id) ? await roomsRepo.byId(q, projectId, id) : undefined;
    if (!r) throw notFound("room");
    return r;
  }

  /** The project a room belongs to, by the room's id alone (a signed room-storage URL names only the room); null when there is none. */
  async projectOfRoomId(roomId: string, q: Queryable = this.db): Promise<string | null> {
    return (await roomsRepo.projectOf(q, roomId)) ?? null;
  }

  /** A room by id or, failing that, by name (grant routes accept either). */
  async byRef(projectId: string, ref: string, q: Queryable = this.db): Promise<RoomRow> {
    const r = (isUuid(ref) ? await roomsRepo.byId(q, projectId, ref) : undefined) ?? (await roomsRepo.byName(q, projectId, ref));
    if (!r) throw notFound("room");
    return r;
  }

  /**
   * create_room. `extend` runs in the creating transaction (initial grants) and may return an after-commit
   * notifier; with `if_not_exists` an existing room is returned unchanged (created=false), otherwise a duplicate
   * name is 409.
   */
  async create(
    projectId: string,
    input: RoomInput,
    extend?: (tx: Tx, room: RoomRow) => Promise<(() => void) | void>,
  ): Promise<{ room: RoomRow; created: boolean }> {
    const name = checkRoomName(input.name);
    const metadata = input.metadata == null ? {} : checkMetadata(input.metadata);
    const annotations = input.annotations == null ? {} : checkAnnotations(input.annotations);
    const now = this.clock.now();
    const row: RoomRow = {
      id: newId(),
      project_id: projectId,
      name,
      metadata: JSON.stringify(metadata),
      annotations: JSON.stringify(annotations),
      created_at: now,
      updated_at: now,
    };
    try {
      const result = await inTx(this.db, async (tx) => {
        const dup = await roomsRepo.byName(tx, projectId, name);
        if (dup) {
          if (input.if_not_exists) return { room: dup, created: false, after: [] as (() => void)[] };
          throw conflict(`a room named ${name} already exists`);
        }
        await roomsRepo.insert(tx, row);
        await roomsRepo.bumpCount(tx, projectId, 1);
        const after: (() => void)[] = [];
        const more = extend ? await extend(tx, row) : undefined;
        if (more) after.push(more);
        after.push(await this.bus.publish(tx, { type: "room.created", project_id: projectId, data: { id: row.id, room_name: name } }));
        return { room: row, created: true, after };
      });
      for (const fn of result.after) fn();
      return { room: result.room, created: result.created };
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      // Lost a race with a concurrent create of the same name.
      if (input.if_not_exists) {
        const r = await roomsRepo.byName(this.db, projectId, name);
        if (r) return { room: r, created: false };
      }
      throw conflict(`a room named ${name} already exists`);
    }
  }

  /** list_rooms: a page in the requested order and the total (a maintained counter when unfiltered). */
  async list(
    projectId: string,
    opts: { limit?: number; offset?: number; order_by?: string | null; filter?: string | null; grantedTo?: string; onlyName?: string },
  ) {
    const order = (opts.order_by ?? "room_name") as RoomOrder;
    if (order !== "room_name" && order !== "created_at") throw badRequest(`order_by must be room_name or created_at, not ${quote(opts.order_by)}`);
    const q: RoomListQuery = {
      limit: pageSize(opts.limit, 100),
      offset: pageOffset(opts.offset),
      order,
      filter: opts.filter ? opts.filter.toLowerCase() : undefined,
      grantedTo: opts.grantedTo,
      onlyName: opts.onlyName,
    };
    const narrowed = q.filter !== undefined || q.grantedTo !== undefined || q.onlyName !== undefined;
    const [rows, total] = await Promise.all([
      q.limit === 0 ? Promise.resolve([]) : roomsRepo.page(this.db, projectId, q),
      narrowed ? roomsRepo.countMatching(this.db, projectId, q) : roomsRepo.count(this.db, projectId),
    ]);
    return { rooms: rows.map(roomJson), total };
  }

  /** update_room: rename (grants, shares and everything else follow, they hold the id), metadata, annotations. */
  async update(projectId: string, id: string, input: { name: string; metadata?: Record<string, unknown> | null; annotations?: Record<string, string> | null }) {
    const name = checkRoomName(input.name);
    const patch: Partial<RoomRow> = { name, updated_at: this.clock.now() };
    if (input.metadata != null) patch.metadata = JSON.stringify(checkMetadata(input.metadata));
    if (input.annotations != null) patch.annotations = JSON.stringify(checkAnnotations(input.annotations));
    try {
      const { room, after } = await inTx(this.db, async (tx) => {
        const cur = await this.byId(projectId, id, tx);
        if (name !== cur.name && (await roomsRepo.byName(tx, projectId, name))) throw conflict(`a room named ${name} already exists`);
        await roomsRepo.update(tx, cur.id, patch);
        const room: RoomRow = { ...cur, ...patch };
        const data: Record<string, unknown> = { id: cur.id, room_name: name };
        if (name !== cur.name) data.previous_room_name = cur.name;
        return { room, after: await this.bus.publish(tx, { type: "room.updated", project_id: projectId, data }) };
      });
      after();
      return room;
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`a room named ${name} already exists`);
      throw e;
    }
  }

  /**
   * delete_room: one transaction removes the room and everything that belongs to it: the delete hooks of other
   * areas run first, then the row goes and the database cascades to grants and shares.
   */
  async delete(projectId: string, id: string) {
    const after = await inTx(this.db, async (tx) => {
      const room = await this.byId(projectId, id, tx);
      for (const hook of this.deleteHooks) await hook(tx, room);
      // A concurrent delete of the same room may have won; then nothing was deleted here and the counter stays.
      if (!(await roomsRepo.delete(tx, room.id))) throw notFound("room");
      await roomsRepo.bumpCount(tx, projectId, -1);
      return this.bus.publish(tx, { type: "room.deleted", project_id: projectId, data: { id: room.id, room_name: room.name } });
    });
    after();
  }
}
