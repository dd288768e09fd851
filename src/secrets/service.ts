import type { Clock } from "../core/clock.js";
import type { Sealer } from "../core/crypto.js";
import { ApiError, badRequest, conflict, notFound, quote } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { newId } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { inTx, type DB, type Dialect, type Queryable } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import type { RoomsService } from "../rooms/service.js";
import { secretsRepo, type SecretFilter, type SecretKey, type SecretRow } from "./repo.js";

export type { SecretFilter } from "./repo.js";

/** The AAD of a secret's sealed value: its row id, so a value copied into another row does not open there. */
export const secretAad = (rowId: string) => `secret:${rowId}`;

export const MAX_SECRET_BYTES = 256 * 1024;
export const MAX_SECRETS_PER_SCOPE = 1000;
const MAX_NAME = 256;
const MAX_TYPE = 64;
const MAX_IDENTITY = 256;
const MAX_SECRET_ID = 256;
/** The type a room secret gets when the caller names none. */
export const DEFAULT_ROOM_SECRET_TYPE = "opaque";

/** ManagedSecretInfo (wire-contract §5.1): no value. `delegated_to` only when set. */
export interface SecretInfoJson {
  id: string;
  name: string;
  type: string;
  delegated_to?: string;
  for_identity?: string;
}
export type SecretJson = SecretInfoJson & { data_base64: string };

/** create/update bodies: `data_base64` (0.39.9) or the legacy `data` object (≤0.34, stored as its JSON text). */
export interface SecretBody {
  name?: string | null;
  type?: string | null;
  data_base64?: string | null;
  data?: Record<string, unknown> | null;
}
export interface RoomSecretBody extends SecretBody {
  secret_id?: string | null;
  delegated_to?: string | null;
  for_identity?: string | null;
}
/** Which room secret a get/delete means (query `for_identity`, `delegated_to`). */
export interface RoomSecretSelector {
  for_identity?: string;
  delegated_to?: string;
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const CONTROL = /[\u0000-\u001f\u007f]/; // eslint-disable-line no-control-regex

function text(v: unknown, field: string, max: number): string {
  if (typeof v !== "string" || v.trim() === "") throw badRequest(`${field} must be a non-empty string`);
  if (v.length > max) throw badRequest(`${field} must be at most ${max} characters`);
  if (CONTROL.test(v)) throw badRequest(`${field} must not contain control characters`);
  return v;
}

const optText = (v: unknown, field: string, max: number) => (v === null || v === undefined || v === "" ? "" : text(v, field, max));

/** The value of a create/update body, as bytes. Never quoted in an error: it is the secret. */
function valueOf(body: SecretBody): Buffer {
  let value: Buffer;
  if (body.data_base64 !== null && body.data_base64 !== undefined) {
    if (typeof body.data_base64 !== "string") throw badRequest("data_base64 must be a base64 string");
    const s = body.data_base64.replace(/\s+/g, "");
    if (s.length > Math.ceil((MAX_SECRET_BYTES * 4) / 3) + 4) throw badRequest(`the secret value must be at most ${MAX_SECRET_BYTES} bytes`);
    if (!B64.test(s)) throw badRequest("data_base64 is not valid base64 (standard alphabet, optional = padding)");
    value = Buffer.from(s, "base64");
  } else if (body.data !== null && body.data !== undefined) {
    if (!isObj(body.data)) throw badRequest("data must be a JSON object (or send data_base64)");
    value = Buffer.from(JSON.stringify(body.data), "utf8");
  } else throw badRequest("data_base64 is required (the secret value, base64-encoded)");
  if (value.length > MAX_SECRET_BYTES) throw badRequest(`the secret value must be at most ${MAX_SECRET_BYTES} bytes`);
  return value;
}

function infoJson(r: Pick<SecretRow, "secret_id" | "name" | "type" | "delegated_to" | "for_identity">): SecretInfoJson {
  const out: SecretInfoJson = { id: r.secret_id, name: r.name, type: r.type };
  if (r.delegated_to) out.delegated_to = r.delegated_to;
  if (r.for_identity) out.for_identity = r.for_identity;
  return out;
}

/** A room the caller has resolved already (the room server's active room): no lookup by name. */
export interface RoomRef {
  id: string;
  name: string;
}

/** A room secret as the room server reads it: its info and, when asked for, its value. */
export interface FoundRoomSecret {
  info: SecretInfoJson;
  value: Buffer;
}

/** What the room server's set_secret writes: the whole key, name, type and value. */
export interface RoomSecretPut {
  secretId: string;
  name?: string | null;
  type?: string | null;
  forIdentity: string;
  delegatedTo: string;
  value: Buffer;
}

/** A reference from a service to a secret, with the spec path that names it (for the 400). */
export interface SecretRef {
  id: string;
  path: string;
}

/**
 * Secrets (wire-contract §5): project secrets and room secrets, sealed with AES-256-GCM under the master key (AAD =
 * the row id). Values leave only through `get` (and `openForRuntime`); no log line or error message carries one.
 * Also the register of which services name which secrets (`bindRefs`), so a secret in use is not deleted.
 */
export class SecretsService {
  constructor(
    private readonly db: DB,
    private readonly dialect: Dialect,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    private readonly bus: EventBus,
    private readonly rooms: Pick<RoomsService, "byName">,
  ) {}

