import { isObj } from "../core/json.js";
import type { SessionsService } from "../sessions/service.js";
import type { EventBus } from "../core/events.js";
import type { DB } from "../store/db.js";
import type { Toolkit, ToolCall, ToolStream } from "../room-server/connection.js";
import { binary, control, empty, ErrorCode, errorContent, invalid, ToolError, type Content } from "../room-server/protocol.js";
import { SyncDocuments, type OpenDoc, type Opener } from "./documents.js";

/** Documents one participant may have open at once. */
export const MAX_DOCUMENTS_PER_PARTICIPANT = 2000;

/** The client's path normalization (sync-client.js normalizeSyncPath), then the storage rules (no `..`, no empty segment). */
export function syncPath(raw: unknown): string {
  if (typeof raw !== "string") throw invalid("path must be a string");
  let p = raw;
  while (p.startsWith("./")) p = p.slice(2);
  while (p.startsWith("/")) p = p.slice(1);
  if (p === ".") p = "";
  if (!p) throw invalid("path must name a document");
  if (p.length > 1024) throw invalid("path must be at most 1024 characters");
  const segs = p.split("/");
  if (segs.some((s) => s === "" || s === "." || s === "..")) throw invalid(`path "${p}" must not have empty, "." or ".." segments`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(p)) throw invalid("path must not contain control characters");
  return p;
}

const objOrNull = (v: unknown, what: string): Record<string, unknown> | null => {
  if (v === undefined || v === null) return null;
  if (!isObj(v)) throw invalid(`${what} must be an object or null`);
  return v;
};

/**
 * The room `sync` toolkit (agents-protocol §2, 0.39.9 SyncClient): the streaming `open` (a start chunk; the `state`
 * chunk with the schema and the document, or the diff against the opener's `vector`; then updates both ways, each
 * request chunk acknowledged once durable; close answered with close) and the plain `create`. Reading needs the path
 * in `api.sync.paths` (none: every path), writing (updates, create) a rule that is not read-only. Records per opener
 * `sync.opened` / `sync.closed` session events (updates and bytes) and a `usage.recorded` `{usage_type: "sync"}`.
 */
export function syncToolkit(docs: SyncDocuments, deps: { sessions: Pick<SessionsService, "event">; bus: EventBus; db: DB }): Toolkit {
  const usage = (call: ToolCall, path: string, o: Opener) => {
    const s = call.room.session;
    void deps.sessions
      .event(s.id, "sync.closed", { path, participant_id: call.conn.id, name: call.conn.name, updates: o.updates, bytes: o.bytes })
      .catch(() => {});
    if (o.updates === 0) return;
    void deps.bus
      .publish(deps.db, {
        type: "usage.recorded",
        project_id: s.project_id,
        data: {
          usage_type: "sync",
          unit: "update",
          quantity: o.updates,
          bytes: o.bytes,
          path,
          room_id: s.room_id,
          room_name: s.room_name,
          session_id: s.id,
          participant_id: call.conn.id,
          participant_name: call.conn.name,
        },
      })
      .then((after) => after())
      .catch(() => {});
  };

  return {
    // Open documents are long-lived streams: their own per-participant limit, not the transfers' one.
    maxStreams: MAX_DOCUMENTS_PER_PARTICIPANT,
    tools: {
      async create(call) {
        const path = syncPath(call.args.path);
        call.conn.scope.syncRead(path);
        call.conn.scope.syncWrite(path);
        const json = objOrNull(call.args.json, "json");
        const schema = objOrNull(call.args.schema, "schema");
        const opener: Opener = { conn: call.conn, send: () => {}, updates: 0, bytes: 0 };
        // Loads it (creating it with `json` when it does not exist yet), then unloads it again unless others have it open.
        const od = await docs.open(call.room, path, { create: true, schema, initialJson: json }, opener);
        await docs.leave(od, opener);
        return empty();
      },
    },
    streams: {
      open(call, out): ToolStream {
        let od: OpenDoc | null = null;
        let opener: Opener | null = null;
        let path = "";
        let closed = false;
        let started = false;
        const finish = async () => {
          if (od && opener) {
            const o = opener;
            opener = null;
            usage(call, path, o);
            await docs.leave(od, o);
          }
        };
        const fail = async (e: unknown) => {
          if (closed) return;
          closed = true;
          const c = call.conn.errorFor(e, "sync.open");
          out(c.type === "error" ? c : errorContent(String(e), ErrorCode.OPERATION_FAILED));
          out(control("close"));
          await finish();
        };
        const chunk = async (c: Content): Promise<void | { acked: Promise<unknown> }> => {
          if (closed) return;
          if (c.type === "control" && c.method === "close") {
            closed = true;
            // The last opener out writes the document's file first: once close is answered, storage has it.
            await finish();
            out(control("close"));
            return;
          }
          if (c.type !== "binary") return fail(invalid("sync.open takes binary chunks (kind start or sync) and a control close"));
          const kind = c.headers.kind;
          if (!started) {
            if (kind !== "start") return fail(invalid('the first chunk of sync.open must have kind "start"'));
            started = true;
            try {
              path = syncPath(c.headers.path);
              call.conn.scope.syncRead(path);
              const create = c.headers.create === undefined || c.headers.create === null ? true : c.headers.create;
              if (typeof create !== "boolean") throw invalid("create must be a boolean");
              const vector = c.headers.vector === undefined || c.headers.vector === null ? null : c.headers.vector;
              if (vector !== null && typeof vector !== "string") throw invalid("vector must be a base64 string or null");
              const schema = objOrNull(c.headers.schema, "schema");
              const initialJson = objOrNull(c.headers.initial_json, "initial_json");
              // Read-only openers may open an existing document, never make one.
              const mayCreate = create && call.conn.scope.canSyncWrite(path);
              opener = {
                conn: call.conn,
                send: (text) => {
                  if (!closed) out(binary({ kind: "sync", path }, text));
                },
                updates: 0,
                bytes: 0,
              };
              od = await docs.open(call.room, path, { create: mayCreate, schema, initialJson }, opener);
              if (closed) return finish();
              out(binary({ kind: "state", path, schema: od.schemaJson }, docs.state(od, vector)));
              void deps.sessions.event(call.room.session.id, "sync.opened", { path, participant_id: call.conn.id, name: call.conn.name }).catch(() => {});
            } catch (e) {
              return fail(e);
            }
            return;
          }
          if (kind !== "sync") return fail(invalid('after the start chunk, sync.open takes chunks of kind "sync"'));
          if (!od || !opener) return;
          if (!call.conn.scope.canSyncWrite(path))
            return fail(new ToolError(`permission denied: the document "${path}" is read-only for this token`, ErrorCode.PERMISSION_DENIED));
          try {
            const { durable } = await docs.update(od, opener, c.data);
            // Journaled in the store: the next update is taken now, this one is acknowledged once committed.
            if (durable) return { acked: durable.catch((e) => fail(e)) };
          } catch (e) {
            return fail(e);
          }
        };
        return {
          ackAfterChunk: true,
          chunk,
          async abort() {
            closed = true;
            await finish();
          },
        };
      },
    },
  };
}
