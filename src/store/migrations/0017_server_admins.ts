import type { Kysely, Migration } from "kysely";
import { createTables, dropTables } from "./ddl.js";

const tables = {
  server_settings: {
    key: "text primary key",
    value: "text not null",
    updated_at: "bigint not null",
  },
};

/**
 * Server administrators (src/admin): users get `is_server_admin` (the bootstrap user is one) and `disabled_at` (a
 * disabled user's tokens stop working); `server_settings` holds the instance-wide settings (sign-up policy).
 */
export const m0017_server_admins: Migration = {
  async up(db: Kysely<any>) {
    await db.schema
      .alterTable("users")
      .addColumn("is_server_admin", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.alterTable("users").addColumn("disabled_at", "bigint").execute();
    await createTables(db, tables);
  },
  async down(db: Kysely<any>) {
    await dropTables(db, tables);
    await db.schema.alterTable("users").dropColumn("disabled_at").execute();
    await db.schema.alterTable("users").dropColumn("is_server_admin").execute();
  },
};
