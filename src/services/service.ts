import type { Clock } from "../core/clock.js";
import { badRequest, conflict, notFound, quote } from "../core/errors.js";
import type { EventBus } from "../core/events.js";
import { newId } from "../core/ids.js";
import { isObj } from "../core/json.js";
import { InvalidatedCache, type Invalidator } from "../core/invalidation.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import type { RoomsService } from "../rooms/service.js";
import type { SecretsService } from "../secrets/service.js";
import { servicesRepo, type ServiceRow } from "./repo.js";
import { parseServiceSpec, serviceSecretRefs, type ServiceSpec, type ServiceTemplateSpec } from "./spec.js";
import { renderServiceFromTemplate, renderTemplate } from "./template.js";

export const MAX_SERVICES_PER_SCOPE = 1000;
/** Cache invalidation topic: the key is `<project id>/<scope>`. */
const TOPIC = "services";
/** Scopes whose specs add up to more than this are read from the store on every call instead of cached. */
const MAX_CACHED_SCOPE_BYTES = 256 * 1024;

/** One scope's services as the reads answer them: each spec's JSON text by id, and the list body. */
interface ScopeSnapshot {
  byId: Map<string, string>;
  list: string;
  bytes: number;
}

/** A create/update body is either a ServiceSpec or `{template, values}` (wire-contract §4.2: told apart by its keys). */
export type ServiceBody = Record<string, unknown>;

/** The runtime's view of a service record (issue: service runtime), kept apart from the strict ServiceSpec. */
export interface ServiceRecord {
  id: string;
  projectId: string;
  roomId: string | null;
  name: string;
  revision: number;
  spec: ServiceSpec;
  runtime: Record<string, unknown> | null;
  updatedAt: number;
}

/**
 * The stored text of a ServiceSpec: as sent (nulls dropped) with the server's id after `kind`. Reads answer this
 * text as it is (no parse, no serializer), so get_service and list_services cost a row read.
 */
export function specText(id: string, spec: ServiceSpec): string {
  const { version, kind, id: _ignored, ...rest } = spec;
  return JSON.stringify({ version, kind, id, ...rest });
}

function templateBody(body: ServiceBody): { template: string; values: Record<string, string> } | null {
  if (!("template" in body)) return null;
  for (const k of Object.keys(body))
    if (k !== "template" && k !== "values") throw badRequest(`${k} is not a known field of a template body (known: template, values)`);
  if (typeof body.template !== "string") throw badRequest("template must be a string (the ServiceTemplate YAML)");
  const values = body.values ?? {};
  if (!isObj(values)) throw badRequest("values must be an object of strings");
  return { template: body.template, values: values as Record<string, string> };
}

/**
 * Services (wire-contract §4.2): ServiceSpec records of a project, or of one room (`roomName`). Validation is the
 * strict models' (spec.ts); a template body renders first (template.ts). References to secrets are checked by the
 * secrets area in the same transaction. Every change bumps `revision` and publishes service.created|updated|deleted.
 */
