import type { Clock } from "../core/clock.js";
import { badRequest, notFound } from "../core/errors.js";
import { iso } from "../core/clock.js";
import { isUuid, newId } from "../core/ids.js";
import { randomSecret, safeEqualHex, Sealer, sha256Hex } from "../core/crypto.js";
import type { EventBus } from "../core/events.js";
import type { Invalidator } from "../core/invalidation.js";
import { inTx, type DB, type Queryable } from "../store/db.js";
import { apiKeysRepo } from "./repo.js";
import { formatApiKey, parseApiKey } from "./format.js";

interface CachedKey {
  projectId: string;
  secretHash: string;
  /** Full bearer values already verified against this key, so a repeat costs one map lookup and no hashing. */
  verified: Set<string>;
}

const TOPIC = "api_key";
const CACHE_MAX = 100_000;

export class ApiKeysService {
  /** key id → what a bearer check needs; filled on first use, evicted the moment a key is deleted anywhere. */
  private cache = new Map<string, CachedKey>();
  private byBearer = new Map<string, { keyId: string; projectId: string }>();
  /** Bumped on every invalidation, so a lookup that raced with a delete does not cache the deleted key. */
  private epoch = 0;

  constructor(
    private readonly db: DB,
    private readonly clock: Clock,
    private readonly sealer: Sealer,
    private readonly bus: EventBus,
    private readonly invalidator: Invalidator,
  ) {
    invalidator.subscribe(TOPIC, (key) => {
      this.epoch++;
      if (key === "*") {
        this.cache.clear();
        this.byBearer.clear();
        return;
      }
      for (const b of this.cache.get(key)?.verified ?? []) this.byBearer.delete(b);
      this.cache.delete(key);
    });
  }

  async create(projectId: string, input: { name: string; description?: string | null }, createdBy: string | null, q?: Queryable) {
    const name = input.name.trim();
    if (!name) throw badRequest("name must not be empty");
    const id = newId();
    const secret = randomSecret(32);
    const row = {
      id,
      project_id: projectId,
      name,
      description: input.description ?? "",
      secret_sealed: this.sealer.seal(secret),
      secret_hash: sha256Hex(secret),
      created_by: createdBy,
      created_at: this.clock.now(),
    };
    const run = async (tx: Queryable) => {
      await apiKeysRepo.insert(tx, row);
      return this.bus.publish(tx, { type: "api_key.created", project_id: projectId, data: { id, name } });
    };
    const after = q ? await run(q) : await inTx(this.db, run);
    after();
    return {
      id,
      name,
      description: row.description,
      created_by: createdBy ?? undefined,
      created_at: iso(row.created_at),
      value: formatApiKey(id, projectId, secret),
    };
  }

  async list(projectId: string) {
    const rows = await apiKeysRepo.listByProject(this.db, projectId);
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      description: r.description,
      created_by: r.created_by ?? undefined,
      created_at: iso(r.created_at),
    }));
  }

  async delete(projectId: string, id: string) {
    if (!isUuid(id)) throw notFound("api key");
    const after = await inTx(this.db, async (tx) => {
      if (!(await apiKeysRepo.delete(tx, projectId, id))) throw notFound("api key");
      return this.bus.publish(tx, { type: "api_key.deleted", project_id: projectId, data: { id } });
    });
    await this.invalidator.publish(TOPIC, id);
    after();
  }

  /** Resolve a bearer that looks like an API key. No store round trip once the key id is cached. */
  async authenticate(value: string): Promise<{ keyId: string; projectId: string } | null> {
    const known = this.byBearer.get(value);
    if (known) return known;
    const parsed = parseApiKey(value);
    if (!parsed) return null;
    let entry = this.cache.get(parsed.keyId);
    if (!entry) {
      const epoch = this.epoch;
      const row = await apiKeysRepo.byId(this.db, parsed.keyId);
      if (!row) return null;
      entry = { projectId: row.project_id, secretHash: row.secret_hash, verified: new Set() };
      if (epoch === this.epoch) {
        if (this.cache.size >= CACHE_MAX) {
          this.cache.clear();
          this.byBearer.clear();
        }
        this.cache.set(parsed.keyId, entry);
      }
    }
    if (entry.projectId !== parsed.projectId) return null;
    if (!safeEqualHex(sha256Hex(parsed.secret), entry.secretHash)) return null;
    const ok = { keyId: parsed.keyId, projectId: entry.projectId };
    if (this.cache.get(parsed.keyId) === entry && entry.verified.size < 16) {
      entry.verified.add(value);
      this.byBearer.set(value, ok);
    }
    return ok;
  }

  /** The raw secret of a key, for verifying participant JWTs that clients sign with it. */
  async secretOf(keyId: string): Promise<{ projectId: string; secret: string } | null> {
    const row = await apiKeysRepo.byId(this.db, keyId);
    if (!row) return null;
    return { projectId: row.project_id, secret: this.sealer.open(row.secret_sealed) };
  }
}
