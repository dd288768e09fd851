import { checkQueueName, type QueueMessage, type QueuesService } from "../../queues/service.js";
import { ApiError } from "../../core/errors.js";
import type { Toolkit, ToolCall } from "../connection.js";
import { empty, ErrorCode, invalid, json, ToolError } from "../protocol.js";

function name(call: ToolCall): string {
  try {
    return checkQueueName(call.args.name, "name");
  } catch (e) {
    throw invalid((e as Error).message);
  }
}

function flag(call: ToolCall, key: string, fallback: boolean): boolean {
  const v = call.args[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw invalid(`${key} must be a boolean`);
  return v;
}

/**
 * The `queues` toolkit on the durable room queues (ctx.queues). `receive` claims a message, answers with it and
 * then acknowledges it; if the socket is gone before the answer goes out the claim is released, so the message is
 * not lost. A waiting receive is a long poll that sleeps without holding up other requests of the socket, and ends
 * when the socket closes.
 */
export function queuesToolkit(queues: QueuesService, refusal?: (projectId: string) => Promise<string | null>): Toolkit {
  return {
    tools: {
      async send(call) {
        const n = name(call);
        call.conn.scope.queueSend(n);
        if (!("message" in call.args)) throw invalid("message is required");
        const refused = await refusal?.(call.room.session.project_id);
        if (refused) throw new ToolError(`payment required (402): ${refused}`, ErrorCode.PERMISSION_DENIED);
        const create = flag(call, "create", true);
        await withKnown(call, n, create, (c) => queues.send(call.room.id, n, call.args.message, { create: c }));
        call.room.stats.queueSends++;
        return empty();
      },
      async receive(call) {
        const n = name(call);
        call.conn.scope.queueReceive(n);
        const create = flag(call, "create", true);
        const signal = call.conn.abort.signal;
        let m: QueueMessage | null = null;
        // First a plain claim: receivers of a busy queue claim side by side (their claims share a commit).
        m = await withKnown(call, n, create, (c) => queues.receive(call.room.id, n, { create: c, wait: false, ahead: true }));
        if (!m && flag(call, "wait", true) && !signal.aborted) {
          // Nothing there: long polls of one queue wait in line, one of them watching the queue at a time, so a
          // message costs one database claim instead of one per waiting receiver.
          const gates = call.room.queueGates;
          const before = gates.get(n) ?? Promise.resolve();
          let release!: () => void;
          const mine = new Promise<void>((r) => (release = r));
          const tail = before.then(() => mine);
          gates.set(n, tail);
          let onAbort: () => void = () => {};
          try {
            await Promise.race([before, new Promise<void>((r) => signal.addEventListener("abort", (onAbort = () => r()), { once: true }))]);
            signal.removeEventListener("abort", onAbort);
            if (!signal.aborted) m = await withKnown(call, n, create, (c) => queues.receive(call.room.id, n, { create: c, wait: true, signal, ahead: true }));
          } finally {
            signal.removeEventListener("abort", onAbort);
            release();
            if (gates.get(n) === tail) gates.delete(n);
          }
        }
        if (!m) return empty();
        if (call.conn.closed) {
          await queues.release(m).catch(() => {});
          return empty();
        }
        call.room.stats.queueReceives++;
        // Acknowledge once the answer is on its way (the caller sends it right after this returns).
        queueMicrotask(() => void queues.ack(m).catch(() => {}));
        return json(m.message);
      },
      async list(call) {
        call.conn.scope.queueList();
        const all = await queues.list(call.room.id);
        return json({ queues: all.map((q) => ({ name: q.name, size: q.size })) });
      },
      async open(call) {
        const n = name(call);
        call.conn.scope.queueManage(n);
        await queues.open(call.room.id, n);
        return empty();
      },
      async drain(call) {
        const n = name(call);
        call.conn.scope.queueManage(n);
        await queues.drain(call.room.id, n).catch(notFound);
        return empty();
      },
      async close(call) {
        const n = name(call);
        call.conn.scope.queueManage(n);
        call.room.knownQueues.delete(n);
        await queues.close(call.room.id, n).catch(notFound);
        return empty();
      },
    },
  };
}

/**
 * Run a queue operation that may create the queue. A queue this room already used is addressed with create: false
 * (a read instead of an upsert on every call); if it was closed since, the call is repeated as the client asked.
 */
async function withKnown<T>(call: ToolCall, queue: string, create: boolean, op: (create: boolean) => Promise<T>): Promise<T> {
  const known = call.room.knownQueues;
  if (create && known.has(queue)) {
    try {
      return await op(false);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === "queue_not_found")) throw e;
      known.delete(queue);
    }
  }
  const r = await op(create);
  if (known.size < 10_000) known.add(queue);
  return r;
}

function notFound(e: unknown): never {
  if (e instanceof ApiError && e.status === 404) throw new ToolError(e.message, ErrorCode.QUEUE_NOT_FOUND);
  throw e;
}
