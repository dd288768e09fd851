import SQLite from "better-sqlite3";
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { dialectOf } from "./db.js";

export interface BackupResult {
  file: string;
  bytes: number;
  pages: number;
  seconds: number;
}

/** Why a store cannot be backed up by this command, with the command that can (PostgreSQL: pg_dump). */
export class BackupUnsupported extends Error {}

/** `backups/meshagent-2026-12-03T15-04-05Z.db` under the data directory. */
export function defaultBackupFile(dataDir: string, now = new Date()): string {
  return join(dataDir, "backups", `meshagent-${now.toISOString().slice(0, 19).replace(/:/g, "-")}Z.db`);
}

/**
 * An online backup of the SQLite store: SQLite's backup API copies the database page by page while servers keep
 * reading and writing it (writes made during the copy restart it on the pages they touched, so the file is one
 * consistent snapshot). It is written to `<file>.partial` and renamed when complete and checked, so a file at
 * `file` is always a whole backup. PostgreSQL is refused with the pg_dump command to use instead.
 */
export async function backupStore(
  databaseUrl: string,
  file: string,
  opts: { onProgress?: (done: number, total: number) => void; pagesPerStep?: number } = {},
): Promise<BackupResult> {
  if (dialectOf(databaseUrl) === "postgres") {
    throw new BackupUnsupported(
      'this server\'s store is PostgreSQL: back it up with pg_dump (pg_dump --format=custom --file=meshagent.dump "$MESHAGENT_DATABASE_URL"); see docs/operations.md',
    );
  }
  const source = databaseUrl.replace(/^sqlite:\/\//, "");
  if (source === ":memory:") throw new BackupUnsupported("an in-memory database cannot be backed up");
  if (!existsSync(source)) throw new BackupUnsupported(`no database at ${source}: check MESHAGENT_DATA_DIR or MESHAGENT_DATABASE_URL`);
  const target = resolve(file);
  if (existsSync(target)) throw new BackupUnsupported(`${target} exists already: choose another --output (a backup never overwrites one)`);
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  rmSync(partial, { force: true });
  const t0 = performance.now();
  const db = new SQLite(source, { fileMustExist: true });
  db.pragma("busy_timeout = 5000");
  let pages = 0;
  try {
    const step = opts.pagesPerStep ?? 1024;
    await db.backup(partial, {
      progress: ({ totalPages, remainingPages }) => {
        pages = totalPages;
        opts.onProgress?.(totalPages - remainingPages, totalPages);
        return step;
      },
    });
  } catch (e) {
    rmSync(partial, { force: true });
    throw e;
  } finally {
    db.close();
  }
  // The copy is a plain (rollback-journal) database file: check it before it takes the name.
  const check = new SQLite(partial, { fileMustExist: true });
  try {
    const result = check.pragma("integrity_check", { simple: true });
    if (result !== "ok") throw new Error(`the backup failed its integrity check: ${String(result)}`);
  } finally {
    check.close();
  }
  renameSync(partial, target);
  return { file: target, bytes: statSync(target).size, pages, seconds: (performance.now() - t0) / 1000 };
}

/** Whether something accepts TCP connections on host:port (a server still running on this data). */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ host: host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host, port });
    s.setTimeout(1000, () => (s.destroy(), done(false)));
    s.once("connect", () => (s.destroy(), done(true)));
    s.once("error", () => done(false));
  });
}

/**
 * Put a backup in place of the SQLite store: checked first (integrity), refused while a server answers on the
 * configured port, the current database (and its WAL) moved aside to `<db>.before-restore-<time>`, never deleted.
 */
export async function restoreStore(databaseUrl: string, file: string, server: { host: string; port: number }) {
  if (dialectOf(databaseUrl) === "postgres") throw new BackupUnsupported("this server's store is PostgreSQL: restore with pg_restore (see docs/operations.md)");
  const target = databaseUrl.replace(/^sqlite:\/\//, "");
  const source = resolve(file);
  if (!existsSync(source)) throw new BackupUnsupported(`no backup at ${source}`);
  if (server.port !== 0 && (await listening(server.host, server.port)))
    throw new BackupUnsupported(`a server answers on ${server.host}:${server.port}: stop every server using this store, then restore`);
  const check = new SQLite(source, { fileMustExist: true, readonly: true });
  try {
    const result = check.pragma("integrity_check", { simple: true });
    if (result !== "ok") throw new BackupUnsupported(`${source} is not an intact database: ${String(result)}`);
  } finally {
    check.close();
  }
  let previous: string | null = null;
  if (existsSync(target)) {
    previous = `${target}.before-restore-${new Date().toISOString().slice(0, 19).replace(/:/g, "-")}Z`;
    // Fold the WAL into the current file first, so the copy kept aside is whole on its own.
    const cur = new SQLite(target, { fileMustExist: true });
    cur.pragma("wal_checkpoint(TRUNCATE)");
    cur.close();
    renameSync(target, previous);
  }
  for (const side of ["-wal", "-shm"]) rmSync(`${target}${side}`, { force: true });
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(source, `${target}.restoring`);
  renameSync(`${target}.restoring`, target);
  return { restored: target, previous };
}
