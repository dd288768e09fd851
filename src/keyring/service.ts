import { masterKeyId, Sealer } from "../core/crypto.js";
import type { Invalidator } from "../core/invalidation.js";
import type { DB } from "../store/db.js";
import { masterKeysRepo, type MasterKeyRow } from "./repo.js";

/** The invalidation topic a rotation announces itself on (PostgreSQL NOTIFY), so servers switch before their next poll. */
export const KEYRING_TOPIC = "keyring";
/** How often a server reads `master_keys` (one indexed read of a table with a row per rotation ever run). */
export const KEYRING_POLL_MS = 1000;

/** The AAD of a rotation row's wrapped keys: the new key sealed under the old one, and the old under the new. */
export const wrapAad = (rotationId: string, which: "new" | "old") => `master_keys:${rotationId}:${which}`;

/** The configured master key cannot open this database (a wrong key, or one a rotation retired). */
export class KeyringError extends Error {}

export interface Keyring {
  /** The key new values are sealed with: the newest rotation's key (or the configured key before any rotation). */
  current: Buffer;
  /** Every key reachable from the known ones through the rotations' wrapped keys, by id (current among them). */
  keys: Map<string, Buffer>;
}

/**
 * The keyring a process gets from the keys it knows (`known[0]`: the configured master key) and the rotation rows
 * (oldest first): each row whose old key is known yields its new key (`new_sealed`), and each whose new key is known
 * yields its old one (`old_sealed`), until nothing more opens. The current key is the newest row's; a process that
 * cannot reach it (a key the database never had, or one a retired rotation no longer leads from) gets a KeyringError.
 */
export function resolveKeyring(known: Buffer[], rows: MasterKeyRow[]): Keyring {
  const keys = new Map<string, Buffer>(known.map((k) => [masterKeyId(k), k]));
  const unwrap = (row: MasterKeyRow, which: "new" | "old") => {
    const [from, id, sealed] = which === "new" ? [row.old_key_id, row.id, row.new_sealed!] : [row.id, row.old_key_id, row.old_sealed!];
    const key = new Sealer(keys.get(from)!).openBuffer(sealed, wrapAad(row.id, which));
    if (masterKeyId(key) !== id) throw new KeyringError(`master_keys row ${row.id}: the wrapped ${which} key is not key ${id}`);
    keys.set(id, key);
  };
  for (let changed = true; changed;) {
    changed = false;
    for (const r of rows) {
      if (r.new_sealed && keys.has(r.old_key_id) && !keys.has(r.id)) {
        unwrap(r, "new");
        changed = true;
      }
      if (r.old_sealed && keys.has(r.id) && !keys.has(r.old_key_id)) {
        unwrap(r, "old");
        changed = true;
      }
    }
  }
  const latest = rows.at(-1);
  if (!latest) return { current: known[0], keys };
  const current = keys.get(latest.id);
  if (current) return { current, keys };
  const kid = masterKeyId(known[0]);
  if (rows.some((r) => r.old_key_id === kid || r.id === kid)) {
    throw new KeyringError(
      `the master key (id ${kid}) was retired by a master-key rotation; the current key is ${latest.id}: start with it ` +
        "(MESHAGENT_MASTER_KEY or <data dir>/master.key)",
    );
  }
  throw new KeyringError(`the master key (id ${kid}) is not this database's master key (the current key is ${latest.id})`);
}

/**
 * The server side of master-key rotation: loads the keyring into the shared Sealer at start, then re-reads
 * `master_keys` every second (and at once on a PostgreSQL notification) while the server runs. Once a rotation
 * has begun, every value is sealed with the new key and both keys open values, in every process within a poll.
 */
export class KeyringService {
  private known: Map<string, Buffer>;
  private current: Buffer;
  private seen = "";
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly db: DB,
    private readonly sealer: Sealer,
    private readonly configKey: Buffer,
    private readonly invalidator: Invalidator,
    private readonly opts: { pollMs?: number; log?: (msg: string, err?: unknown) => void } = {},
  ) {
    this.known = new Map([[masterKeyId(configKey), configKey]]);
    this.current = configKey;
  }

  /** The key new values are sealed with (the room server derives its URL-signing key from it at start). */
  get currentKey(): Buffer {
    return this.current;
  }

  /** Read the rotations and swap the Sealer's keyring if they changed. Throws a KeyringError when the key cannot open this database. */
  async load(): Promise<void> {
    const rows = await masterKeysRepo.all(this.db);
    const seen = rows.map((r) => `${r.id}:${r.state}:${r.new_sealed ? 1 : 0}${r.old_sealed ? 1 : 0}`).join(",");
    if (seen === this.seen) return;
    // The configured key first (error messages name it), then every key already known: a retirement never takes
    // away from a running process a key it had.
    const ring = resolveKeyring([this.configKey, ...this.known.values()], rows);
    this.sealer.setKeys(ring.current, ring.keys.values());
    this.known = ring.keys;
    this.current = ring.current;
    this.seen = seen;
  }

  private refresh(): Promise<void> {
    this.loading ??= this.load()
      .catch((err) => this.opts.log?.("keyring refresh failed", err))
      .finally(() => (this.loading = null));
    return this.loading;
  }

  /** Poll (and listen) until stop(). */
  start(): void {
    this.invalidator.subscribe(KEYRING_TOPIC, () => void this.refresh());
    const tick = () => {
      if (this.stopped) return;
      void this.refresh().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.opts.pollMs ?? KEYRING_POLL_MS).unref();
      });
    };
    this.timer = setTimeout(tick, this.opts.pollMs ?? KEYRING_POLL_MS).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.loading;
  }
}
