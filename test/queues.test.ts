import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startServer, type TestServer } from "./helpers/server.js";
import { createRoom, deleteRoom } from "./helpers/rooms.js";
import { ManualClock } from "../src/core/clock.js";
import { createContext } from "../src/wiring.js";
import { QueueWriter } from "../src/queues/writer.js";
import { ApiError } from "../src/core/errors.js";
import type { QueuesService } from "../src/queues/service.js";

describe("room queues (ctx.queues)", () => {
  let s: TestServer;
  let q: QueuesService;
  const clock = new ManualClock(Date.parse("2026-01-01T00:00:00Z"));
  let room: { id: string };
  let n = 0;
  const qname = () => `q${++n}`;

  beforeAll(async () => {
    s = await startServer({ clock });
    q = s.ctx.queues;
    room = await createRoom(s.ctx, s.admin.projectId, "queues-room");
  });
  afterAll(() => s.close());

  it("delivers in FIFO order, hides claimed messages and removes acknowledged ones", async () => {
    const name = qname();
    for (let i = 0; i < 5; i++) await q.send(room.id, name, { i });
    expect(await q.list(room.id)).toContainEqual(expect.objectContaining({ name, size: 5, ready: 5 }));
    const a = await q.receive<{ i: number }>(room.id, name);
    const b = await q.receive<{ i: number }>(room.id, name);
    expect([a?.message.i, b?.message.i]).toEqual([0, 1]);
    expect(a).toMatchObject({ room_id: room.id, queue: name, attempts: 1, enqueued_at: clock.now() });
    expect((await q.list(room.id)).find((x) => x.name === name)).toMatchObject({ size: 5, ready: 3 });
    expect(await q.ack(a!)).toBe(true);
    expect(await q.ack(a!)).toBe(false); // already gone
    expect((await q.list(room.id)).find((x) => x.name === name)).toMatchObject({ size: 4, ready: 3 });
    const rest = [];
    for (let m; (m = await q.receive<{ i: number }>(room.id, name));) rest.push(m.message.i);
    expect(rest).toEqual([2, 3, 4]);
  });

  it("keeps any JSON value", async () => {
    const name = qname();
    const values = ["text", 42, null, [1, { a: true }], { nested: { ünïcode: "✓" } }];
    for (const v of values) await q.send(room.id, name, v);
    const got = [];
    for (let i = 0; i < values.length; i++) got.push((await q.take(room.id, name))!.message);
    expect(got).toEqual(values);
    expect(await q.take(room.id, name)).toBeNull();
    await expect(q.send(room.id, name, undefined)).rejects.toMatchObject({ status: 400, message: "message must be a JSON value" });
  });

  it("delivers an unacknowledged message again after the visibility timeout; a stale receipt cannot ack it", async () => {
    const name = qname();
    await q.send(room.id, name, "job");
    const first = await q.receive(room.id, name, { visibilityMs: 10_000 });
    expect(first?.visible_until).toBe(clock.now() + 10_000);
    expect(await q.receive(room.id, name)).toBeNull();
    clock.advance(9_999);
    expect(await q.receive(room.id, name)).toBeNull();
    clock.advance(1);
    const second = await q.receive(room.id, name);
    expect(second).toMatchObject({ id: first!.id, message: "job", attempts: 2 });
    expect(await q.ack(first!)).toBe(false);
    expect(await q.ack(second!)).toBe(true);
    expect((await q.list(room.id)).find((x) => x.name === name)?.size).toBe(0);
  });

  it("a redelivered message queues up behind the messages never delivered yet", async () => {
    const name = qname();
    await q.send(room.id, name, "a");
    const a = (await q.receive(room.id, name, { visibilityMs: 1_000 }))!;
    await q.send(room.id, name, "b");
    clock.advance(1_000); // a's claim runs out
    await q.send(room.id, name, "c");
    expect((await q.peek(room.id, name)).map((m) => m.message)).toEqual(["b", "c", "a"]);
    const order = [];
    for (let m; (m = await q.receive<string>(room.id, name));) order.push(m.message);
    expect(order).toEqual(["b", "c", "a"]);
    expect(a.message).toBe("a");
  });

  it("release gives a message back at once or after a delay", async () => {
    const name = qname();
    await q.send(room.id, name, "x");
    const m = (await q.receive(room.id, name))!;
    expect(await q.release(m)).toBe(true);
    const again = (await q.receive(room.id, name))!;
    expect(again.attempts).toBe(2);
    expect(await q.release(m)).toBe(false); // the old receipt is void
    expect(await q.release(again, 5_000)).toBe(true);
    expect(await q.receive(room.id, name)).toBeNull();
    clock.advance(5_000);
    expect((await q.receive(room.id, name))?.attempts).toBe(3);
  });

  it("create:false makes a missing queue an error; open creates it; list shows empty queues", async () => {
    const name = qname();
    const notFound = { status: 404, code: "queue_not_found" };
    await expect(q.send(room.id, name, 1, { create: false })).rejects.toMatchObject(notFound);
    await expect(q.receive(room.id, name, { create: false })).rejects.toMatchObject(notFound);
    expect((await q.list(room.id)).map((x) => x.name)).not.toContain(name);
    await q.open(room.id, name);
    await q.open(room.id, name); // idempotent
    expect(await q.list(room.id)).toContainEqual(expect.objectContaining({ name, size: 0, ready: 0 }));
    await q.send(room.id, name, 1, { create: false });
    expect((await q.receive(room.id, name, { create: false }))?.message).toBe(1);
  });

  it("drain empties a queue, close deletes it", async () => {
    const name = qname();
    for (let i = 0; i < 3; i++) await q.send(room.id, name, i);
    expect(await q.drain(room.id, name)).toBe(3);
    expect((await q.list(room.id)).find((x) => x.name === name)?.size).toBe(0);
    await q.send(room.id, name, "after drain");
    await q.close(room.id, name);
    expect((await q.list(room.id)).map((x) => x.name)).not.toContain(name);
    await expect(q.drain(room.id, name)).rejects.toMatchObject({ code: "queue_not_found" });
    await expect(q.close(room.id, name)).rejects.toMatchObject({ code: "queue_not_found" });
    // Re-created empty: the closed queue's messages are gone.
    expect(await q.receive(room.id, name)).toBeNull();
  });

  it("rejects bad queue names with a 400 naming the problem", async () => {
    for (const [name, msg] of [
      ["", "name must be a non-empty string"],
      ["x".repeat(257), "name must be at most 256 characters"],
      ["a\nb", "name must not contain control characters"],
      [" padded", "name must not start or end with whitespace"],
    ] as const) {
      const err = await q.send(room.id, name, 1).catch((e) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 400, message: msg });
    }
    await q.send(room.id, "jobs/ünïcode: ok@x", 1);
  });

  it("keeps queues per room, and a room's deletion takes its queues along", async () => {
    const other = await createRoom(s.ctx, s.admin.projectId, "queues-other");
    await q.send(room.id, "shared-name", "for room 1");
    await q.send(other.id, "shared-name", "for room 2");
    expect((await q.take(other.id, "shared-name"))?.message).toBe("for room 2");
    await q.send(other.id, "doomed", 1);
    await deleteRoom(s.ctx, other.id);
    expect(await q.list(other.id)).toEqual([]);
    const left = await s.ctx.store.db.selectFrom("room_queues").select("id").where("room_id", "=", other.id).execute();
    expect(left).toEqual([]);
    expect((await q.take(room.id, "shared-name"))?.message).toBe("for room 1");
  });

  it("long poll: a waiting receive returns when a message is sent, without polling the store meanwhile", async () => {
    const name = qname();
    const claims = vi.spyOn(QueueWriter.prototype, "claim");
    try {
      const pending = q.receive(room.id, name, { wait: true });
      await new Promise((r) => setTimeout(r, 400));
      // One look before sleeping; the re-check interval (2 s) has not passed: no busy loop.
      expect(claims.mock.calls.length).toBe(1);
      expect(q.waiting).toBe(1);
      await q.send(room.id, name, { hello: "waiter" });
      expect((await pending)?.message).toEqual({ hello: "waiter" });
      expect(q.waiting).toBe(0);
    } finally {
      claims.mockRestore();
    }
  });

  it("long poll: timeout, abort signal and shutdown end the wait with null", async () => {
    const name = qname();
    expect(await q.receive(room.id, name, { wait: true, timeoutMs: 150 })).toBeNull();
    const ac = new AbortController();
    const p = q.receive(room.id, name, { wait: true, signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    expect(await p).toBeNull();
    expect(q.waiting).toBe(0);
    // A message sent afterwards is still there for the next receiver.
    await q.send(room.id, name, "kept");
    expect((await q.take(room.id, name))?.message).toBe("kept");
  });

  it("several waiting receivers each get a different message", async () => {
    const name = qname();
    const waiters = Array.from({ length: 4 }, () => q.receive<number>(room.id, name, { wait: true, timeoutMs: 20_000 }));
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 4; i++) await q.send(room.id, name, i);
    const got = (await Promise.all(waiters)).map((m) => m!.message).sort();
    expect(got).toEqual([0, 1, 2, 3]);
  });

  it("concurrent receivers never claim the same message", async () => {
    const name = qname();
    const total = 120;
    await Promise.all(Array.from({ length: total }, (_, i) => q.send(room.id, name, i)));
    const seen: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let m; (m = await q.receive<number>(room.id, name));) {
          seen.push(m.message);
          await q.ack(m);
        }
      }),
    );
    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
  });

  it("a receive waiting in another server process wakes on a send here", async () => {
    const other = await createContext(s.config, { clock });
    try {
      const name = qname();
      const pending = other.queues.receive<string>(room.id, name, { wait: true, timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 100));
      await q.send(room.id, name, "across processes");
      // PostgreSQL: woken by NOTIFY at once; SQLite: found by the periodic re-check (2 s).
      expect((await pending)?.message).toBe("across processes");
    } finally {
      await other.close();
    }
  });

  it("group commit: sends, claims and acks made together share a batch, and each caller gets its own answer", async () => {
    const [a, b, missing] = [qname(), qname(), qname()];
    await q.open(room.id, b);
    // One burst: sends to a new queue (created), to an existing one, and to a missing one with create:false.
    const sends = await Promise.allSettled([
      ...Array.from({ length: 30 }, (_, i) => q.send(room.id, a, { a: i })),
      ...Array.from({ length: 30 }, (_, i) => q.send(room.id, b, { b: i }, { create: false })),
      q.send(room.id, missing, "nope", { create: false }),
    ]);
    expect(sends.slice(0, 60).every((r) => r.status === "fulfilled")).toBe(true);
    expect(sends[60]).toMatchObject({ status: "rejected", reason: { status: 404, code: "queue_not_found" } });
    expect(new Set(sends.slice(0, 60).map((r) => (r as PromiseFulfilledResult<{ id: string }>).value.id)).size).toBe(60);
    expect(await q.exists(room.id, missing)).toBe(false);
    // FIFO per queue survives the batching
    expect((await q.peek<{ a: number }>(room.id, a, 100)).map((m) => m.message.a)).toEqual(Array.from({ length: 30 }, (_, i) => i));

    // 40 receives in one burst on a queue of 30: 30 distinct messages, 10 nulls, receipts unique
    const got = (await Promise.all(Array.from({ length: 40 }, () => q.receive<{ a: number }>(room.id, a)))).filter((m) => m !== null);
    expect(got.map((m) => m.message.a).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(new Set(got.map((m) => m.receipt)).size).toBe(30);
    // acks in one burst, a stale receipt among them: only that one is refused
    const acks = await Promise.all([...got.map((m) => q.ack(m)), q.ack({ id: got[0].id, receipt: got[1].receipt })]);
    expect(acks.slice(0, 30).every(Boolean)).toBe(true);
    expect(acks[30]).toBe(false);
    expect((await q.list(room.id)).find((x) => x.name === a)).toMatchObject({ size: 0 });
    // on SQLite those batches ran on the writer thread (PostgreSQL runs them on its pool)
    expect(q.writerMode).toBe(s.ctx.store.dialect === "sqlite" ? "thread" : "inline");
  });

  it("group commit: a batch that fails (a room deleted meanwhile) fails only its own caller", async () => {
    const doomed = await createRoom(s.ctx, s.admin.projectId, "queues-doomed");
    await deleteRoom(s.ctx, doomed.id);
    const name = qname();
    const r = await Promise.allSettled([
      q.send(room.id, name, 1),
      q.send(doomed.id, name, 2), // its queue cannot be created: the room is gone (a foreign-key failure inside the batch)
      q.send(room.id, name, 3),
    ]);
    expect(r.map((x) => x.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((r[1] as PromiseRejectedResult).reason).toMatchObject({ status: 404 });
    expect((await q.peek<number>(room.id, name)).map((m) => m.message)).toEqual([1, 3]);
  });

  it("claim-ahead: a process that stops gives back the messages it claimed ahead", async () => {
    const other = await createContext(s.config, { clock });
    const name = qname();
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => q.send(room.id, name, i)));
      const got: number[] = [];
      for (let i = 0; i < 5; i++) got.push((await other.queues.receive<number>(room.id, name, { ahead: true }))!.message);
      expect(got).toEqual([0, 1, 2, 3, 4]);
      expect((await q.list(room.id)).find((x) => x.name === name)!.ready).toBeLessThan(15);
    } finally {
      await other.close();
    }
    expect((await q.list(room.id)).find((x) => x.name === name)).toMatchObject({ size: 20, ready: 15 });
    expect((await q.receive<number>(room.id, name))?.message).toBe(5);
  });

  it("a room that does not exist is a 404, not a crash", async () => {
    await expect(q.send("00000000-0000-0000-0000-000000000000", "x", 1)).rejects.toMatchObject({ status: 404, message: "room not found" });
    await expect(q.receive("00000000-0000-0000-0000-000000000000", "x")).rejects.toMatchObject({ status: 404 });
  });

  it("shutting the service down ends waiting receives with null", async () => {
    const other = await createContext(s.config, { clock });
    const pending = other.queues.receive(room.id, qname(), { wait: true });
    await new Promise((r) => setTimeout(r, 50));
    await other.close();
    expect(await pending).toBeNull();
  });

  it("a send inside the caller's transaction is invisible until it commits, and rolled back with it", async () => {
    const name = qname();
    await q.open(room.id, name);
    await s.ctx.store.db
      .transaction()
      .execute(async (tx) => {
        await q.enqueue(tx, room.id, name, "rolled back");
        throw new Error("abort");
      })
      .catch(() => {});
    expect(await q.take(room.id, name)).toBeNull();
    let notify = () => {};
    await s.ctx.store.db.transaction().execute(async (tx) => {
      notify = (await q.enqueue(tx, room.id, name, "committed")).notify;
    });
    notify();
    expect((await q.take(room.id, name))?.message).toBe("committed");
  });
});
