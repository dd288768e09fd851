import type { Clock } from "../core/clock.js";
import { ApiError, badRequest, notFound, quote } from "../core/errors.js";
import { newId, newTimeId } from "../core/ids.js";
import type { Invalidator } from "../core/invalidation.js";
import type { Queryable, Store } from "../store/db.js";
import { queuesRepo, type MessageRow } from "./repo.js";
import { QueueWriter } from "./writer.js";

/** A claimed message. Acknowledge it with `ack(msg)`; unacknowledged, it is delivered again after its visibility timeout. */
export interface QueueMessage<T = unknown> {
  id: string;
  room_id: string;
  queue: string;
  message: T;
  enqueued_at: number;
  /** How many times the message has been claimed, this claim included. */
  attempts: number;
  /** Proof of this claim: `ack` and `release` need it, so a late consumer cannot remove a message someone else holds. */
  receipt: string;
  /** When this claim ends and the message becomes visible again (epoch ms, service clock). */
  visible_until: number;
}

export interface QueueInfo {
  name: string;
  /** Messages not yet acknowledged (claimed ones included). The room protocol's `size`. */
  size: number;
  /** Messages claimable now. */
  ready: number;
  created_at: number;
}

export interface ReceiveOptions {
  /** Create the queue when missing (default true); false makes a missing queue an error. */
  create?: boolean;
  /** Long poll: keep waiting until a message arrives (default false). */
  wait?: boolean;
  /** Upper bound of the wait in ms (default: no bound; use `signal` to stop waiting). */
  timeoutMs?: number;
  /** Stops a waiting receive (it then returns null). */
  signal?: AbortSignal;
  /** How long the claim hides the message from other receivers (default the service's visibility timeout). */
  visibilityMs?: number;
  /**
   * Claim ahead (the room server's `queues.receive`): when a queue has a backlog, one claim takes several messages
   * for the receives expected next in this process; they are handed out from memory, in order. Each stays a claim
   * in the store, so a crash delivers them again after the visibility timeout; unused for AHEAD_IDLE_MS, they are
   * given back. Ignored with a custom `visibilityMs`.
   */
  ahead?: boolean;
}

/** Claim-ahead bounds: at most this many messages per queue and process, given back after this long unused. */
const AHEAD_MAX = 64;
const AHEAD_IDLE_MS = 1_000;

interface Ahead {
  rows: MessageRow[];
  /** How many to claim next: doubles while claims come back full (a backlog), halves when they do not. */
  want: number;
  claiming?: Promise<boolean>;
  usedAt: number;
}

export const MAX_QUEUE_NAME = 256;
const TOPIC = "queue";

export const queueNotFound = (name: string) => new ApiError(404, "queue_not_found", `queue ${quote(name)} not found`);

