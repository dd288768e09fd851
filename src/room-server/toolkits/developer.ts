import type { SessionsService } from "../../sessions/service.js";
import type { Connection, Toolkit, ToolStream } from "../connection.js";
import { binary, control, empty, invalid, type Content } from "../protocol.js";
import type { ActiveRoom } from "../room.js";

/** Largest log record: its `type` and `data` as JSON. */
export const MAX_LOG_BYTES = 64 * 1024;
const MAX_LOG_TYPE = 256;
/** Records (and bytes of them) kept with one session's events; later ones still reach the watchers. */
export const MAX_STORED_LOGS = 5000;
export const MAX_STORED_LOG_BYTES = 16 * 1024 * 1024;
/** The session event type of a developer log record. */
export const LOG_EVENT = "developer.log";

interface Watcher {
  conn: Connection;
  out: (c: Content) => void;
}

interface RoomLogs {
  watchers: Set<Watcher>;
  stored: number;
  storedBytes: number;
  /** Records waiting to be written with the session's events (one batch per turn). */
  queue: { type: string; data: unknown; at: number }[];
  flushing: boolean;
}

/**
 * The `developer` toolkit (0.39.9 DeveloperClient): `log` writes a record `{type, data}`; the streamed `logs` tool
 * sends every record written in the room after it opened, to each watcher, as a binary chunk with header `type` and
 * the JSON of `data` as its bytes, until the watcher closes its side. Records are kept with the session's events
 * (type `developer.log`, data `{participant_id, participant_name, type, data}`), at most MAX_STORED_LOGS records and
 * MAX_STORED_LOG_BYTES per session.
 * Writing needs the `developer` section of the token's ApiScope; watching needs `developer.logs` (default true).
 * A record costs one message of the participant's rate limit (MESHAGENT_ROOM_MAX_MESSAGES_PER_SECOND).
 */
export function developerToolkit(deps: { sessions: Pick<SessionsService, "events">; clock: { now(): number } }): {
  toolkit: Toolkit;
  /** A record written by the server itself (participant "server"), e.g. a service container's output. */
  write(room: ActiveRoom<Connection>, type: string, data: Record<string, unknown>): void;
} {
  const rooms = new WeakMap<ActiveRoom<Connection>, RoomLogs>();
  const logsOf = (room: ActiveRoom<Connection>) => {
    let r = rooms.get(room);
    if (!r) rooms.set(room, (r = { watchers: new Set(), stored: 0, storedBytes: 0, queue: [], flushing: false }));
    return r;
  };

  function store(room: ActiveRoom<Connection>, logs: RoomLogs, row: { type: string; data: unknown; at: number }, bytes: number) {
    if (logs.stored >= MAX_STORED_LOGS || logs.storedBytes + bytes > MAX_STORED_LOG_BYTES) return;
    logs.stored++;
    logs.storedBytes += bytes;
    logs.queue.push(row);
    if (logs.flushing) return;
    logs.flushing = true;
    setImmediate(() => {
      const rows = logs.queue.splice(0);
      logs.flushing = false;
      void deps.sessions.events(room.session.id, rows).catch(() => {});
    });
  }

  function write(room: ActiveRoom<Connection>, type: string, data: Record<string, unknown>) {
    const bytes = Buffer.from(JSON.stringify(data), "utf8");
    if (bytes.length + type.length > MAX_LOG_BYTES) return;
    const logs = logsOf(room);
    const at = deps.clock.now();
    const chunk = binary({ type, participant_id: "server", participant_name: "server", created_at: new Date(at).toISOString() }, bytes);
    for (const w of logs.watchers) w.out(chunk);
    store(room, logs, { type: LOG_EVENT, data: { participant_id: "server", participant_name: "server", type, data }, at }, bytes.length);
  }

  const toolkit: Toolkit = {
    tools: {
      async log(call) {
        call.conn.scope.require("developer");
        const { type } = call.args;
        const data = call.args.data ?? {};
        if (typeof type !== "string" || !type || type.length > MAX_LOG_TYPE) throw invalid(`type must be a string of 1-${MAX_LOG_TYPE} characters`);
        if (typeof data !== "object" || Array.isArray(data)) throw invalid("data must be a JSON object");
        const bytes = Buffer.from(JSON.stringify(data), "utf8");
        if (bytes.length + type.length > MAX_LOG_BYTES) throw invalid(`a log record must be at most ${MAX_LOG_BYTES} bytes of JSON`);
        const logs = logsOf(call.room);
        const at = deps.clock.now();
        const chunk = binary({ type, participant_id: call.conn.id, participant_name: call.conn.name, created_at: new Date(at).toISOString() }, bytes);
        for (const w of logs.watchers) w.out(chunk);
        store(call.room, logs, { type: LOG_EVENT, data: { participant_id: call.conn.id, participant_name: call.conn.name, type, data }, at }, bytes.length);
        return empty();
      },
    },
    streams: {
      logs(call, out): ToolStream {
        call.conn.scope.developerLogs();
        const logs = logsOf(call.room);
        const w: Watcher = { conn: call.conn, out };
        logs.watchers.add(w);
        return {
          async chunk(c) {
            // The client's input carries nothing; its close (the watcher stopped iterating) ends the stream.
            if (c.type === "control" && c.method === "close" && logs.watchers.delete(w)) out(control("close"));
          },
          async abort() {
            logs.watchers.delete(w);
          },
        };
      },
    },
  };
  return { toolkit, write };
}
