import { inTx, type DB, type Queryable } from "./db.js";

interface Op {
  fn: (q: Queryable) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for small, hot writes (room queue sends, claims, acknowledgements).
 *
 * Operations submitted while a batch is being written wait and go together into the next transaction, so a burst
 * of N writes costs one commit (one WAL append on SQLite, one WAL flush on PostgreSQL) instead of N. A lone
 * operation runs at once, without a transaction of its own. Each caller gets its result only after its batch
 * committed, so "the call returned" still means "it is durable". If a batch fails, nothing of it committed and its
 * operations are replayed one by one, so one failing operation (a queue that was deleted, a constraint) fails only
 * its own caller.
 *
 * Operations must therefore be correct both alone (each statement committing by itself) and in a transaction they
 * share with others: idempotent steps, no reliance on atomicity across their statements, no side effects besides
 * the database (do those once the result is back).
 */
export class TxBatcher {
  private pending: Op[] = [];
  private running = false;

  constructor(
    private readonly db: DB,
    private readonly maxBatch = 512,
  ) {}

  run<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) {
        this.running = true;
        // Let the rest of this turn of the event loop (the other frames of one socket read, say) join the batch.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain() {
    // write() never throws (every outcome goes to its caller), and whatever arrives while a batch is written is
    // picked up by the next turn of this loop.
    while (this.pending.length) await this.write(this.pending.splice(0, this.maxBatch));
    this.running = false;
  }

  private async write(batch: Op[]) {
    if (batch.length === 1) {
      await batch[0].fn(this.db).then(batch[0].resolve, batch[0].reject);
      return;
    }
    let results: unknown[];
    try {
      results = await inTx(this.db, async (tx) => {
        const out: unknown[] = [];
        for (const op of batch) out.push(await op.fn(tx));
        return out;
      });
    } catch {
      // Nothing of the batch committed: run each operation alone, so only the failing one fails.
      for (const op of batch) await op.fn(this.db).then(op.resolve, op.reject);
      return;
    }
    batch.forEach((op, i) => op.resolve(results[i]));
  }
}