/** Queue names: 1–256 characters, no control characters, no surrounding whitespace. The same rule for every caller. */
export function checkQueueName(name: unknown, field = "name"): string {
  if (typeof name !== "string" || name.length === 0) throw badRequest(`${field} must be a non-empty string`);
  if (name.length > MAX_QUEUE_NAME) throw badRequest(`${field} must be at most ${MAX_QUEUE_NAME} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw badRequest(`${field} must not contain control characters`);
  if (name.trim() !== name) throw badRequest(`${field} must not start or end with whitespace`);
  return name;
}

function encode(message: unknown): string {
  let body: string | undefined;
  try {
    body = JSON.stringify(message);
  } catch {
    body = undefined;
  }
  if (body === undefined) throw badRequest("message must be a JSON value");
  return body;
}

/**
 * Durable room queues, shared by mailboxes, scheduled tasks and the room server (`queues.*` toolkit).
 *
 * Every message is a row before `send` returns. `receive` claims the next visible message for a visibility
 * timeout; `ack` removes it. A message claimed and never acknowledged (its consumer died) is delivered again once
 * the timeout passes, so delivery is at-least-once. Order: new messages strictly first-in first-out; a message
 * delivered again (claim timed out, or released) queues up behind the messages never delivered yet. On PostgreSQL claims use FOR UPDATE SKIP LOCKED, so any number of
 * server processes can receive from one queue without blocking each other or double-delivering.
 *
 * Long polls never busy-loop: a waiting receive sleeps until `send` wakes it (in this process directly, in other
 * processes through the invalidator: LISTEN/NOTIFY on PostgreSQL) and re-checks every `recheckMs` as a safety net
 * (a lost notification, a claim that timed out).
 */
export class QueuesService {
  private waiters = new Map<string, Set<() => void>>();
  private stopped = false;
  private outgoing = new Set<string>();
  private ahead = new Map<string, Ahead>();
  private sweeper?: NodeJS.Timeout;
  private flushing = false;
  /** Group commit of the hot writes (send, claim, ack): a burst of them costs a few statements and one commit. */
  private readonly writer: QueueWriter;
  readonly visibilityMs: number;
  readonly recheckMs: number;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly invalidator: Invalidator,
    opts: { visibilityMs?: number; recheckMs?: number } = {},
  ) {
    this.visibilityMs = opts.visibilityMs ?? 30_000;
    this.recheckMs = opts.recheckMs ?? 2_000;
    this.writer = new QueueWriter(store.db, store.dialect, clock, (q, roomId, name, now) => this.create(q, roomId, name, now), store.file);
    invalidator.subscribe(TOPIC, (key) => (key === "*" ? this.wakeAll() : this.wake(key)));
  }

  private get db() {
    return this.store.db;
  }

  private static key(roomId: string, name: string) {
    return `${roomId}/${name}`;
  }

  /** Create the queue when missing. Idempotent. */
  async open(roomId: string, name: string, q: Queryable = this.db): Promise<void> {
    checkQueueName(name);
    await this.create(q, roomId, name, this.clock.now());
  }

  private async create(q: Queryable, roomId: string, name: string, now: number) {
    try {
      await queuesRepo.ensureQueue(q, { id: newId(), room_id: roomId, name, created_at: now });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "23503" || code === "SQLITE_CONSTRAINT_FOREIGNKEY") throw notFound("room");
      throw err;
    }
  }

  async exists(roomId: string, name: string, q: Queryable = this.db): Promise<boolean> {
    return !!(await queuesRepo.queue(q, roomId, name));
  }

  /**
   * Enqueue inside the caller's transaction. Call the returned `notify` once it committed, to wake receivers.
   * With `create: false` a missing queue is a 404 `queue_not_found`.
   */
  async enqueue(q: Queryable, roomId: string, name: string, message: unknown, opts: { create?: boolean } = {}): Promise<{ id: string; notify: () => void }> {
    checkQueueName(name);
    return this.insert(q, roomId, name, encode(message), opts);
  }

  private async insert(q: Queryable, roomId: string, name: string, body: string, opts: { create?: boolean }): Promise<{ id: string; notify: () => void }> {
    const now = this.clock.now();
    const id = newTimeId();
    // One statement when the queue exists: the insert selects the queue row, so it inserts nothing if it is missing.
    if (!(await queuesRepo.insertMessage(q, roomId, name, { id, body, now }))) {
      if (opts.create === false) throw queueNotFound(name);
      await this.create(q, roomId, name, now);
      if (!(await queuesRepo.insertMessage(q, roomId, name, { id, body, now }))) throw queueNotFound(name);
    }
    return { id, notify: () => this.announce(roomId, name) };
  }

  /**
   * Enqueue many messages inside the caller's transaction (the scheduler's batches): missing queues are created, and
   * the messages go in with a few statements whatever their number. Ids come back in the order of `items`; call
   * `notify` once the transaction committed.
   */
  async enqueueMany(q: Queryable, items: { roomId: string; name: string; message: unknown }[]): Promise<{ ids: string[]; notify: () => void }> {
    if (items.length === 0) return { ids: [], notify: () => {} };
    const now = this.clock.now();
    const keys = new Map<string, { roomId: string; name: string }>();
    const bodies = items.map((it) => {
      checkQueueName(it.name);
      keys.set(QueuesService.key(it.roomId, it.name), { roomId: it.roomId, name: it.name });
      return encode(it.message);
    });
    const wanted = [...keys.values()];
    await queuesRepo.ensureQueues(
      q,
      wanted.map((k) => ({ id: newId(), room_id: k.roomId, name: k.name, created_at: now })),
    );
    const found = await queuesRepo.queuesOf(q, [...new Set(wanted.map((k) => k.roomId))], [...new Set(wanted.map((k) => k.name))]);
    const queueIds = new Map(found.map((r) => [QueuesService.key(r.room_id, r.name), r.id]));
    const ids = items.map(() => newTimeId());
    const rows = items.map((it, i) => {
      const queueId = queueIds.get(QueuesService.key(it.roomId, it.name));
      if (!queueId) throw queueNotFound(it.name); // deleted between the two statements (its room went away)
      return { id: ids[i], queue_id: queueId, body: bodies[i], now };
    });
    await queuesRepo.insertMessages(q, rows, this.store.dialect);
    return { ids, notify: () => wanted.forEach((k) => this.announce(k.roomId, k.name)) };
  }

  /**
   * Enqueue and wake receivers. Durable when it returns. Like receive and ack, it goes through the group commit
   * (on SQLite, another connection): never await it inside a transaction of your own; use `enqueue(tx, …)` there.
   */
  async send(roomId: string, name: string, message: unknown, opts: { create?: boolean } = {}): Promise<{ id: string }> {
    checkQueueName(name);
    const body = encode(message); // bad input fails here, never inside a batch of other callers' writes
    const id = await this.writer.send(roomId, name, body, opts.create !== false);
    if (!id) throw queueNotFound(name);
    this.announce(roomId, name);
    return { id };
  }

  /**
   * Claim the next visible message, or null. With `wait`, a long poll: returns when a message could be claimed, the
   * timeout passed, the signal aborted or the service shut down (the last three return null).
   */
  async receive<T = unknown>(roomId: string, name: string, opts: ReceiveOptions = {}): Promise<QueueMessage<T> | null> {
    checkQueueName(name);
    const visibilityMs = opts.visibilityMs ?? this.visibilityMs;
    if (!(visibilityMs > 0)) throw badRequest("visibility timeout must be positive");
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const key = QueuesService.key(roomId, name);
    let first = true;
    for (;;) {
      // Register before looking, so a send between the look and the sleep is not missed.
      const w = this.waiter(key);
      try {
        const m = await this.claim<T>(roomId, name, visibilityMs, !!opts.ahead && visibilityMs === this.visibilityMs);
        if (m) return m;
        // Nothing to claim: only now find out whether the queue exists (the hot path is the one claim statement).
        if (first) {
          first = false;
          if (opts.create === false) {
            if (!(await this.exists(roomId, name))) throw queueNotFound(name);
          } else await this.open(roomId, name);
        }
        if (!opts.wait || this.stopped || opts.signal?.aborted) return null;
        const left = deadline - Date.now();
        if (left <= 0) return null;
        await w.wait(Math.min(left, this.recheckMs), opts.signal);
        if (this.stopped || opts.signal?.aborted) return null;
        if (opts.create === false && !(await this.exists(roomId, name))) throw queueNotFound(name);
      } finally {
        w.cancel();
      }
    }
  }

  private async claim<T>(roomId: string, name: string, visibilityMs: number, ahead: boolean): Promise<QueueMessage<T> | null> {
    const row = ahead ? await this.claimAhead(roomId, name) : (await this.writer.claim(roomId, name, visibilityMs))[0];
    return row ? this.toMessage<T>(row, roomId, name) : null;
  }

  /** The next message from this process's claim-ahead buffer of the queue, claiming a new lot when it is empty. */
  private async claimAhead(roomId: string, name: string): Promise<MessageRow | undefined> {
    const key = QueuesService.key(roomId, name);
    for (;;) {
      let a = this.ahead.get(key); // looked up each time: the sweeper may have given the lot back meanwhile
      if (!a) this.ahead.set(key, (a = { rows: [], want: 1, usedAt: 0 }));
      a.usedAt = Date.now();
      const row = a.rows.shift();
      // Running low on a busy queue: claim the next lot now, so receivers need not wait for it.
      if (row && a.rows.length < a.want / 2 && !a.claiming) void this.refill(roomId, name, a).catch(() => {});
      // a message that waited here for half its claim might see the claim run out while it is handled: skip it,
      // it is delivered again once the claim ends
      if (row) {
        if (Number(row.visible_at) - this.clock.now() >= this.visibilityMs / 2) return row;
        continue;
      }
      // empty: wait for the lot being claimed (another receive's, or a new one)
      if (!(await (a.claiming ?? this.refill(roomId, name, a)))) return undefined;
    }
  }

  /** Claim the queue's next lot into `a`; true when it brought messages. */
  private refill(roomId: string, name: string, a: Ahead): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    const want = a.want;
    a.claiming = this.writer
      .claim(roomId, name, this.visibilityMs, want)
      .then((rows) => {
        a.rows.push(...rows);
        a.want = rows.length >= want ? Math.min(want * 2, AHEAD_MAX) : Math.max(1, want >> 1);
        return rows.length > 0;
      })
      .finally(() => (a.claiming = undefined));
    this.sweepLater();
    return a.claiming;
  }

  /** Give back claim-ahead messages nobody drew for AHEAD_IDLE_MS (all of them with `all`), so other processes get them. */
  private async sweep(all = false) {
    const now = Date.now();
    for (const [key, a] of this.ahead) {
      if (!all && (a.claiming || now - a.usedAt < AHEAD_IDLE_MS)) continue;
      if (a.claiming) await a.claiming.catch(() => false); // stopping: a lot still being claimed is given back too
      this.ahead.delete(key);
      const rows = a.rows.splice(0);
      for (const r of rows) await queuesRepo.unclaim(this.db, r.id, r.claim_token ?? "").catch(() => {});
      if (rows.length) {
        const [roomId, name] = [key.slice(0, key.indexOf("/")), key.slice(key.indexOf("/") + 1)];
        this.announce(roomId, name);
      }
    }
    if (this.ahead.size && !this.stopped) this.sweepLater();
  }

  private sweepLater() {
    if (this.sweeper || this.stopped) return;
    this.sweeper = setTimeout(() => {
      this.sweeper = undefined;
      void this.sweep();
    }, AHEAD_IDLE_MS);
    this.sweeper.unref();
  }

  private toMessage<T>(row: MessageRow, roomId: string, name: string): QueueMessage<T> {
    return {
      id: row.id,
      room_id: roomId,
      queue: name,
      message: JSON.parse(row.body) as T,
      enqueued_at: Number(row.enqueued_at),
      attempts: Number(row.attempts),
      receipt: row.claim_token ?? "",
      visible_until: Number(row.visible_at),
    };
  }

  /** Remove a claimed message for good. False when the claim is no longer held (timed out and claimed again, or acknowledged). */
  async ack(m: { id: string; receipt: string }): Promise<boolean> {
    return this.writer.ack(m.id, m.receipt);
  }

  /** Give a claimed message back, visible again after `delayMs` (e.g. the consumer went away before handling it). */
  async release(m: { id: string; receipt: string; room_id: string; queue: string }, delayMs = 0): Promise<boolean> {
    const ok = await queuesRepo.release(this.db, m.id, m.receipt, this.clock.now() + Math.max(0, delayMs));
    if (ok && delayMs <= 0) this.announce(m.room_id, m.queue);
    return ok;
  }

  /** Claim and acknowledge in one go: the room protocol's `queues.receive`, which has no acknowledgement of its own. */
  async take<T = unknown>(roomId: string, name: string, opts: Omit<ReceiveOptions, "visibilityMs"> = {}): Promise<{ id: string; message: T } | null> {
    const m = await this.receive<T>(roomId, name, opts);
    if (!m) return null;
    await this.ack(m);
    return { id: m.id, message: m.message };
  }

  /** The room's queues with their depth, by name. */
  async list(roomId: string): Promise<QueueInfo[]> {
    const rows = await queuesRepo.list(this.db, roomId, this.clock.now());
    return rows.map((r) => ({ name: r.name, size: Number(r.size ?? 0), ready: Number(r.ready ?? 0), created_at: Number(r.created_at) }));
  }

  /** Messages of a queue in order, without claiming them. */
  async peek<T = unknown>(roomId: string, name: string, limit = 100): Promise<{ id: string; message: T; enqueued_at: number; attempts: number }[]> {
    const queue = await queuesRepo.queue(this.db, roomId, name);
    if (!queue) throw queueNotFound(name);
    const rows = await queuesRepo.peek(this.db, queue.id, limit);
    return rows.map((r) => ({ id: r.id, message: JSON.parse(r.body) as T, enqueued_at: Number(r.enqueued_at), attempts: Number(r.attempts) }));
  }

  /** Remove every message of a queue (the queue stays). Returns how many were removed. */
  async drain(roomId: string, name: string): Promise<number> {
    const queue = await queuesRepo.queue(this.db, roomId, name);
    if (!queue) throw queueNotFound(name);
    this.ahead.delete(QueuesService.key(roomId, name)); // its claimed-ahead messages go with the rest
    return queuesRepo.drain(this.db, queue.id);
  }

  /** Delete a queue and its messages. Waiting receivers that asked for `create: false` then fail with queue_not_found. */
  async close(roomId: string, name: string): Promise<void> {
    const queue = await queuesRepo.queue(this.db, roomId, name);
    if (!queue) throw queueNotFound(name);
    this.ahead.delete(QueuesService.key(roomId, name));
    await queuesRepo.deleteQueue(this.db, queue.id);
    this.announce(roomId, name);
  }

  /** End every waiting receive (they return null) and give back claimed-ahead messages; used when the server stops. */
  async shutdown() {
    this.stopped = true;
    this.wakeAll();
    clearTimeout(this.sweeper);
    await this.sweep(true);
    await this.writer.stop();
  }

  /**
   * Tell receivers here (at once) and in other processes (through the invalidator) that the queue changed.
   * Cross-process notices go out one at a time and coalesce per queue, so a burst of sends costs a few NOTIFYs.
   */
  private announce(roomId: string, name: string) {
    const key = QueuesService.key(roomId, name);
    this.wake(key);
    this.outgoing.add(key);
    if (!this.flushing) void this.flush();
  }

  private async flush() {
    this.flushing = true;
    try {
      while (this.outgoing.size) {
        const keys = [...this.outgoing];
        this.outgoing.clear();
        for (const k of keys)
          await this.invalidator.publish(TOPIC, k).catch(() => {
            // another process misses this wake-up; its periodic re-check still finds the message
          });
      }
    } finally {
      this.flushing = false;
    }
  }

  private wake(key: string) {
    const set = this.waiters.get(key);
    if (!set) return;
    this.waiters.delete(key);
    for (const fn of set) fn();
  }

  private wakeAll() {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const fn of set) fn();
  }

  /** Where the group commit runs ("thread": SQLite's writer thread), for metrics and tests. */
  get writerMode() {
    return this.writer.mode;
  }

  /** Waiting receivers, for metrics and tests. */
  get waiting(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }

  private waiter(key: string) {
    let woken = false;
    let resolveWait: (() => void) | null = null;
    const fn = () => {
      woken = true;
      resolveWait?.();
    };
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(fn);
    const cancel = () => {
      const s = this.waiters.get(key);
      if (s) {
        s.delete(fn);
        if (s.size === 0) this.waiters.delete(key);
      }
    };
    const wait = (ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve) => {
        if (woken || signal?.aborted) return resolve();
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        resolveWait = done;
        signal?.addEventListener("abort", done, { once: true });
      });
    return { wait, cancel };
  }
}
