import type { Clock } from "../core/clock.js";
import { iso, isTimeMs } from "../core/clock.js";
import { badRequest, gone, notFound } from "../core/errors.js";
import { isObj } from "../core/json.js";
import type { EventBus } from "../core/events.js";
import { isUuid, newId } from "../core/ids.js";
import { pageOffset, pageSize } from "../core/paging.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import { roomUrl, type RoomsService } from "../rooms/service.js";
import { userDefaultScope, validateScope, type Scope } from "../tokens/scope.js";
import type { ParticipantTokens } from "../tokens/service.js";
import { sharesRepo, type ShareRow } from "./repo.js";

/** What a share's settings decide (the keys this server reads; every other key is stored and returned as given). */
export interface ShareTerms {
  room?: string;
  role: string;
  api: Scope;
  name: string;
  expiresAt: number | null;
  maxUses: number | null;
  tokenTtl?: number;
}

const ROLES = ["user", "agent", "tool"];

/** Read the keys of a share's settings this server understands; 400 naming the key when one is malformed. */
export function shareTerms(s: Record<string, unknown>): ShareTerms {
  const t: ShareTerms = { role: "user", api: userDefaultScope(), name: "guest", expiresAt: null, maxUses: null };
  const room = s.room ?? s.room_name;
  if (room != null) {
    if (typeof room !== "string" || !room) throw badRequest("settings.room must be a room name");
    t.room = room;
  }
  if (s.role != null) {
    if (typeof s.role !== "string" || !ROLES.includes(s.role)) throw badRequest(`settings.role must be one of ${ROLES.join(", ")}`);
    t.role = s.role;
  }
  if (s.api != null) t.api = validateScope(s.api, "settings.api");
  if (s.name != null) {
    if (typeof s.name !== "string" || !s.name.trim() || s.name.length > 200)
      throw badRequest("settings.name must be a non-empty string of at most 200 characters");
    t.name = s.name;
  }
  if (s.expires_at != null) {
    const v = s.expires_at;
    const ms = typeof v === "number" && Number.isFinite(v) ? v * 1000 : typeof v === "string" ? Date.parse(v) : NaN;
    if (!isTimeMs(ms)) throw badRequest("settings.expires_at must be an ISO 8601 date-time or epoch seconds (a representable date)");
    t.expiresAt = Math.floor(ms);
  }
  if (s.max_uses != null) {
    if (!Number.isInteger(s.max_uses) || (s.max_uses as number) < 1) throw badRequest("settings.max_uses must be a positive integer");
    t.maxUses = s.max_uses as number;
  }
  if (s.token_ttl != null) {
    if (!Number.isInteger(s.token_ttl) || (s.token_ttl as number) < 1) throw badRequest("settings.token_ttl must be a positive number of seconds");
    t.tokenTtl = s.token_ttl as number;
  }
  return t;
}

export function shareJson(r: ShareRow) {
  return {
    id: r.id,
    project_id: r.project_id,
    settings: JSON.parse(r.settings) as Record<string, unknown>,
    uses: Number(r.uses),
    created_at: iso(r.created_at),
  };
}

/** Shares: links that let anyone holding the id join a room with the share's terms, no account needed. */
export class SharesService {
  /** Refuses a connect (throws) when the project may not join rooms now (billing enforcement); set by the wiring. */
  admit: (projectId: string) => Promise<void> = async () => {};

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly rooms: RoomsService,
    private readonly tokens: ParticipantTokens,
    private readonly publicUrl: () => string,
  ) {}

  private async resolve(projectId: string, settings: unknown, q: Queryable) {
    if (settings == null) settings = {};
    if (!isObj(settings)) throw badRequest("settings must be a JSON object");
    const terms = shareTerms(settings);
    const room = terms.room === undefined ? null : await this.rooms.byName(projectId, terms.room, q);
    return { settings, terms, room };
  }

  async create(projectId: string, settingsIn: unknown) {
    const { row, after } = await inTx(this.db, async (tx) => {
      const { settings, terms, room } = await this.resolve(projectId, settingsIn, tx);
      const now = this.clock.now();
      const row: ShareRow = {
        id: newId(),
        project_id: projectId,
        room_id: room?.id ?? null,
        settings: JSON.stringify(settings),
        max_uses: terms.maxUses,
        uses: 0,
        expires_at: terms.expiresAt,
        created_at: now,
        updated_at: now,
      };
      await sharesRepo.insert(tx, row);
      const after = await this.bus.publish(tx, {
        type: "share.created",
        project_id: projectId,
        data: { id: row.id, room_id: row.room_id, room_name: room?.name ?? null },
      });
      return { row, after };
    });
    after();
    return shareJson(row);
  }

  /** Replaces the settings; the use count so far is kept. */
  async update(projectId: string, id: string, settingsIn: unknown) {
    const row = await inTx(this.db, async (tx) => {
      const cur = isUuid(id) ? await sharesRepo.byId(tx, id) : undefined;
      if (!cur || cur.project_id !== projectId) throw notFound("share");
      const { settings, terms, room } = await this.resolve(projectId, settingsIn, tx);
      const patch = {
        room_id: room?.id ?? null,
        settings: JSON.stringify(settings),
        max_uses: terms.maxUses,
        expires_at: terms.expiresAt,
        updated_at: this.clock.now(),
      };
      await sharesRepo.update(tx, projectId, id, patch);
      return { ...cur, ...patch };
    });
    return shareJson(row);
  }

  async delete(projectId: string, id: string) {
    const after = await inTx(this.db, async (tx) => {
      if (!isUuid(id) || !(await sharesRepo.delete(tx, projectId, id))) throw notFound("share");
      return this.bus.publish(tx, { type: "share.deleted", project_id: projectId, data: { id } });
    });
    after();
  }

  async list(projectId: string, opts: { limit?: number; offset?: number }) {
    const limit = pageSize(opts.limit, 1000);
    const offset = pageOffset(opts.offset);
    const [rows, total] = await Promise.all([sharesRepo.page(this.db, projectId, limit, offset), sharesRepo.count(this.db, projectId)]);
    return { shares: rows.map(shareJson), total };
  }

  /**
   * connect_share: no credentials. 404 for an unknown or deleted share (or one that names no room), 410 once it
   * has expired or its uses are spent. The token is signed with the project's signing key and never outlives the share.
   */
  async connect(id: string) {
    const share = isUuid(id) ? await sharesRepo.byId(this.db, id) : undefined;
    if (!share) throw notFound("share");
    const now = this.clock.now();
    if (share.expires_at !== null && share.expires_at <= now) throw gone("this share has expired");
    if (!share.room_id) throw notFound("room (the share's settings name no room)");
    const room = await this.rooms.byId(share.project_id, share.room_id);
    const settings = JSON.parse(share.settings) as Record<string, unknown>;
    const terms = shareTerms(settings);
    await this.admit(share.project_id);
    await this.tokens.projectKey(share.project_id);
    if (!(await sharesRepo.takeUse(this.db, share.id))) {
      if (!(await sharesRepo.byId(this.db, share.id))) throw notFound("share");
      throw gone("this share has been used up");
    }
    const jwt = await this.tokens.mint({
      projectId: share.project_id,
      signer: { kind: "project" },
      name: terms.name,
      room: room.name,
      role: terms.role,
      api: terms.api,
      ttlSeconds: terms.tokenTtl,
      notAfter: share.expires_at,
    });
    return { jwt, room_name: room.name, project_id: share.project_id, settings, room_url: roomUrl(this.publicUrl(), room.name) };
  }
}
