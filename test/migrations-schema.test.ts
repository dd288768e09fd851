import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { sql, type Kysely } from "kysely";
import { migrate, openStore } from "../src/store/db.js";

/**
 * The schema the migrations build, on each dialect, is exactly the one in test/fixtures/schema-<dialect>.txt. A new
 * migration changes it on purpose: rewrite the files with UPDATE_SCHEMA_FIXTURES=1 (and a PostgreSQL URL in
 * MESHAGENT_TEST_DATABASE_URL for the PostgreSQL one) and review the diff. Anything else that changes it (a
 * refactoring of the migrations, a Kysely upgrade compiling them differently) is a bug: databases that already ran
 * the migrations would differ from new ones.
 */
const PG_URL = process.env.MESHAGENT_TEST_DATABASE_URL;
const FIXTURES = join(import.meta.dirname, "fixtures");

function expectFixture(dialect: string, dump: string) {
  const file = join(FIXTURES, `schema-${dialect}.txt`);
  if (process.env.UPDATE_SCHEMA_FIXTURES) writeFileSync(file, dump);
  expect(dump).toBe(readFileSync(file, "utf8"));
}

const line = (what: string, row: unknown) => `${what} ${JSON.stringify(row)}`;

/** sqlite_master and, per table, its columns, indexes (with their columns) and foreign keys. */
async function sqliteSchema(db: Kysely<any>): Promise<string> {
  const out: string[] = [];
  const master = await sql<any>`SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name NOT LIKE 'kysely_migration%' ORDER BY name`.execute(db);
  const pragma = async (name: string, arg: string) => (await sql.raw(`PRAGMA ${name}("${arg}")`).execute(db)).rows as any[];
  for (const r of master.rows) out.push(line("master", r));
  for (const { name: t } of master.rows.filter((r) => r.type === "table")) {
    for (const c of await pragma("table_info", t)) out.push(line(`table_info ${t}`, c));
    for (const i of await pragma("index_list", t)) {
      out.push(line(`index_list ${t}`, i));
      for (const x of await pragma("index_xinfo", i.name)) out.push(line(`index_xinfo ${i.name}`, x));
    }
    for (const f of await pragma("foreign_key_list", t)) out.push(line(`foreign_key_list ${t}`, f));
  }
  return out.join("\n") + "\n";
}

/** Columns, constraints, indexes and sequences of the public schema. */
async function postgresSchema(db: Kysely<any>): Promise<string> {
  const queries = {
    column: sql`
      SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable, column_default, collation_name,
             is_identity, numeric_precision
      FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely_migration%'
      ORDER BY table_name, ordinal_position`,
    constraint: sql`
      SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype, pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'public' AND c.conrelid::regclass::text NOT LIKE 'kysely_migration%' ORDER BY 1, 2`,
    index: sql`
      SELECT tablename, indexname, indexdef FROM pg_indexes
      WHERE schemaname = 'public' AND tablename NOT LIKE 'kysely_migration%' ORDER BY 1, 2`,
    sequence: sql`SELECT sequencename, data_type, start_value::text, increment_by::text FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1`,
  };
  const out: string[] = [];
  for (const [what, query] of Object.entries(queries)) for (const r of (await query.execute(db)).rows) out.push(line(what, r));
  return out.join("\n") + "\n";
}

describe("migrations build the recorded schema", () => {
  it("on SQLite", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshagent-schema-"));
    const store = openStore(`sqlite://${join(dir, "schema.db")}`);
    try {
      await migrate(store);
      expectFixture("sqlite", await sqliteSchema(store.db));
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!PG_URL)("on PostgreSQL", async () => {
    const name = `mt_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${name}`);
      const url = new URL(PG_URL!);
      url.pathname = `/${name}`;
      const store = openStore(url.toString(), { pool: 2 });
      try {
        await migrate(store);
        expectFixture("postgres", await postgresSchema(store.db));
      } finally {
        await store.close();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });
});
