/**
 * Bulk loader for rooms: generates rows inside the database (a recursive CTE on SQLite, generate_series on
 * PostgreSQL), in transactions of 100k rows, and keeps the project's room counter exact.
 *
 *   npx tsx bench/rooms-load.ts <database-url> <project-id> <count> [start-index]
 *
 * Room i is named r<7-digit permutation of i> (so name order is unrelated to creation order) and created at
 * 2026-01-01 + i ms. Indexes [start, start+count) must not overlap an earlier load of the same project.
 */
import { sql } from "kysely";
import { pathToFileURL } from "node:url";
import { migrate, openStore, type Store } from "../src/store/db.js";
import { roomsRepo } from "../src/rooms/repo.js";

const BASE = Date.UTC(2026, 0, 1);
const SPACE = 10_000_000; // names are a permutation of [0, SPACE)
const STEP = 7919; // prime, coprime with SPACE
const CHUNK = 100_000;

export async function loadRooms(store: Store, projectId: string, count: number, start = 0): Promise<void> {
  const { db } = store;
  for (let lo = start; lo < start + count; lo += CHUNK) {
    const hi = Math.min(lo + CHUNK, start + count); // [lo, hi)
    await db.transaction().execute(async (tx) => {
      if (store.dialect === "postgres") {
        await sql`INSERT INTO rooms (id, project_id, name, metadata, annotations, created_at, updated_at)
          SELECT gen_random_uuid()::text, ${projectId}, 'r' || lpad(((i::bigint * ${STEP}) % ${SPACE})::text, 7, '0'),
                 '{}', '{}', ${BASE}::bigint + i, ${BASE}::bigint + i
          FROM generate_series(${lo}::int, ${hi - 1}::int) AS i`.execute(tx);
      } else {
        await sql`WITH RECURSIVE seq(i) AS (SELECT ${lo} UNION ALL SELECT i + 1 FROM seq WHERE i < ${hi - 1})
          INSERT INTO rooms (id, project_id, name, metadata, annotations, created_at, updated_at)
          SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' ||
                       substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
                 ${projectId}, printf('r%07d', (i * ${STEP}) % ${SPACE}), '{}', '{}', ${BASE} + i, ${BASE} + i
          FROM seq`.execute(tx);
      }
      await roomsRepo.bumpCount(tx, projectId, hi - lo);
    });
  }
  if (store.dialect === "postgres") await sql`VACUUM ANALYZE rooms`.execute(db);
  else await sql`ANALYZE`.execute(db);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [url, projectId, n, start] = process.argv.slice(2);
  if (!url || !projectId || !n) {
    console.error("usage: npx tsx bench/rooms-load.ts <database-url> <project-id> <count> [start-index]");
    process.exit(2);
  }
  const store = openStore(url);
  await migrate(store);
  const t0 = performance.now();
  await loadRooms(store, projectId, Number(n), Number(start ?? 0));
  console.log(`loaded ${n} rooms into ${projectId} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await store.close();
}