  /** A project's secrets (null), a room's by name (REST), or a room the caller resolved already (the room server). */
  private async scopeOf(projectId: string, roomName: string | RoomRef | null, q: Queryable = this.db) {
    if (roomName === null) return { scope: "", roomId: null, roomName: null };
    if (typeof roomName !== "string") return { scope: roomName.id, roomId: roomName.id, roomName: roomName.name };
    const room = await this.rooms.byName(projectId, roomName, q);
    return { scope: room.id, roomId: room.id, roomName: room.name };
  }

  // --- project secrets ---

  async createProject(projectId: string, body: SecretBody): Promise<{ id: string }> {
    const name = text(body.name, "name", MAX_NAME);
    const type = text(body.type, "type", MAX_TYPE);
    const value = valueOf(body);
    return this.insert(projectId, null, { secretId: newId(), name, type, forIdentity: "", delegatedTo: "", value });
  }

  async updateProject(projectId: string, secretId: string, body: SecretBody): Promise<void> {
    const name = text(body.name, "name", MAX_NAME);
    const type = text(body.type, "type", MAX_TYPE);
    await this.change(projectId, null, { secretId, forIdentity: "", delegatedTo: "" }, { name, type, value: valueOf(body) });
  }

  getProject = (projectId: string, secretId: string) => this.read(projectId, null, secretId, {});
  listProject = (projectId: string) => this.list(projectId, null);
  deleteProject = (projectId: string, secretId: string) => this.remove(projectId, null, secretId, {});

  // --- room secrets ---

  async createRoom(projectId: string, roomName: string, body: RoomSecretBody): Promise<{ id: string }> {
    const secretId = body.secret_id === null || body.secret_id === undefined ? newId() : text(body.secret_id, "secret_id", MAX_SECRET_ID);
    if (secretId.includes("/")) throw badRequest("secret_id must not contain /");
    const name = body.name === null || body.name === undefined ? secretId : text(body.name, "name", MAX_NAME);
    const type = body.type === null || body.type === undefined ? DEFAULT_ROOM_SECRET_TYPE : text(body.type, "type", MAX_TYPE);
    const forIdentity = optText(body.for_identity, "for_identity", MAX_IDENTITY);
    const delegatedTo = optText(body.delegated_to, "delegated_to", MAX_IDENTITY);
    return this.insert(projectId, roomName, { secretId, name, type, forIdentity, delegatedTo, value: valueOf(body) });
  }

  /** update_room_secret: the secret is the one (id, for_identity, delegated_to) names; name and type keep their values when absent. */
  async updateRoom(projectId: string, roomName: string, secretId: string, body: RoomSecretBody): Promise<void> {
    const forIdentity = optText(body.for_identity, "for_identity", MAX_IDENTITY);
    const delegatedTo = optText(body.delegated_to, "delegated_to", MAX_IDENTITY);
    const name = body.name === null || body.name === undefined ? undefined : text(body.name, "name", MAX_NAME);
    const type = body.type === null || body.type === undefined ? undefined : text(body.type, "type", MAX_TYPE);
    await this.change(projectId, roomName, { secretId, forIdentity, delegatedTo }, { name, type, value: valueOf(body) });
  }

  getRoom = (projectId: string, roomName: string, secretId: string, sel: RoomSecretSelector) => this.read(projectId, roomName, secretId, sel);
  listRoom = (projectId: string, roomName: string, forIdentity?: string) => this.list(projectId, roomName, forIdentity);
  deleteRoom = (projectId: string, roomName: string, secretId: string, sel: RoomSecretSelector) => this.remove(projectId, roomName, secretId, sel);

  // --- room secrets for the room server (by room id and participant identity; who may see what is its decision) ---

