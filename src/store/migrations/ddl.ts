import {
  SqliteAdapter,
  type ColumnDataType,
  type ColumnDefinitionBuilder,
  type CreateTableBuilder,
  type Kysely,
  type Migration,
  type OnModifyForeignAction,
} from "kysely";

/**
 * Tables for migrations, written as data and built with Kysely's schema builder (so each dialect compiles them as
 * Kysely compiles hand-written `createTable().addColumn(...)` calls). A table maps its entries, in order, to SQL-like
 * text:
 *
 * - a column: `name: "type modifiers"`. Types: text, integer, bigint, double precision, and bigserial (for a
 *   `bigserial primary key`: PostgreSQL's bigserial; on SQLite `integer primary key autoincrement`). Modifiers: `primary key`, `not null`,
 *   `unique`, `default <number>`, `references <table>.<column>`, `on delete <action>`.
 * - a table constraint: `"constraint <name>": "primary key (a, b)"` or `"unique (a, b)"`.
 * - an index, created right after its table: `"index <name>": "(a, b)"`, or `"unique index <name>"`.
 *
 * Anything else throws, so a typo fails the migration instead of changing the schema. Released migrations run
 * through this module: a change here must not change what they build (test/migrations-schema.test.ts checks that).
 */
export type Tables = Record<string, Record<string, string>>;

/** A migration that creates `tables` in order, and whose down drops them in reverse order. */
export function tablesMigration(tables: Tables): Migration {
  return { up: (db) => createTables(db, tables), down: (db) => dropTables(db, tables) };
}

export async function createTables(db: Kysely<any>, tables: Tables): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  for (const [table, entries] of Object.entries(tables)) {
    let builder: CreateTableBuilder<any, any> = db.schema.createTable(table);
    const indexes: [name: string, unique: boolean, columns: string[]][] = [];
    for (const [key, text] of Object.entries(entries)) {
      const [, unique, index, constraint] = /^(?:(unique )?index (\w+)|constraint (\w+))$/.exec(key) ?? [];
      if (index) indexes.push([index, !!unique, columnList(text, `${table}: ${key}`)]);
      else if (constraint) builder = tableConstraint(builder, constraint, text, table);
      else builder = column(builder, key, text, sqlite, table);
    }
    await builder.execute();
    for (const [name, unique, columns] of indexes) {
      const index = db.schema.createIndex(name).on(table).columns(columns);
      await (unique ? index.unique() : index).execute();
    }
  }
}

export async function dropTables(db: Kysely<any>, tables: Tables): Promise<void> {
  for (const table of Object.keys(tables).reverse()) await db.schema.dropTable(table).execute();
}

const TYPE = /^(text|integer|bigint|double precision|bigserial)\b/;
const MODIFIER =
  /\s+(primary key|not null|unique|default (-?\d+(?:\.\d+)?)|references (\w+\.\w+)|on delete (cascade|set null|restrict|no action|set default))\b/y;

function column(builder: CreateTableBuilder<any, any>, name: string, text: string, sqlite: boolean, table: string) {
  const type = TYPE.exec(text)?.[1] as ColumnDataType | undefined;
  if (!type) throw new Error(`${table}.${name}: unknown type in "${text}"`);
  const serial = type === "bigserial" && sqlite;
  const steps: ((c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder)[] = [];
  for (let at = type.length; at < text.length; at = MODIFIER.lastIndex) {
    MODIFIER.lastIndex = at;
    const m = MODIFIER.exec(text);
    if (!m) throw new Error(`${table}.${name}: cannot read "${text.slice(at)}" in "${text}"`);
    const [, phrase, value, target, action] = m;
    if (value !== undefined) steps.push((c) => c.defaultTo(Number(value)));
    else if (target) steps.push((c) => c.references(target));
    else if (action) steps.push((c) => c.onDelete(action as OnModifyForeignAction));
    else if (phrase === "primary key") steps.push((c) => (serial ? c.primaryKey().autoIncrement() : c.primaryKey()));
    else steps.push(phrase === "not null" ? (c) => c.notNull() : (c) => c.unique());
  }
  return builder.addColumn(name, serial ? "integer" : type, (c) => steps.reduce((b, step) => step(b), c));
}

function tableConstraint(builder: CreateTableBuilder<any, any>, name: string, text: string, table: string) {
  const [, kind, list] = /^(primary key|unique) (\(.*\))$/.exec(text) ?? [];
  const columns = columnList(list ?? "", `${table}: constraint ${name}`);
  return kind === "primary key" ? builder.addPrimaryKeyConstraint(name, columns) : builder.addUniqueConstraint(name, columns);
}

/** `(a, b)` → ["a", "b"] */
function columnList(text: string, where: string): string[] {
  const inner = /^\((\w+(?:, \w+)*)\)$/.exec(text)?.[1];
  if (!inner) throw new Error(`${where}: expected "(column, …)", got "${text}"`);
  return inner.split(", ");
}
