import * as Y from "yjs";
import type { Clock } from "../core/clock.js";
import type { DB } from "../store/db.js";
import type { RoomStorage, RoomRef } from "../room-server/storage.js";
import type { ActiveRoom } from "../room-server/room.js";
import type { Connection } from "../room-server/connection.js";
import { ErrorCode, ToolError } from "../room-server/protocol.js";
import { syncRepo } from "./repo.js";
import { applyJson, checkTransaction, parseSchema, rootOf, SchemaError, type ParsedSchema } from "./schema.js";

/** Compact a document into its file after this many journaled updates, or after COMPACT_IDLE_MS without one. */
export const COMPACT_EVERY = 1000;
export const COMPACT_IDLE_MS = 2000;
/** The largest update (base64 text) one sync chunk may carry, and the largest document file loaded. */
export const MAX_UPDATE_BYTES = 8 * 1024 * 1024;
export const MAX_DOCUMENT_BYTES = 256 * 1024 * 1024;
/** Documents one room may have open at once. */
export const MAX_OPEN_DOCUMENTS = 5000;

/** Where a room's schemas for new documents live: `.schemas/<extension>.json` in room storage. */
export const schemaPathFor = (path: string) => {
  const base = path.split("/").pop() ?? "";
  const dot = base.lastIndexOf(".");
  return dot > 0 ? `.schemas/${base.slice(dot + 1)}.json` : null;
};

/** One participant's open stream of a document. */
export interface Opener {
  conn: Connection;
  /** Send an update (the base64 text) to this opener. */
  send(text: Buffer): void;
  updates: number;
  bytes: number;
}

/** A document open in this process: the Y.Doc, its schema, its openers, its journal position. */
export class OpenDoc {
  readonly openers = new Set<Opener>();
  /** Serializes the document's updates, loads and compactions. */
  chain: Promise<unknown> = Promise.resolve();
  /** The last journaled sequence number, and the one the file holds. */
  seq = 0;
  compactedSeq = 0;
  sinceCompact = 0;
  timer: NodeJS.Timeout | null = null;
  unloading = false;
  /** Resolves once the last journaled update is committed. */
  lastDurable: Promise<void> = Promise.resolve();

  constructor(
    readonly room: ActiveRoom<Connection>,
    readonly path: string,
    public doc: Y.Doc,
    readonly schema: ParsedSchema,
    readonly schemaJson: Record<string, unknown>,
  ) {}

  serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => {});
    return p;
  }
}

export interface OpenOptions {
  create: boolean;
  schema: Record<string, unknown> | null;
  initialJson: Record<string, unknown> | null;
}

interface JournalRow {
  room_id: string;
  path: string;
  seq: number;
  data: string;
}

/**
 * Group commit of acknowledged updates: rows queued in one turn of the event loop go to the store in one statement;
 * each add() resolves once its row is committed (then the update may be acknowledged).
 */
class Journal {
  private queue: { row: JournalRow; done: (e?: unknown) => void }[] = [];
  private flushing = false;

  constructor(private readonly db: DB) {}

  add(row: JournalRow): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ row, done: (e) => (e ? reject(e) : resolve()) });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush() {
    while (this.queue.length) {
      const batch = this.queue.splice(0, 500);
      try {
        await syncRepo.append(
          this.db,
          batch.map((b) => b.row),
        );
        for (const b of batch) b.done();
      } catch (e) {
        for (const b of batch) b.done(e);
      }
    }
    this.flushing = false;
  }
}

const notFound = (path: string) => new ToolError(`no document at "${path}" (open it with create: true to make one)`, ErrorCode.NOT_FOUND);

/**
 * Sync documents (agents-protocol §2): Yjs documents of a room, one `Y.Doc` per open path in the process that serves
 * the room (the room's lease holder, so two processes never hold the same document). A document is a room file: its
 * Yjs v1 state, written whole by compaction, so `storage.list` / `download` see it and its storage events fire. Every
 * acknowledged update is first in the journal (`sync_updates`); a load reads the file and replays the journal after
 * it, so nothing acknowledged is lost, kill -9 included. The schema is kept in `sync_documents`.
 */
