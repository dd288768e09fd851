import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { newId, newTimeId } from "../core/ids.js";
import { inTx, type DB, type Dialect, type Queryable } from "../store/db.js";
import { notFound } from "../core/errors.js";
import { queuesRepo, queueThreadStatements, seqOf, type MessageRow } from "./repo.js";
import { SqliteQueueThread, type ThreadError } from "./sqlite-thread.js";

interface Pending<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
interface SendOp extends Pending<boolean> {
  roomId: string;
  name: string;
  id: string;
  body: string;
  now: number;
  create: boolean;
}
interface ClaimOp extends Pending<MessageRow[]> {
  roomId: string;
  name: string;
  visibilityMs: number;
  n: number;
}
interface AckOp extends Pending<boolean> {
  id: string;
  token: string;
}

const key = (roomId: string, name: string) => `${roomId}\u0000${name}`;

/**
 * Group commit for the room queues' hot writes: sends, claims and acknowledgements.
 *
 * Calls made while a batch is being written wait and go together into the next transaction, so a burst of N
 * messages costs one commit instead of N. On PostgreSQL the batch is merged by kind to save round trips: the sends
 * are one multi-row INSERT (plus one lookup of their queues), the claims on one queue are one UPDATE … RETURNING of
 * as many messages, and the acknowledgements are one DELETE. On SQLite (a file) the batch runs on the writer thread
 * (sqlite-thread.ts), a cached one-row statement per call. A lone call runs at once, here. Every caller gets its
 * answer only after its batch committed, so a returned `send` is durable. If a batch fails (a queue's room deleted
 * meanwhile, a lost connection), nothing of it committed and its calls are replayed one by one, so only the failing
 * one fails.
 */
export class QueueWriter {
  private sends: SendOp[] = [];
  private claims: ClaimOp[] = [];
  private acks: AckOp[] = [];
  private running = false;
  /** SQLite on a file: batches run on their own connection in a worker thread (sqlite-thread.ts). */
  private thread?: SqliteQueueThread;

  constructor(
    private readonly db: DB,
    private readonly dialect: Dialect,
    private readonly clock: Clock,
    /** Creates a missing queue (the service's rule, errors included), for the one-by-one path. */
    private readonly createQueue: (q: Queryable, roomId: string, name: string, now: number) => Promise<void>,
    /** The database file (SQLite), for the writer thread; none for PostgreSQL or an in-memory database. */
    file?: string,
  ) {
    if (dialect === "sqlite" && file) this.thread = new SqliteQueueThread(file, queueThreadStatements(db));
  }

  /** Where batches run: on the SQLite writer thread, or here (PostgreSQL, an in-memory database, a failed thread). */
  get mode(): "thread" | "inline" {
    return this.thread && !this.thread.failed ? "thread" : "inline";
  }

  /** Stop the writer thread once the batches already handed to it are done. */
  async stop() {
    await this.thread?.stop();
  }

  /** Insert a message; its id, or null when the queue is missing and `create` is false. */
  async send(roomId: string, name: string, body: string, create: boolean): Promise<string | null> {
    const id = newTimeId();
    const ok = await this.enqueue<boolean, SendOp>(this.sends, { roomId, name, body, create, id, now: this.clock.now() });
    return ok ? id : null;
  }

  /** Claim up to `n` of the next visible messages of a queue for `visibilityMs`, in delivery order. */
  claim(roomId: string, name: string, visibilityMs: number, n = 1): Promise<MessageRow[]> {
    return this.enqueue(this.claims, { roomId, name, visibilityMs, n });
  }

  /** Delete a claimed message if the claim is still held. */
  ack(id: string, token: string): Promise<boolean> {
    return this.enqueue(this.acks, { id, token });
  }

  private enqueue<T, O extends Pending<T>>(list: O[], op: Omit<O, "resolve" | "reject">): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      list.push({ ...op, resolve, reject } as O);
      if (!this.running) {
        this.running = true;
        // Let the rest of this turn of the event loop (the other frames of one socket read, say) join the batch.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain() {
    // write() never throws (every outcome goes to its caller); what arrives meanwhile is the next batch.
    while (this.sends.length || this.claims.length || this.acks.length) {
      const batch = { sends: this.sends, claims: this.claims, acks: this.acks };
      this.sends = [];
      this.claims = [];
      this.acks = [];
      await this.write(batch);
    }
    this.running = false;
  }

  private async write(b: { sends: SendOp[]; claims: ClaimOp[]; acks: AckOp[] }) {
    const n = b.sends.length + b.claims.length + b.acks.length;
    // A lone call runs right here (a hop to the thread would cost more than its statement); the thread is idle
    // then (it only ever runs this loop's batches, one at a time), so the two connections do not contend.
    if (n > 1 && this.thread && !this.thread.failed) return this.writeOnThread(this.thread, b);
    if (n > 1) {
      let settle: (() => void) | undefined;
      try {
        settle = await inTx(this.db, (tx) => this.merged(tx, b));
      } catch {
        settle = undefined; // nothing committed: replay one by one below
      }
      if (settle) return settle();
    }
    for (const op of b.sends) await this.sendOne(op).then(op.resolve, op.reject);
    for (const op of b.acks) await queuesRepo.ack(this.db, op.id, op.token).then(op.resolve, op.reject);
    for (const op of b.claims) {
      const now = this.clock.now();
      await queuesRepo.claimMany(this.db, this.dialect, op.roomId, op.name, now, now + op.visibilityMs, token(), op.n).then(op.resolve, op.reject);
    }
  }

