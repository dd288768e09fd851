/** A unique-constraint violation on either dialect (PostgreSQL 23505; SQLite UNIQUE or PRIMARY KEY). */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null | undefined)?.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}

/**
 * A value the store cannot hold, whatever the caller meant: PostgreSQL's data exceptions (SQLSTATE class 22: a NUL
 * character in text, a number out of range, an invalid date or text representation), better-sqlite3's RangeError for
 * an integer too large to bind, SQLite's SQLITE_TOOBIG. Input that gets this far is answered with a 400 (app.ts's
 * error handler), not a 500; the URL and JSON bodies refuse NUL characters before this, on both stores.
 */
export function isDataException(e: unknown): boolean {
  const x = e as { code?: unknown; severity?: unknown; name?: unknown; message?: unknown } | null | undefined;
  if (!x) return false;
  if (typeof x.code === "string" && typeof x.severity === "string" && /^22[0-9A-Z]{3}$/.test(x.code)) return true;
  if (x.code === "SQLITE_TOOBIG") return true;
  return x.name === "RangeError" && typeof x.message === "string" && /BigInt|too large to be represented/i.test(x.message);
}