export class SyncDocuments {
  private readonly rooms = new WeakMap<ActiveRoom<Connection>, Map<string, Promise<OpenDoc>>>();
  private readonly journal: Journal;
  private readonly live = new Set<OpenDoc>();
  /** Unloads in progress (close() waits for them: each compacts its document into its file). */
  private readonly unloads = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      db: DB;
      clock: Clock;
      storage: RoomStorage;
      log?: { warn(obj: object, msg: string): void };
    },
  ) {
    this.journal = new Journal(deps.db);
  }

  private ref(room: ActiveRoom<Connection>): RoomRef {
    return { projectId: room.room.project_id, roomId: room.id };
  }

  /** Whether a path is open as a document in this room now (storage refuses to replace it meanwhile). */
  isOpen(room: ActiveRoom<Connection>, path: string): boolean {
    return this.rooms.get(room)?.has(path) ?? false;
  }

  /** Documents open in this process (tests, metrics). */
  get openCount(): number {
    return this.live.size;
  }

  /** The document, loaded (or created) once per room and path; `opener` is added to it. */
  async open(room: ActiveRoom<Connection>, path: string, opts: OpenOptions, opener: Opener): Promise<OpenDoc> {
    for (;;) {
      let docs = this.rooms.get(room);
      if (!docs) this.rooms.set(room, (docs = new Map()));
      let p = docs.get(path);
      if (!p) {
        if (docs.size >= MAX_OPEN_DOCUMENTS)
          throw new ToolError(`limit: at most ${MAX_OPEN_DOCUMENTS} documents may be open in one room`, ErrorCode.INVALID_STATE);
        p = this.load(room, path, opts);
        docs.set(path, p);
        p.catch(() => {
          if (docs.get(path) === p) docs.delete(path);
        });
      }
      const od = await p;
      if (od.unloading) {
        // Closing right now: wait for it to finish, then load it again.
        await od.chain;
        continue;
      }
      od.openers.add(opener);
      return od;
    }
  }

  private async readFile(room: ActiveRoom<Connection>, path: string): Promise<Buffer | null> {
    const st = await this.deps.storage.stat(this.ref(room), path);
    if (!st) return null;
    if (st.is_folder) throw new ToolError(`"${path}" is a folder, not a document`, ErrorCode.INVALID_REQUEST);
    if ((st.size ?? 0) > MAX_DOCUMENT_BYTES) throw new ToolError(`"${path}" is larger than ${MAX_DOCUMENT_BYTES} bytes`, ErrorCode.INVALID_REQUEST);
    const f = await this.deps.storage.openRead(this.ref(room), path);
    try {
      return f.size ? await f.read(0, f.size) : Buffer.alloc(0);
    } finally {
      await f.close();
    }
  }

  /** A schema for a new document: the opener's, else `.schemas/<ext>.json` in the room's storage. */
  private async schemaFor(room: ActiveRoom<Connection>, path: string, given: Record<string, unknown> | null): Promise<Record<string, unknown>> {
    if (given) return given;
    const sp = schemaPathFor(path);
    const text = sp ? await this.readFile(room, sp).catch(() => null) : null;
    if (!text)
      throw new ToolError(
        `a new document needs a schema: pass one, or put a MeshSchema at ${sp ?? ".schemas/<extension>.json"} in the room's storage`,
        ErrorCode.INVALID_REQUEST,
      );
    try {
      return JSON.parse(text.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw new ToolError(`${sp} is not valid JSON`, ErrorCode.INVALID_REQUEST);
    }
  }

  private parse(json: Record<string, unknown>): ParsedSchema {
    try {
      return parseSchema(json);
    } catch (e) {
      throw new ToolError(`invalid schema: ${(e as Error).message}`, ErrorCode.INVALID_REQUEST);
    }
  }

  private async load(room: ActiveRoom<Connection>, path: string, opts: OpenOptions): Promise<OpenDoc> {
    const db = this.deps.db;
    let row = await syncRepo.document(db, room.id, path);
    const file = await this.readFile(room, path);
    if (row && !file && Number(row.compacted_seq) > 0) {
      // Its file was deleted (storage.delete while no one had it open): the document is gone with it.
      await syncRepo.forget(db, room.id, path);
      row = undefined;
    }
    const doc = new Y.Doc();
    if (!row) {
      if (!file && !opts.create) throw notFound(path);
      const schemaJson = await this.schemaFor(room, path, opts.schema);
      const schema = this.parse(schemaJson);
      if (file) this.applyFile(doc, file, path);
      else if (opts.initialJson) {
        try {
          applyJson(schema, doc, opts.initialJson);
        } catch (e) {
          throw new ToolError(`initial_json: ${(e as Error).message}`, ErrorCode.INVALID_REQUEST);
        }
      }
      const now = this.deps.clock.now();
      await syncRepo.createDocument(db, { room_id: room.id, path, schema: JSON.stringify(schemaJson), created_at: now, updated_at: now });
      const od = new OpenDoc(room, path, doc, schema, schemaJson);
      this.live.add(od);
      if (!file) {
        // Its initial content is durable at once (journaled); the file appears with the first compaction.
        const text = Buffer.from(Y.encodeStateAsUpdate(doc)).toString("base64");
        od.seq = 1;
        od.lastDurable = this.journal.add({ room_id: room.id, path, seq: 1, data: text });
        await od.lastDurable;
        od.sinceCompact = 1;
        this.schedule(od);
      }
      return od;
    }
    const schemaJson = JSON.parse(row.schema) as Record<string, unknown>;
    const schema = this.parse(schemaJson);
    if (file) this.applyFile(doc, file, path);
    const od = new OpenDoc(room, path, doc, schema, schemaJson);
    od.compactedSeq = Number(row.compacted_seq);
    od.seq = od.compactedSeq;
    for (const j of await syncRepo.journal(db, room.id, path, od.compactedSeq)) {
      Y.applyUpdate(doc, Buffer.from(j.data, "base64"));
      od.seq = Number(j.seq);
    }
    this.live.add(od);
    return od;
  }

  private applyFile(doc: Y.Doc, file: Buffer, path: string) {
    if (!file.length) return;
    try {
      Y.applyUpdate(doc, file);
    } catch {
      throw new ToolError(`"${path}" is not a sync document (its file is not a Yjs update)`, ErrorCode.INVALID_REQUEST);
    }
  }

  /** The state an opener gets first: the whole document, or what it lacks given its state `vector` (base64). */
  state(od: OpenDoc, vector: string | null): Buffer {
    let sv: Uint8Array | undefined;
    if (vector) {
      try {
        sv = Buffer.from(vector, "base64");
        Y.decodeStateVector(sv);
      } catch {
        throw new ToolError("vector must be the base64 of a Yjs state vector", ErrorCode.INVALID_REQUEST);
      }
    }
    return Buffer.from(Buffer.from(Y.encodeStateAsUpdate(od.doc, sv)).toString("base64"), "ascii");
  }

  /**
   * One update from an opener (the base64 text of a Yjs v1 update): applied, checked against the schema, relayed to
   * the document's other openers, and journaled; resolves once it is durable. A malformed update, or one the schema
   * forbids, is refused (a ToolError) and neither relayed nor stored.
   */
  update(od: OpenDoc, from: Opener, text: Buffer): Promise<void> {
    if (text.length === 0) return Promise.resolve();
    if (text.length > MAX_UPDATE_BYTES)
      return Promise.reject(new ToolError(`an update must be at most ${MAX_UPDATE_BYTES} bytes of base64`, ErrorCode.INVALID_REQUEST));
    return od
      .serial(async () => {
        const bytes = Buffer.from(text.toString("ascii"), "base64");
        if (bytes.length === 0) throw new ToolError("an update must be the base64 text of a Yjs v1 update", ErrorCode.INVALID_REQUEST);
        let problem: string | null = null;
        const check = (tr: Y.Transaction) => {
          problem = checkTransaction(od.schema, od.doc, tr);
        };
        od.doc.on("afterTransaction", check);
        try {
          Y.applyUpdate(od.doc, bytes, from);
        } catch (e) {
          problem = `not a Yjs v1 update (${(e as Error).message})`;
        } finally {
          od.doc.off("afterTransaction", check);
        }
        if (problem) {
          // The document took it already: rebuild it from what is durable (the refused update is not there).
          await this.reload(od);
          throw new ToolError(`update refused: ${problem}`, ErrorCode.INVALID_REQUEST);
        }
        from.updates++;
        from.bytes += text.length;
        for (const o of od.openers) if (o !== from) o.send(text);
        const seq = ++od.seq;
        const durable = this.journal.add({ room_id: od.room.id, path: od.path, seq, data: text.toString("ascii") });
        od.lastDurable = durable.catch(() => {});
        od.sinceCompact++;
        this.schedule(od);
        return { durable };
      })
      .then(({ durable }) => durable);
  }

  private async reload(od: OpenDoc) {
    const file = await this.readFile(od.room, od.path);
    const doc = new Y.Doc();
    if (file) this.applyFile(doc, file, od.path);
    for (const j of await syncRepo.journal(this.deps.db, od.room.id, od.path, od.compactedSeq)) Y.applyUpdate(doc, Buffer.from(j.data, "base64"));
    od.doc.destroy();
    od.doc = doc;
  }

  private schedule(od: OpenDoc) {
    if (od.sinceCompact >= COMPACT_EVERY) {
      void od.serial(() => this.compact(od)).catch((e) => this.deps.log?.warn({ err: e, path: od.path }, "document compaction failed"));
      return;
    }
    if (od.timer) clearTimeout(od.timer);
    od.timer = setTimeout(() => {
      od.timer = null;
      void od.serial(() => this.compact(od)).catch((e) => this.deps.log?.warn({ err: e, path: od.path }, "document compaction failed"));
    }, COMPACT_IDLE_MS);
    od.timer.unref();
  }

  /** Write the document's state as its file, then drop the journal rows it now holds. Call inside od.serial. */
  private async compact(od: OpenDoc) {
    if (od.timer) clearTimeout(od.timer);
    od.timer = null;
    const upTo = od.seq;
    if (upTo === od.compactedSeq && od.compactedSeq > 0) return;
    // Every update up to `upTo` is journaled before the file claims it.
    await od.lastDurable;
    const bytes = Buffer.from(Y.encodeStateAsUpdate(od.doc));
    const w = await this.deps.storage.createWriter(this.ref(od.room), od.path, {
      overwrite: true,
      name: od.path.split("/").pop() ?? od.path,
      mimeType: "application/vnd.meshagent.sync",
    });
    try {
      await w.write(bytes);
      await w.commit();
    } catch (e) {
      await w.abort();
      throw e;
    }
    await syncRepo.compacted(this.deps.db, od.room.id, od.path, upTo, this.deps.clock.now());
    od.compactedSeq = upTo;
    od.sinceCompact = 0;
  }

  /** An opener leaves; the last one out compacts the document and unloads it. */
  async leave(od: OpenDoc, opener: Opener): Promise<void> {
    if (!od.openers.delete(opener) || od.openers.size > 0) return;
    od.unloading = true;
    const p = this.unload(od);
    this.unloads.add(p);
    try {
      await p;
    } finally {
      this.unloads.delete(p);
    }
  }

  /** Wait for the unloads in flight (the room server closed every socket first). */
  async close(): Promise<void> {
    while (this.unloads.size) await Promise.all([...this.unloads]);
  }

  private async unload(od: OpenDoc): Promise<void> {
    await od
      .serial(async () => {
        if (od.openers.size > 0) {
          od.unloading = false;
          return;
        }
        if (od.sinceCompact > 0) await this.compact(od);
        const docs = this.rooms.get(od.room);
        if (docs) docs.delete(od.path);
        this.live.delete(od);
        od.doc.destroy();
      })
      .catch((e) => this.deps.log?.warn({ err: e, path: od.path }, "could not unload a document"));
  }
}

export { SchemaError, rootOf };