  /** The room secrets an identity sees: those it owns (`for_identity`) and those delegated to it. No values. */
  async visibleInRoom(projectId: string, room: RoomRef, identity: string): Promise<SecretInfoJson[]> {
    return (await secretsRepo.listVisible(this.db, projectId, room.id, identity)).map(infoJson);
  }

  /** The most recently updated room secret matching `f`, with its value when `open` (default true); null when none. */
  async findInRoom(projectId: string, room: RoomRef, f: SecretFilter, open = true): Promise<FoundRoomSecret | null> {
    const row = await secretsRepo.findOne(this.db, projectId, room.id, f);
    if (!row) return null;
    return { info: infoJson(row), value: open ? this.open(row) : Buffer.alloc(0) };
  }

  /**
   * Create or replace the room secret (secretId, forIdentity, delegatedTo): name and type keep their values when
   * absent (a new one gets the id and `application/octet-stream`). Same limits and events as the REST calls.
   */
  async putInRoom(projectId: string, room: RoomRef, s: RoomSecretPut): Promise<void> {
    const secretId = text(s.secretId, "secret_id", MAX_SECRET_ID);
    if (secretId.includes("/")) throw badRequest("secret_id must not contain /");
    const name = s.name === null || s.name === undefined ? undefined : text(s.name, "name", MAX_NAME);
    const type = s.type === null || s.type === undefined ? undefined : text(s.type, "type", MAX_TYPE);
    const forIdentity = optText(s.forIdentity, "for_identity", MAX_IDENTITY);
    const delegatedTo = optText(s.delegatedTo, "delegated_to", MAX_IDENTITY);
    if (s.value.length > MAX_SECRET_BYTES) throw badRequest(`the secret value must be at most ${MAX_SECRET_BYTES} bytes`);
    const key = { secretId, forIdentity, delegatedTo };
    // Update if it exists, else insert; a concurrent insert or delete between the two makes the other one right.
    for (let attempt = 0; ; attempt++) {
      try {
        if (await secretsRepo.get(this.db, { projectId, scope: room.id, ...key }))
          return await this.change(projectId, room, key, { name, type, value: s.value });
        await this.insert(projectId, room, { ...key, name: name ?? secretId, type: type ?? "application/octet-stream", value: s.value });
        return;
      } catch (e) {
        if (attempt === 0 && e instanceof ApiError && (e.code === "conflict" || e.status === 404)) continue;
        throw e;
      }
    }
  }

  /** Delete the most recently updated room secret matching `f` (409 while a service uses it); false when none matched. */
  async deleteInRoom(projectId: string, room: RoomRef, f: SecretFilter): Promise<boolean> {
    const row = await secretsRepo.findOne(this.db, projectId, room.id, f);
    if (!row) return false;
    try {
      await this.remove(projectId, room, row.secret_id, { for_identity: row.for_identity, delegated_to: row.delegated_to });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      throw e;
    }
  }

  // --- shared ---

  private async insert(
    projectId: string,
    roomName: string | RoomRef | null,
    s: { secretId: string; name: string; type: string; forIdentity: string; delegatedTo: string; value: Buffer },
  ): Promise<{ id: string }> {
    const id = newId();
    const now = this.clock.now();
    try {
      const after = await inTx(this.db, async (tx) => {
        const { scope, roomId, roomName: rn } = await this.scopeOf(projectId, roomName, tx);
        if ((await secretsRepo.count(tx, projectId, scope)) >= MAX_SECRETS_PER_SCOPE)
          throw badRequest(`a ${roomId ? "room" : "project"} may hold at most ${MAX_SECRETS_PER_SCOPE} secrets; delete some first`, "limit_exceeded");
        await secretsRepo.insert(tx, {
          id,
          secret_id: s.secretId,
          project_id: projectId,
          room_id: roomId,
          scope,
          for_identity: s.forIdentity,
          delegated_to: s.delegatedTo,
          name: s.name,
          type: s.type,
          value_sealed: this.sealer.seal(s.value, secretAad(id)),
          created_at: now,
          updated_at: now,
        });
        return this.bus.publish(tx, { type: "secret.created", project_id: projectId, data: this.eventData(s.secretId, s.name, s.type, rn) });
      });
      after();
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`a secret with id ${quote(s.secretId)} already exists here`);
      throw e;
    }
    return { id: s.secretId };
  }

