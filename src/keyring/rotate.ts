import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { parseMasterKey } from "../config.js";
import { iso } from "../core/clock.js";
import { masterKeyId, sealedPrefix, Sealer } from "../core/crypto.js";
import { PgInvalidator } from "../core/invalidation.js";
import type { SealedColumn } from "../domain.js";
import { inTx, migrate, openStore, type DB } from "../store/db.js";
import { isUniqueViolation } from "../store/errors.js";
import { masterKeysRepo, sealedRepo, type ColumnRef, type MasterKeyRow } from "./repo.js";
import { KEYRING_POLL_MS, KEYRING_TOPIC, resolveKeyring, wrapAad } from "./service.js";

/**
 * `rotate-master-key`: re-seal every sealed value (the columns the areas declare in `Domain.sealed`) under a new
 * master key while servers keep serving.
 *
 * 1. A `master_keys` row for the new key: the new key sealed under the old one and the old under the new, state
 *    `rotating`. Running servers see it within a poll (KeyringService, 1 s; at once on PostgreSQL) and from then on
 *    seal with the new key and open with both. A server started now with either key gets both from the row.
 * 2. After `switchWaitMs` (enough polls for every server to have switched), each column is re-sealed in batches in
 *    key order: read the rows whose value is not yet under the new key, open and re-seal them, and write them back
 *    in one transaction with compare-and-swap updates (a value a server changed in between is left alone). The
 *    transaction also stores the cursor (pass, column, last key), so a killed run resumes where it stopped.
 * 3. Passes repeat until one complete pass finds nothing left under another key; then the row is `done`. When the
 *    old key came from `<data dir>/master.key`, that file now holds the new key (the old one is kept beside it as
 *    `master.key.<old key id>.old`).
 * 4. `--retire`, once every server runs with the new key: a last pass, then the rows forget their wrapped keys, so
 *    the old key no longer opens anything in this database.
 */

export interface RotateOptions {
  /** The new master key: 32 raw bytes, 64 hex characters or base64 of 32 bytes. */
  newKeyFile?: string;
  /** Write a new random key to newKeyFile (mode 0600) and stop. */
  generate?: boolean;
  /** Forget the old keys after a finished rotation. */
  retire?: boolean;
  /** Values per transaction. */
  batchSize?: number;
  /** How long running servers get to notice the rotation before re-sealing starts (default: 3 polls). */
  switchWaitMs?: number;
  /** Share of the time spent working (0 < duty <= 1, default 0.5): after a batch that took t, sleep t × (1 − duty) / duty. */
  duty?: number;
  /** A fixed sleep between batches, on top of the duty cycle's. */
  pauseMs?: number;
  /** Give up when this many passes still find values under another key (a server that never switched). */
  maxPasses?: number;
  /** Finish even when some values open with no key (they stay as they are). */
  allowUnreadable?: boolean;
}

export interface RotateEnv {
  databaseUrl: string;
  dbPool?: number;
  /** The master key this process is configured with, and where it came from. */
  masterKey: Buffer;
  keySource: "env" | "file";
  dataDir: string;
  /** Every area's sealed columns (`domains.flatMap((d) => d.sealed ?? [])`). */
  columns: SealedColumn[];
  reporter?: Reporter;
  now?: () => number;
}

export interface Progress {
  pass: number;
  column: string;
  /** Values handled in this pass so far (re-sealed, changed meanwhile, unreadable), and the pass's estimate. */
  processed: number;
  total: number;
  resealed: number;
  valuesPerSecond: number;
}

export interface Reporter {
  info(message: string): void;
  progress(p: Progress): void;
}

export interface RotationSummary {
  ok: true;
  action: "rotated" | "verified" | "retired" | "generated";
  old_key_id: string | null;
  new_key_id: string;
  resumed: boolean;
  passes: number;
  resealed: number;
  columns: Record<string, number>;
  unreadable: number;
  /** The whole run, and the part of it spent re-sealing (without the wait for servers to switch). */
  seconds: number;
  reseal_seconds: number;
  /** `<data dir>/master.key` when the tool wrote the new key there. */
  key_file: string | null;
  next: string;
}

export class RotationError extends Error {}

