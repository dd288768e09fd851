import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Transaction } from "kysely";
import SQLite from "better-sqlite3";
import pg from "pg";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Database } from "./schema.js";
import { migrationProvider } from "./migrations/index.js";

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
  close(): Promise<void>;
}

export function openStore(url: string): Store {
  const dialect = dialectOf(url);
  let db: DB;
  if (dialect === "postgres") {
    const pool = new pg.Pool({ connectionString: url, max: Number(process.env.MESHAGENT_DB_POOL || 10) });
    // An idle client erroring (e.g. the server restarting) must not crash the process.
    pool.on("error", () => {});
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    const file = url.replace(/^sqlite:\/\//, "");
    if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
    const sqlite = new SQLite(file);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  }
  return { db, dialect, url, close: () => db.destroy() };
}

/**
 * Kysely's SQLite driver prepares every statement anew; preparing costs more than running a point lookup. Keep the
 * prepared statements by SQL text (bounded, least recently used out). Safe: Kysely runs one query at a time on the
 * connection, and SQLite re-prepares a cached statement by itself after a schema change.
 */
function withStatementCache(sqlite: SQLite.Database, max = 1000): SQLite.Database {
  const cache = new Map<string, SQLite.Statement>();
  const prepare = (text: string) => {
    let st = cache.get(text);
    if (st) {
      cache.delete(text);
      cache.set(text, st);
      return st;
    }
    st = sqlite.prepare(text);
    if (cache.size >= max) cache.delete(cache.keys().next().value!);
    cache.set(text, st);
    return st;
  };
  return new Proxy(sqlite, {
    get(target, prop) {
      if (prop === "prepare") return prepare;
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

export async function migrate(store: Store): Promise<void> {
  const migrator = new Migrator({ db: store.db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error");
    throw new Error(`migration ${failed?.migrationName ?? "?"} failed: ${(error as Error).message ?? error}`);
  }
}

/** Run fn in a transaction. */
export function inTx<T>(db: DB, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}

export const bool = (v: number | boolean | null | undefined) => !!v;
export const int = (v: boolean | undefined | null) => (v ? 1 : 0);
