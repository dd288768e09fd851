import type { Worker } from "node:worker_threads";
import { startSqliteWorker } from "../store/sqlite-worker.js";
import type { MessageRow } from "./repo.js";

type Statement = { sql: string; slots: number[] };
export type ThreadStatements = Record<"insert" | "ensureQueue" | "readySeqs" | "claimSeq" | "ackSeq" | "ack", Statement>;

export interface ThreadBatch {
  now: number;
  sends: { roomId: string; name: string; id: string; body: string; now: number; create: boolean }[];
  claims: { roomId: string; name: string; visibleUntil: number; token: string; n: number }[];
  /** `seq`: the row's sequence number from the receipt (queuesRepo's seqOf), null for a receipt without one. */
  acks: { id: string; token: string; seq: number | null }[];
}
/** Per operation: its result, or the error it failed with (the batch was then replayed one operation at a time). */
export type ThreadError = { error: { code?: string; message: string } };
export interface ThreadResult {
  sends: (boolean | ThreadError)[];
  claims: (MessageRow[] | ThreadError)[];
  acks: (boolean | ThreadError)[];
}

// Runs in the worker thread (CommonJS). The SQL comes from queues/repo.ts (queueThreadStatements); this only runs it.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { randomUUID } = require("node:crypto");
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 5000");
db.pragma("foreign_keys = ON");
db.pragma("synchronous = NORMAL");
db.pragma("wal_autocheckpoint = 0"); // the checkpointer thread does it
const S = {};
for (const [k, v] of Object.entries(workerData.statements)) S[k] = { stmt: db.prepare(v.sql), slots: v.slots };
const all = (s, args) => s.stmt.all(s.slots.map((i) => args[i]));
const run = (s, args) => s.stmt.run(s.slots.map((i) => args[i]));

function send(s) {
  const args = [s.id, s.body, s.now, s.roomId, s.name];
  if (all(S.insert, args).length) return true;
  if (!s.create) return false;
  run(S.ensureQueue, [randomUUID(), s.roomId, s.name, s.now]);
  return all(S.insert, args).length > 0;
}
function ack(a) {
  return (a.seq === null ? all(S.ack, [a.id, a.token]) : all(S.ackSeq, [a.seq, a.id, a.token])).length > 0;
}
function claim(c, now) {
  const rows = [];
  for (const { seq } of all(S.readySeqs, [c.roomId, c.name, now, c.n])) rows.push(...all(S.claimSeq, [c.visibleUntil, c.token + "." + seq, seq, now]));
  return rows;
}
const batch = db.transaction((b) => ({ sends: b.sends.map(send), claims: b.claims.map((c) => claim(c, b.now)), acks: b.acks.map(ack) }));
const alone = (fn) => {
  try {
    return db.transaction(fn)();
  } catch (e) {
    return { error: { code: e && e.code, message: String((e && e.message) || e) } };
  }
};

parentPort.on("message", (m) => {
  if (m === "stop") {
    db.close();
    parentPort.close();
    return;
  }
  const b = m.batch;
  let r;
  try {
    r = batch(b);
  } catch {
    // nothing of the batch committed: each operation alone, so only the failing one fails
    r = { sends: b.sends.map((s) => alone(() => send(s))), claims: b.claims.map((c) => alone(() => claim(c, b.now))), acks: b.acks.map((a) => alone(() => ack(a))) };
  }
  parentPort.postMessage({ id: m.id, r });
});
`;

/**
 * The SQLite queue writer's own thread: a second connection to the database file that runs each group-commit batch
 * of room-queue writes (sends, claims, acknowledgements) as one transaction, off the event loop. Those statements
 * and their commits are most of what a queued message costs, so moving them here roughly halves the event loop's
 * work per message. The server's connection starts its own transactions with BEGIN IMMEDIATE (store/db.ts), so two
 * writers never deadlock or fail on a stale snapshot; they take turns on SQLite's write lock.
 */
export class SqliteQueueThread {
  private worker: Worker;
  private readonly stopWorker: () => Promise<void>;
  private pending = new Map<number, { resolve: (r: ThreadResult) => void; reject: (e: unknown) => void }>();
  private next = 0;
  private stopping = false;
  /** Set when the thread died: the writer then goes back to running batches itself. */
  failed = false;

  constructor(file: string, statements: ThreadStatements) {
    const { worker, stop } = startSqliteWorker(WORKER, { file, statements });
    this.worker = worker;
    this.stopWorker = stop;
    this.worker.on("message", (m: { id: number; r: ThreadResult }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m.r);
    });
    const fail = (e: unknown) => {
      if (this.stopping) return;
      this.failed = true;
      const err = e instanceof Error ? e : new Error("the queue writer thread stopped");
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", fail);
  }

  run(batch: ThreadBatch): Promise<ThreadResult> {
    return new Promise((resolve, reject) => {
      const id = this.next++;
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, batch });
    });
  }

  async stop() {
    if (this.stopping || this.failed) return;
    this.stopping = true;
    await this.stopWorker(); // after the batches already handed over
  }
}
