import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { openStore } from "../src/store/db.js";
import { until } from "./helpers/room-client.js";

describe("SQLite store", () => {
  it("checkpoints the WAL off the event loop: commits never checkpoint, yet the database file catches up", async () => {
    const dir = mkdtempSync(join(tmpdir(), "meshagent-store-"));
    const file = join(dir, "x.db");
    const store = openStore(`sqlite://${file}`);
    try {
      expect((await sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`.execute(store.db)).rows[0].wal_autocheckpoint).toBe(0);
      await sql`CREATE TABLE t (x TEXT)`.execute(store.db);
      const before = statSync(file).size;
      const filler = "x".repeat(4000);
      for (let i = 0; i < 300; i++) await sql`INSERT INTO t VALUES (${filler})`.execute(store.db); // 300 commits, ~300 pages
      // the pages are in the WAL; the worker's checkpoint copies them into the database file
      await until(async () => statSync(file).size > before + 300 * 4000, 5000, "checkpoint by the worker");
      expect((await sql<{ n: number }>`SELECT count(*) AS n FROM t`.execute(store.db)).rows[0].n).toBe(300);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