  private async writeOnThread(thread: SqliteQueueThread, b: { sends: SendOp[]; claims: ClaimOp[]; acks: AckOp[] }) {
    const now = this.clock.now();
    let r;
    try {
      r = await thread.run({
        now,
        sends: b.sends.map((s) => ({ roomId: s.roomId, name: s.name, id: s.id, body: s.body, now: s.now, create: s.create })),
        claims: b.claims.map((c) => ({ roomId: c.roomId, name: c.name, visibleUntil: now + c.visibilityMs, token: token(), n: c.n })),
        acks: b.acks.map((a) => ({ id: a.id, token: a.token, seq: seqOf(a.token) })),
      });
    } catch (e) {
      for (const op of [...b.sends, ...b.claims, ...b.acks]) op.reject(e);
      return;
    }
    const settle = <T>(op: Pending<T>, v: T | ThreadError) => {
      if (v && typeof v === "object" && "error" in v) {
        // a queue created for a room deleted meanwhile: the same answer as the one-by-one path gives
        if (v.error.code === "SQLITE_CONSTRAINT_FOREIGNKEY") op.reject(notFound("room"));
        else op.reject(new Error(v.error.message));
      } else op.resolve(v as T);
    };
    b.sends.forEach((op, i) => settle(op, r.sends[i]));
    b.claims.forEach((op, i) => settle(op, r.claims[i]));
    b.acks.forEach((op, i) => settle(op, r.acks[i]));
  }

  private async sendOne(op: SendOp): Promise<boolean> {
    const m = { id: op.id, body: op.body, now: op.now };
    if (await queuesRepo.insertMessage(this.db, op.roomId, op.name, m)) return true;
    if (!op.create) return false;
    await this.createQueue(this.db, op.roomId, op.name, op.now);
    return queuesRepo.insertMessage(this.db, op.roomId, op.name, m);
  }

  /** The whole batch in the caller's transaction; returns how to answer the callers once it committed. */
  private async merged(tx: Queryable, b: { sends: SendOp[]; claims: ClaimOp[]; acks: AckOp[] }): Promise<() => void> {
    const answers: (() => void)[] = [];

    if (b.sends.length) {
      const wanted = new Map<string, { roomId: string; name: string; create: boolean }>();
      for (const s of b.sends) {
        const w = wanted.get(key(s.roomId, s.name));
        if (w) w.create ||= s.create;
        else wanted.set(key(s.roomId, s.name), { roomId: s.roomId, name: s.name, create: s.create });
      }
      const now = this.clock.now();
      const toCreate = [...wanted.values()].filter((w) => w.create);
      if (toCreate.length)
        await queuesRepo.ensureQueues(
          tx,
          toCreate.map((w) => ({ id: newId(), room_id: w.roomId, name: w.name, created_at: now })),
        );
      const all = [...wanted.values()];
      const found = await queuesRepo.queuesOf(tx, [...new Set(all.map((w) => w.roomId))], [...new Set(all.map((w) => w.name))]);
      const ids = new Map(found.map((r) => [key(r.room_id, r.name), r.id]));
      const rows: { id: string; queue_id: string; body: string; now: number }[] = [];
      for (const s of b.sends) {
        const queueId = ids.get(key(s.roomId, s.name));
        if (queueId) rows.push({ id: s.id, queue_id: queueId, body: s.body, now: s.now });
        answers.push(() => s.resolve(!!queueId));
      }
      await queuesRepo.insertMessages(tx, rows, this.dialect);
    }

    if (b.acks.length) {
      const gone = await queuesRepo.ackMany(
        tx,
        this.dialect,
        b.acks.map((a) => a.id),
        b.acks.map((a) => a.token),
      );
      const done = new Set(gone.map((r) => `${r.id}\u0000${r.claim_token}`));
      for (const a of b.acks) answers.push(() => a.resolve(done.has(`${a.id}\u0000${a.token}`)));
    }

    if (b.claims.length) {
      // One statement per queue (and visibility timeout), for as many messages as its claimers in this batch want.
      const groups = new Map<string, ClaimOp[]>();
      for (const c of b.claims) {
        const k = `${key(c.roomId, c.name)}\u0000${c.visibilityMs}`;
        const g = groups.get(k);
        if (g) g.push(c);
        else groups.set(k, [c]);
      }
      const now = this.clock.now();
      for (const g of groups.values()) {
        const { roomId, name, visibilityMs } = g[0];
        const rows = await queuesRepo.claimMany(
          tx,
          this.dialect,
          roomId,
          name,
          now,
          now + visibilityMs,
          token(),
          g.reduce((t, c) => t + c.n, 0),
        );
        let at = 0;
        for (const c of g) {
          const mine = rows.slice(at, (at += c.n));
          answers.push(() => c.resolve(mine));
        }
      }
    }

    return () => answers.forEach((a) => a());
  }
}

function token() {
  return randomBytes(16).toString("base64url");
}
