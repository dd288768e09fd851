import { notFound } from "../core/errors.js";
import type { DB, Queryable } from "../store/db.js";
import { roomsRepo, type RoomRow } from "./repo.js";

/** The Room object of wire-contract §7.2: `metadata` always present, annotations default {}. */
export function roomJson(r: RoomRow) {
  return {
    id: r.id,
    name: r.name,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    annotations: JSON.parse(r.annotations) as Record<string, string>,
    created_at: new Date(r.created_at).toISOString(),
  };
}

/** Rooms: the service other areas (mailboxes, scheduler, room server, storage) use to find a room. */
export class RoomsService {
  constructor(private readonly db: DB) {}

  async byName(projectId: string, name: string, q: Queryable = this.db): Promise<RoomRow> {
    const r = await roomsRepo.byName(q, projectId, name);
    if (!r) throw notFound("room");
    return r;
  }

  async byId(projectId: string, id: string, q: Queryable = this.db): Promise<RoomRow> {
    const r = await roomsRepo.byId(q, projectId, id);
    if (!r) throw notFound("room");
    return r;
  }
}