/** The most sealed text one batch rewrites (its UPDATE carries the old and the new values). */
const BATCH_BYTES = 8 * 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A key file: exactly 32 raw bytes, or text with 64 hex characters or base64 of 32 bytes. */
export function readKeyFile(file: string): Buffer {
  const raw = readFileSync(file);
  if (raw.length === 32) return raw;
  return parseMasterKey(raw.toString("utf8"), file);
}

/** Write a key file (hex, mode 0600) atomically: a temp file, fsync, rename, fsync the directory. */
function writeKeyFile(file: string, key: Buffer, exclusive: boolean) {
  if (exclusive) {
    writeFileSync(file, key.toString("hex") + "\n", { mode: 0o600, flag: "wx" });
    return;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeFileSync(fd, key.toString("hex") + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(dirname(file), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

const columnName = (c: SealedColumn) => `${c.table}.${c.column}`;
const toRef = (c: SealedColumn): ColumnRef => ({
  table: c.table,
  keys: typeof c.key === "string" ? [c.key] : c.key,
  column: c.column,
  select: c.select ?? [],
});

interface Cursor {
  pass: number;
  column: string | null;
  after: unknown[] | null;
}

export async function rotateMasterKey(opts: RotateOptions, env: RotateEnv): Promise<RotationSummary> {
  const now = env.now ?? Date.now;
  const report = env.reporter ?? { info() {}, progress() {} };
  const started = now();

  if (opts.generate) {
    if (!opts.newKeyFile) throw new RotationError("--generate needs --new-key-file <file> (where to write the new key)");
    if (existsSync(opts.newKeyFile)) throw new RotationError(`${opts.newKeyFile} exists; --generate never overwrites a key file`);
    const key = randomBytes(32);
    writeKeyFile(opts.newKeyFile, key, true);
    const id = masterKeyId(key);
    return summary("generated", null, id, {
      next: `keep a copy of ${opts.newKeyFile} somewhere safe, then run: rotate-master-key --new-key-file ${opts.newKeyFile}`,
    });
  }

  const store = openStore(env.databaseUrl, { pool: env.dbPool ?? 2 });
  try {
    await migrate(store);
    const db = store.db;
    const rows = await masterKeysRepo.all(db);
    const ring = resolveKeyring([env.masterKey], rows);
    const currentKid = masterKeyId(ring.current);
    const tables = await sealedRepo.tables(db);
    const columns = env.columns.filter((c) => {
      if (tables.has(c.table)) return true;
      report.info(`skipping ${columnName(c)}: no table ${c.table} in this database`);
      return false;
    });
    const job = { db, columns, opts, report, now };

    if (opts.retire) {
      if (rows.some((r) => r.state === "rotating")) throw new RotationError("a rotation is unfinished: finish it (rerun it with its key file) before --retire");
      const latest = rows.at(-1);
      if (!latest || latest.state === "retired") throw new RotationError("nothing to retire: no finished rotation holds an old key");
      if (masterKeyId(env.masterKey) !== latest.id) {
        throw new RotationError(
          `this process is configured with master key ${masterKeyId(env.masterKey)}, not the current key ${latest.id}: ` +
            "configure the current key (MESHAGENT_MASTER_KEY or <data dir>/master.key) everywhere before --retire",
        );
      }
      const sealer = new Sealer(ring.current, ring.keys.values());
      const r = await resealAll(job, sealer, null, { pass: 1, column: null, after: null });
      await masterKeysRepo.retire(db, now());
      await announce(store.dialect, env.databaseUrl, latest.id);
      return summary("retired", latest.old_key_id, latest.id, {
        ...r,
        next: "old master keys are forgotten: only the current key opens this database (servers started with an old key now refuse to start)",
      });
    }

    if (!opts.newKeyFile) throw new RotationError("--new-key-file <file> is required (or --generate to make one, --retire to finish)");
    const newKey = readKeyFile(opts.newKeyFile);
    const newKid = masterKeyId(newKey);
    if ((statSync(opts.newKeyFile).mode & 0o077) !== 0) report.info(`warning: ${opts.newKeyFile} is readable by other users (chmod 600 it)`);

    let row = rows.find((r) => r.state === "rotating");
    let resumed = false;
    if (row && row.id !== newKid) {
      throw new RotationError(
        `a rotation to master key ${row.id} (started ${iso(row.started_at)}) is unfinished: rerun it with that key's file to finish it ` +
          `(the key in ${opts.newKeyFile} is ${newKid}; a different new key is refused until then)`,
      );
    }
    if (!row && newKid === currentKid) {
      // Rerun after the rotation finished (e.g. killed before it replaced the key file): check and finish up.
      if (rows.at(-1)?.id !== newKid) throw new RotationError(`the key in ${opts.newKeyFile} (${newKid}) is already this database's master key`);
      const sealer = new Sealer(newKey, ring.keys.values());
      const r = await resealAll(job, sealer, null, { pass: 1, column: null, after: null });
      const keyFile = replaceKeyFile(env, newKey, report);
      return summary("verified", rows.at(-1)!.old_key_id, newKid, { ...r, key_file: keyFile, next: nextStep(env, opts.newKeyFile) });
    }
    if (!row) {
      if (ring.keys.has(newKid) || rows.some((r) => r.old_key_id === newKid || r.id === newKid)) {
        throw new RotationError(`the key in ${opts.newKeyFile} (${newKid}) was this database's master key before: rotate to a new key`);
      }
      await preflight(job, new Sealer(ring.current, ring.keys.values()), sealedPrefix(newKid));
      const t = now();
      const fresh: MasterKeyRow = {
        id: newKid,
        old_key_id: currentKid,
        new_sealed: new Sealer(ring.current).seal(newKey, wrapAad(newKid, "new")),
        old_sealed: new Sealer(newKey).seal(ring.current, wrapAad(newKid, "old")),
        state: "rotating",
        unfinished: 1,
        progress: JSON.stringify({ pass: 1, column: null, after: null } satisfies Cursor),
        resealed: 0,
        started_at: t,
        finished_at: null,
        updated_at: t,
      };
      try {
        await masterKeysRepo.insert(db, fresh);
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const other = await masterKeysRepo.unfinished(db);
        throw new RotationError(`another rotation (to master key ${other?.id ?? "?"}) started at the same moment; rerun to see its state`);
      }
      row = fresh;
      report.info(`rotating master key ${currentKid} -> ${newKid}`);
    } else {
      resumed = true;
      report.info(`resuming the rotation to master key ${newKid} (started ${iso(row.started_at)}, ${row.resealed} values re-sealed so far)`);
    }
    await announce(store.dialect, env.databaseUrl, newKid);

    const switchWait = opts.switchWaitMs ?? 3 * KEYRING_POLL_MS;
    const wait = row.started_at + switchWait - now();
    if (wait > 0) {
      report.info(`waiting ${(wait / 1000).toFixed(1)} s for running servers to switch to the new key`);
      await sleep(wait);
    }

    const sealer = new Sealer(newKey, [...ring.keys.values(), ring.current]);
    const resealStart = now();
    const r = await resealAll(job, sealer, row.id, JSON.parse(row.progress) as Cursor, resumed);
    const resealSeconds = (now() - resealStart) / 1000;
    const finishedAt = now();
    await masterKeysRepo.finish(db, row.id, JSON.stringify({ pass: r.passes, column: null, after: null }), finishedAt);
    await announce(store.dialect, env.databaseUrl, newKid);
    const keyFile = replaceKeyFile(env, newKey, report);
    return summary("rotated", row.old_key_id, newKid, {
      ...r,
      resumed,
      key_file: keyFile,
      reseal_seconds: Math.round(resealSeconds * 1000) / 1000,
      next: nextStep(env, opts.newKeyFile),
    });
  } finally {
    await store.close();
  }

  function summary(action: RotationSummary["action"], oldKid: string | null, newKid: string, more: Partial<RotationSummary>): RotationSummary {
    return {
      ok: true,
      action,
      old_key_id: oldKid,
      new_key_id: newKid,
      resumed: false,
      passes: 0,
      resealed: 0,
      columns: {},
      unreadable: 0,
      reseal_seconds: 0,
      key_file: null,
      next: "",
      ...more,
      seconds: Math.round((now() - started) / 100) / 10,
    };
  }
}

function nextStep(env: RotateEnv, newKeyFile: string): string {
  const restart =
    env.keySource === "file"
      ? `<data dir>/master.key now holds the new key: restart each server (copy ${newKeyFile} to the master.key of servers with their own data dir)`
      : `set MESHAGENT_MASTER_KEY to the new key (from ${newKeyFile}) and restart each server`;
  return `${restart}; once every server runs with the new key, run rotate-master-key --retire`;
}

/** When the old key came from the data dir's key file, put the new key there (the old one stays beside it). */
function replaceKeyFile(env: RotateEnv, newKey: Buffer, report: Reporter): string | null {
  if (env.keySource !== "file") return null;
  const file = join(env.dataDir, "master.key");
  const old = existsSync(file) ? readKeyFile(file) : null;
  if (old && masterKeyId(old) === masterKeyId(newKey)) return file;
  if (old) {
    const aside = join(env.dataDir, `master.key.${masterKeyId(old)}.old`);
    writeKeyFile(aside, old, false);
    report.info(`the old key is now ${aside}: keep it offline with backups from before the rotation, then delete it`);
  }
  writeKeyFile(file, newKey, false);
  report.info(`${file} now holds the new master key`);
  return file;
}

/** PostgreSQL: tell every server to re-read the keyring now instead of at its next poll. */
async function announce(dialect: string, url: string, kid: string) {
  if (dialect !== "postgres") return;
  const inv = new PgInvalidator(url);
  try {
    await inv.start();
    await inv.publish(KEYRING_TOPIC, kid);
  } catch {
    // the servers' poll sees it anyway
  } finally {
    await inv.close();
  }
}

/**
 * Before a rotation starts: the configured key must open what is stored (a sample of every column). A wrong key (a
 * fresh data dir's generated master.key against a shared PostgreSQL database, say) would otherwise start a rotation
 * from a key the servers do not have.
 */
async function preflight(job: Job, sealer: Sealer, prefix: string) {
  const bad: string[] = [];
  for (const c of job.columns) {
    const ref = toRef(c);
    for (const r of await sealedRepo.pendingBatch(job.db, ref, prefix, null, 20)) {
      try {
        sealer.openBuffer(r.value, c.aad?.(r.row));
      } catch (err) {
        bad.push(`${columnName(c)} ${JSON.stringify(r.key)}: ${(err as Error).message}`);
      }
    }
  }
  if (bad.length) {
    throw new RotationError(
      `the configured master key (id ${sealer.keyId}) does not open what this database stores; is it the right MESHAGENT_MASTER_KEY ` +
        `or data dir? Nothing was changed.\n  ${bad.slice(0, 5).join("\n  ")}`,
    );
  }
}

interface Job {
  db: DB;
  columns: SealedColumn[];
  opts: RotateOptions;
  report: Reporter;
  now: () => number;
}

/**
 * Passes over every column until a complete pass finds nothing that is not sealed with `sealer`'s key. `rotationId`:
 * the row whose cursor is kept with each batch (null: a check that keeps no cursor). A resumed pass starts at the
 * cursor and never counts as the final, empty one: values written before the cursor while the job was down would be
 * behind it.
 */
async function resealAll(job: Job, sealer: Sealer, rotationId: string | null, cursor: Cursor, resumed = false) {
  const { db, opts, report, now } = job;
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? 500, 4000));
  const maxPasses = opts.maxPasses ?? 10;
  const prefix = sealedPrefix(sealer.keyId);
  const duty = Math.min(1, Math.max(0.01, opts.duty ?? 0.5));
  const perColumn: Record<string, number> = {};
  let resealedTotal = 0;
  let unreadableTotal: number;
  let pass = cursor.pass;
  let partial = resumed && (cursor.column !== null || cursor.after !== null);
  let passes = 0;
  for (;;) {
    if (passes >= maxPasses) {
      throw new RotationError(
        `values under an old key keep appearing after ${passes} passes: is every server running a version that follows key rotations? ` +
          "The rotation stays unfinished (rerun to continue); the old key stays accepted.",
      );
    }
    passes++;
    const refs = job.columns.map((c) => ({ c, ref: toRef(c), name: columnName(c) }));
    const startAt = cursor.column
      ? Math.max(
          0,
          refs.findIndex((x) => x.name === cursor.column),
        )
      : 0;
    let total = 0;
    for (const x of refs.slice(startAt)) total += await sealedRepo.countPending(db, x.ref, prefix);
    const passStart = now();
    let processed = 0;
    let changed = 0;
    const unreadable: string[] = [];
    for (const [i, x] of refs.entries()) {
      if (i < startAt) continue;
      let after = i === startAt ? cursor.after : null;
      for (;;) {
        const batchStart = now();
        const fetched = await sealedRepo.pendingBatch(db, x.ref, prefix, after, batchSize);
        if (!fetched.length) break;
        // Large values (stored responses) make a smaller batch: one transaction writes at most BATCH_BYTES.
        let bytes = 0;
        const batch = fetched.filter((r, i) => (bytes += r.value.length) <= BATCH_BYTES || i === 0);
        const swaps: { key: unknown[]; old: string; value: string }[] = [];
        for (const r of batch) {
          try {
            const aad = x.c.aad?.(r.row);
            swaps.push({ key: r.key, old: r.value, value: sealer.seal(sealer.openBuffer(r.value, aad), aad) });
          } catch (err) {
            unreadable.push(`${x.name} ${JSON.stringify(r.key)}: ${(err as Error).message}`);
          }
        }
        after = batch.at(-1)!.key;
        const next = JSON.stringify({ pass, column: x.name, after } satisfies Cursor);
        const n = await inTx(db, async (tx) => {
          const n = await sealedRepo.swap(tx, x.ref, swaps);
          if (rotationId) await masterKeysRepo.progress(tx, rotationId, next, n, now());
          return n;
        });
        processed += batch.length;
        changed += swaps.length;
        resealedTotal += n;
        perColumn[x.name] = (perColumn[x.name] ?? 0) + n;
        const seconds = Math.max(0.001, (now() - passStart) / 1000);
        report.progress({ pass, column: x.name, processed, total: Math.max(total, processed), resealed: resealedTotal, valuesPerSecond: processed / seconds });
        // Leave the database and the CPU to the servers part of the time.
        const rest = ((now() - batchStart) * (1 - duty)) / duty + (opts.pauseMs ?? 0);
        if (rest >= 1) await sleep(rest);
      }
    }
    unreadableTotal = unreadable.length;
    if (unreadable.length && !opts.allowUnreadable) {
      throw new RotationError(
        `${unreadable.length} values open with none of the keys (the rotation stays unfinished; --allow-unreadable finishes without them):\n  ` +
          unreadable.slice(0, 10).join("\n  "),
      );
    }
    // `changed` counts the values read and re-sealed (whether or not the swap won): zero means nothing was left.
    if (changed === 0 && !partial) break;
    partial = false;
    pass++;
    cursor = { pass, column: null, after: null };
    if (rotationId) await masterKeysRepo.progress(db, rotationId, JSON.stringify(cursor), 0, now());
  }
  return { passes, resealed: resealedTotal, columns: perColumn, unreadable: unreadableTotal };
}

/** Progress for people (a bar on a terminal, a line per batch otherwise), or nothing (--json). */
export function consoleReporter(opts: { json: boolean; tty: boolean; write: (s: string) => void }): Reporter & { end(): void } {
  let bar = false;
  const clear = () => {
    if (bar) opts.write("\r\x1b[K");
    bar = false;
  };
  return {
    info(message) {
      if (opts.json) return;
      clear();
      opts.write(message + "\n");
    },
    progress(p) {
      if (opts.json) return;
      const pct = p.total ? Math.min(100, Math.floor((100 * p.processed) / p.total)) : 100;
      const rate = `${Math.round(p.valuesPerSecond)} values/s`;
      if (opts.tty) {
        const width = 30;
        const filled = Math.round((width * pct) / 100);
        opts.write(`\r\x1b[K[${"#".repeat(filled)}${".".repeat(width - filled)}] ${pct}% pass ${p.pass} ${p.column} ${p.processed}/${p.total} ${rate}`);
        bar = true;
      } else {
        opts.write(`pass ${p.pass}: ${p.column} ${p.processed}/${p.total} values (${pct}%), ${p.resealed} re-sealed, ${rate}\n`);
      }
    },
    end: clear,
  };
}