export class ServicesService {
  /** Reads (get/list) come from a per-scope snapshot, evicted in every process when the scope changes. */
  private readonly cache: InvalidatedCache<ScopeSnapshot>;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly invalidator: Invalidator,
    private readonly rooms: Pick<RoomsService, "byName">,
    private readonly secrets: Pick<SecretsService, "bindRefs">,
  ) {
    this.cache = new InvalidatedCache(invalidator, TOPIC, 1000);
  }

  private async snapshot(projectId: string, scope: string): Promise<ScopeSnapshot> {
    let loaded: ScopeSnapshot | undefined;
    const hit = await this.cache.get(`${projectId}/${scope}`, async () => {
      const rows = await servicesRepo.list(this.db, projectId, scope);
      const byId = new Map(rows.map((r) => [r.id, r.spec]));
      const list = `{"services":[${rows.map((r) => r.spec).join(",")}]}`;
      loaded = { byId, list, bytes: list.length };
      return loaded.bytes <= MAX_CACHED_SCOPE_BYTES ? loaded : undefined;
    });
    return hit ?? loaded!;
  }

  /** After a committed change: every process drops its snapshot of the scope. */
  private changed(projectId: string, scope: string) {
    return this.invalidator.publish(TOPIC, `${projectId}/${scope}`);
  }

  private async scopeOf(projectId: string, roomName: string | null, q: Queryable = this.db) {
    if (roomName === null) return { scope: "", roomId: null, roomName: null };
    const room = await this.rooms.byName(projectId, roomName, q);
    return { scope: room.id, roomId: room.id, roomName: room.name };
  }

  /** The spec a create/update body describes (rendered when it is a template body). */
  private specOf(body: unknown): ServiceSpec {
    if (!isObj(body)) throw badRequest("the body must be a ServiceSpec object or {template, values}");
    const t = templateBody(body);
    if (t) return renderServiceFromTemplate(t.template, t.values);
    return parseServiceSpec(body);
  }

  /** POST /templates/render: the rendered ServiceTemplateSpec (with the template annotations). */
  render(body: unknown): ServiceTemplateSpec {
    if (!isObj(body)) throw badRequest("the body must be {template, values}");
    const t = templateBody(body);
    if (!t) throw badRequest("template is required (the ServiceTemplate YAML text)");
    return renderTemplate(t.template, t.values);
  }

  async create(projectId: string, roomName: string | null, body: unknown, createdBy: string | null): Promise<ServiceSpec> {
    const spec = this.specOf(body);
    const id = newId();
    const name = spec.metadata.name;
    const now = this.clock.now();
    const row: ServiceRow = {
      id,
      project_id: projectId,
      room_id: null,
      scope: "",
      name,
      spec: specText(id, spec),
      revision: 1,
      runtime: null,
      created_by: createdBy,
      created_at: now,
      updated_at: now,
    };
    try {
      const after = await inTx(this.db, async (tx) => {
        const { scope, roomId, roomName: rn } = await this.scopeOf(projectId, roomName, tx);
        if ((await servicesRepo.count(tx, projectId, scope)) >= MAX_SERVICES_PER_SCOPE)
          throw badRequest(`a ${roomId ? "room" : "project"} may hold at most ${MAX_SERVICES_PER_SCOPE} services; delete some first`, "limit_exceeded");
        Object.assign(row, { scope, room_id: roomId });
        await servicesRepo.insert(tx, row);
        await this.secrets.bindRefs(tx, { id, name, projectId, scope }, serviceSecretRefs(spec));
        return this.bus.publish(tx, { type: "service.created", project_id: projectId, data: eventData(id, name, rn) });
      });
      await this.changed(projectId, row.scope);
      after();
    } catch (e) {
      throw this.nameTaken(e, name, roomName);
    }
    return JSON.parse(row.spec) as ServiceSpec;
  }

  async update(projectId: string, roomName: string | null, id: string, body: unknown): Promise<ServiceSpec> {
    const spec = this.specOf(body);
    // The Python client sends the id in the body (and TS may): it must be this service's, or absent.
    if (spec.id !== undefined && spec.id !== id) throw badRequest(`id ${quote(spec.id)} in the body does not match the service id in the path`);
    const name = spec.metadata.name;
    const text = specText(id, spec);
    try {
      const { after, scope } = await inTx(this.db, async (tx) => {
        const { scope, roomName: rn } = await this.scopeOf(projectId, roomName, tx);
        const cur = await servicesRepo.get(tx, projectId, scope, id);
        if (!cur) throw notFound("service");
        if (!(await servicesRepo.replace(tx, id, { name, spec: text, updated_at: this.clock.now() }))) throw notFound("service");
        await this.secrets.bindRefs(tx, { id, name, projectId, scope }, serviceSecretRefs(spec));
        return { scope, after: await this.bus.publish(tx, { type: "service.updated", project_id: projectId, data: eventData(id, name, rn) }) };
      });
      await this.changed(projectId, scope);
      after();
    } catch (e) {
      throw this.nameTaken(e, name, roomName);
    }
    return JSON.parse(text) as ServiceSpec;
  }

  /** get_service: the ServiceSpec as JSON text. */
  async getText(projectId: string, roomName: string | null, id: string): Promise<string> {
    const { scope } = await this.scopeOf(projectId, roomName);
    const text = (await this.snapshot(projectId, scope)).byId.get(id);
    if (text === undefined) throw notFound("service");
    return text;
  }

  /** list_services: `{"services": [...]}` as JSON text, by name. */
  async listText(projectId: string, roomName: string | null): Promise<string> {
    const { scope } = await this.scopeOf(projectId, roomName);
    return (await this.snapshot(projectId, scope)).list;
  }

  async delete(projectId: string, roomName: string | null, id: string): Promise<void> {
    const { after, scope } = await inTx(this.db, async (tx) => {
      const { scope, roomName: rn } = await this.scopeOf(projectId, roomName, tx);
      const row = await servicesRepo.get(tx, projectId, scope, id);
      if (!row || !(await servicesRepo.delete(tx, id))) throw notFound("service");
      return { scope, after: await this.bus.publish(tx, { type: "service.deleted", project_id: projectId, data: eventData(id, row.name, rn) }) };
    });
    await this.changed(projectId, scope);
    after();
  }

  /** The runtime's view: the records of one scope with their revision and runtime state. */
  async records(projectId: string, roomName: string | null): Promise<ServiceRecord[]> {
    const { scope } = await this.scopeOf(projectId, roomName);
    return (await servicesRepo.list(this.db, projectId, scope)).map((r) => ({
      id: r.id,
      projectId: r.project_id,
      roomId: r.room_id,
      name: r.name,
      revision: r.revision,
      spec: JSON.parse(r.spec) as ServiceSpec,
      runtime: r.runtime ? (JSON.parse(r.runtime) as Record<string, unknown>) : null,
      updatedAt: r.updated_at,
    }));
  }

  private nameTaken(e: unknown, name: string, roomName: string | null) {
    if (isUniqueViolation(e))
      return conflict(`Service name already in use: a service named ${quote(name)} already exists in this ${roomName === null ? "project" : "room"}`);
    return e;
  }
}

const eventData = (id: string, name: string, roomName: string | null) => (roomName === null ? { id, name } : { id, name, room_name: roomName });
