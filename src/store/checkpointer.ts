import type SQLite from "better-sqlite3";
import { startSqliteWorker } from "./sqlite-worker.js";

// Runs in the worker thread (CommonJS): its own connection to the same file, checkpointing on a timer.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 5000");
const checkpoint = () => { try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {} };
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;

/**
 * SQLite WAL checkpoints off the event loop.
 *
 * With the default auto-checkpoint, the commit that pushes the WAL past 1000 pages copies them into the database
 * file and fsyncs it, inside that commit, on the event loop: under a steady stream of small writes (room queues)
 * that is a pause of milliseconds every few hundred commits. Here the server's connection does no checkpoints; a
 * worker thread with its own connection runs a PASSIVE checkpoint every `intervalMs` (it never blocks the writer;
 * the next write after a complete checkpoint starts the WAL over). Should the worker die, the connection goes back
 * to auto-checkpointing, so the WAL never grows without bound.
 */
export function startCheckpointer(sqlite: SQLite.Database, file: string, intervalMs = 200): { stop(): Promise<void> } {
  const { worker, stop } = startSqliteWorker(WORKER, { file, intervalMs });
  let stopping = false;
  const fallback = () => {
    if (stopping || !sqlite.open) return;
    sqlite.pragma("wal_autocheckpoint = 1000");
  };
  worker.on("error", fallback);
  worker.on("exit", fallback);
  sqlite.pragma("wal_autocheckpoint = 0");
  return {
    stop() {
      stopping = true;
      return stop(); // after a last checkpoint
    },
  };
}