  private async change(
    projectId: string,
    roomName: string | RoomRef | null,
    k: Omit<SecretKey, "projectId" | "scope">,
    patch: { name?: string; type?: string; value: Buffer },
  ): Promise<void> {
    const after = await inTx(this.db, async (tx) => {
      const { scope, roomName: rn } = await this.scopeOf(projectId, roomName, tx);
      const row = await secretsRepo.get(tx, { projectId, scope, ...k });
      if (!row) throw notFound("secret");
      const name = patch.name ?? row.name;
      const type = patch.type ?? row.type;
      await secretsRepo.update(tx, row.id, { name, type, value_sealed: this.sealer.seal(patch.value, secretAad(row.id)), updated_at: this.clock.now() });
      return this.bus.publish(tx, { type: "secret.updated", project_id: projectId, data: this.eventData(row.secret_id, name, type, rn) });
    });
    after();
  }

  private async read(projectId: string, roomName: string | null, secretId: string, sel: RoomSecretSelector): Promise<SecretJson> {
    const { scope } = await this.scopeOf(projectId, roomName);
    const row = await secretsRepo.get(this.db, { projectId, scope, secretId, forIdentity: sel.for_identity ?? "", delegatedTo: sel.delegated_to ?? "" });
    if (!row) throw notFound("secret");
    return { ...infoJson(row), data_base64: this.open(row).toString("base64") };
  }

  /** The value of a row. A value that does not open (another master key, or a row altered by hand) is a clear 500. */
  private open(row: SecretRow): Buffer {
    try {
      return this.sealer.openBuffer(row.value_sealed, secretAad(row.id));
    } catch {
      throw new ApiError(
        500,
        "secret_unreadable",
        `the stored value of secret ${quote(row.secret_id)} does not open with the master key (a different MESHAGENT_MASTER_KEY, or the row was altered)`,
      );
    }
  }

  private async list(projectId: string, roomName: string | null, forIdentity?: string): Promise<{ secrets: SecretInfoJson[] }> {
    const { scope } = await this.scopeOf(projectId, roomName);
    return { secrets: (await secretsRepo.list(this.db, projectId, scope, forIdentity)).map(infoJson) };
  }

  private async remove(projectId: string, roomName: string | RoomRef | null, secretId: string, sel: RoomSecretSelector): Promise<void> {
    const after = await inTx(this.db, async (tx) => {
      const { scope, roomName: rn } = await this.scopeOf(projectId, roomName, tx);
      const row = await secretsRepo.get(tx, { projectId, scope, secretId, forIdentity: sel.for_identity ?? "", delegatedTo: sel.delegated_to ?? "" });
      if (!row) throw notFound("secret");
      // Delete first, then look for users: on PostgreSQL a service being saved with a reference to this secret holds
      // it FOR SHARE, so the delete waits for that save and the check below then sees its reference.
      if (!(await secretsRepo.delete(tx, row.id))) throw notFound("secret");
      for (const ref of await secretsRepo.refsTo(tx, projectId, row.secret_id, scope)) {
        // Another secret of the same id that the service can see (project, or the service's room) still satisfies it.
        if (await secretsRepo.anyIn(tx, projectId, ref.scope === "" ? [""] : ["", ref.scope], row.secret_id)) continue;
        throw conflict(
          `secret ${quote(row.secret_id)} is used by service ${quote(ref.service_name)} (${ref.service_id}); remove it from that service (or delete the service) first`,
        );
      }
      return this.bus.publish(tx, { type: "secret.deleted", project_id: projectId, data: this.eventData(row.secret_id, row.name, row.type, rn) });
    });
    after();
  }

  private eventData(id: string, name: string, type: string, roomName: string | null) {
    return roomName === null ? { id, name, type } : { id, name, type, room_name: roomName };
  }

  /**
   * For the services area, inside its transaction: every reference must name a secret the service can see (its
   * room's secrets and the project's), else 400 naming the path; then the service's reference list is replaced.
   */
  async bindRefs(tx: Queryable, service: { id: string; name: string; projectId: string; scope: string }, refs: SecretRef[]): Promise<void> {
    const ids = [...new Set(refs.map((r) => r.id))];
    const scopes = service.scope === "" ? [""] : ["", service.scope];
    const found = await secretsRepo.existing(tx, service.projectId, scopes, ids, this.dialect === "postgres");
    const missing = refs.find((r) => !found.has(r.id));
    if (missing)
      throw badRequest(
        `${missing.path}: secret ${quote(missing.id)} does not exist in this ${service.scope === "" ? "project" : "room or its project"}; create it first (POST …/secrets)`,
        "secret_not_found",
      );
    await secretsRepo.replaceRefs(
      tx,
      service.id,
      ids.map((secret_id) => ({ service_id: service.id, service_name: service.name, project_id: service.projectId, scope: service.scope, secret_id })),
    );
  }
}
