import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Transaction } from "kysely";
import SQLite from "better-sqlite3";
import pg from "pg";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Database } from "./schema.js";
import { migrationProvider } from "./migrations/index.js";
import { startCheckpointer } from "./checkpointer.js";

export type DB = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Either the database or an open transaction: repos accept both so services choose the transaction scope. */
export type Queryable = Kysely<Database>;

// int8 (bigint) and numeric come back as strings by default; our bigints are epoch ms and counters.
pg.types.setTypeParser(20, (v) => Number(v));

export type Dialect = "sqlite" | "postgres";

export function dialectOf(url: string): Dialect {
  return /^postgres(ql)?:\/\//.test(url) ? "postgres" : "sqlite";
}

export interface Store {
  db: DB;
  dialect: Dialect;
  url: string;
  /** SQLite: the database file (absent for PostgreSQL and for an in-memory database). */
  file?: string;
  /** PostgreSQL: the pool's connections now (for /metrics); absent for SQLite (one connection). */
  pool?: () => { total: number; idle: number; waiting: number; max: number };
  close(): Promise<void>;
}

/** `pool`: PostgreSQL connections (MESHAGENT_DB_POOL, validated by the config). */
export function openStore(url: string, opts: { pool?: number } = {}): Store {
  const dialect = dialectOf(url);
  let db: DB;
  let checkpointer: { stop(): Promise<void> } | undefined;
  let sqliteFile: string | undefined;
  let poolStats: Store["pool"];
  if (dialect === "postgres") {
    const pool = new pg.Pool({ connectionString: url, max: opts.pool ?? 10 });
    // An idle client erroring (e.g. the server restarting) must not crash the process.
    pool.on("error", () => {});
    // ...and so must a checked-out one between statements (a FATAL such as 57P01 arrives with no query to fail).
    pool.on("connect", (client) => client.on("error", () => {}));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    poolStats = () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: pool.options.max ?? 10 });
  } else {
    const file = url.replace(/^sqlite:\/\//, "");
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    const sqlite = new SQLite(file);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    if (file !== ":memory:") {
      sqliteFile = file;
      checkpointer = startCheckpointer(sqlite, file);
    }
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  }
  return {
    db,
    dialect,
    url,
    file: sqliteFile,
    pool: poolStats,
    async close() {
      await db.destroy();
      await checkpointer?.stop();
    },
  };
}

/**
 * Kysely's SQLite driver prepares every statement anew, which costs more than running it. The SQL text of a query is
 * the same on every call (values are bound parameters), so prepared statements are kept in an LRU keyed by the text.
 * Statements are never used concurrently: the driver runs one query at a time on its one connection.
 */
function withStatementCache(sqlite: SQLite.Database, max = 1000) {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      // Transactions take the write lock at BEGIN: with a second writing connection (the queue writer's thread), a
      // deferred transaction that read first could otherwise fail to upgrade (SQLITE_BUSY on a stale snapshot).
      const sql = text === "begin" ? "begin immediate" : text;
      let stmt = cache.get(sql);
      if (stmt) {
        cache.delete(sql);
      } else {
        stmt = sqlite.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, stmt);
      return stmt;
    },
  };
}

export async function migrate(store: Store): Promise<void> {
  // Areas land in any order, so a data dir may have a later-numbered migration before an earlier one arrives.
  const migrator = new Migrator({ db: store.db, provider: migrationProvider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error");
    throw new Error(`migration ${failed?.migrationName ?? "?"} failed: ${(error as Error).message ?? error}`);
  }
}

/** The names of the migrations not yet applied to this store (empty when it is up to date). */
export async function pendingMigrations(store: Store): Promise<string[]> {
  const migrator = new Migrator({ db: store.db, provider: migrationProvider, allowUnorderedMigrations: true });
  return (await migrator.getMigrations()).filter((m) => !m.executedAt).map((m) => m.name);
}

/** Run fn in a transaction. */
export function inTx<T>(db: DB, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}

export const bool = (v: number | boolean | null | undefined) => !!v;
export const int = (v: boolean | undefined | null) => (v ? 1 : 0);
