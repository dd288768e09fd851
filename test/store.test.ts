import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { ROOT, TSX_LOADER } from "./helpers/process.js";
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

  it("a process that opens the services, uses the queue writer thread and closes them runs to its end", () => {
    // The worker threads (queue writer, checkpointer) do not keep a process alive, but closing waits for them:
    // nothing else may be left for the event loop meanwhile, or a top-level `await ctx.close()` never settles.
    const dir = mkdtempSync(join(tmpdir(), "meshagent-store-"));
    try {
      const script = join(dir, "close.mts");
      const services = pathToFileURL(join(ROOT, "src/wiring.ts")).href;
      const config = pathToFileURL(join(ROOT, "src/config.ts")).href;
      const rooms = pathToFileURL(join(ROOT, "test/helpers/rooms.ts")).href;
      writeFileSync(
        script,
        `import { createContext } from ${JSON.stringify(services)};
import { loadConfig } from ${JSON.stringify(config)};
import { createRoom } from ${JSON.stringify(rooms)};
import { bootstrap } from ${JSON.stringify(pathToFileURL(join(ROOT, "src/bootstrap.ts")).href)};
const ctx = await createContext(loadConfig({ MESHAGENT_DATA_DIR: ${JSON.stringify(dir)}, MESHAGENT_LOG_LEVEL: "warn" }));
const b = await bootstrap(ctx, { email: "close@example.com", project: "p" });
const room = await createRoom(ctx, b.project_id, "r");
await Promise.all([1, 2, 3].map((i) => ctx.queues.send(room.id, "q", i)));
if (ctx.queues.writerMode !== "thread") throw new Error("writer not on its thread");
await ctx.close();
console.log("closed");
`,
      );
      const out = execFileSync(process.execPath, ["--import", TSX_LOADER, script], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
      expect(out.trim().split("\n").pop()).toBe("closed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
