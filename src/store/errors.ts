/** A unique-constraint violation on either dialect (PostgreSQL 23505; SQLite UNIQUE or PRIMARY KEY). */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null | undefined)?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
