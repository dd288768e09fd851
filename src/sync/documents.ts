import * as Y from "yjs";
import type { Clock } from "../core/clock.js";
import type { DB } from "../store/db.js";
import type { RoomStorage, RoomRef } from "../room-server/storage.js";
import type { ActiveRoom } from "../room-server/room.js";
import type { Connection } from "../room-server/connection.js";
import { ErrorCode, ToolError } from "../room-server/protocol.js";
import { syncRepo } from "./repo.js";
import type { DocJournal, JournalHandle } from "./journal.js";
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
  /** Updates journaled since the last compaction; a compaction (one at a time) in flight. */
  sinceCompact = 0;
  compacting: Promise<void> | null = null;
  /** Journal drops begun (a reload reading the file and then the journal checks none happened in between). */
  drops = 0;
  /** Updates taken this turn, relayed together at its end. */
  pending: { from: Opener; bytes: Buffer; text: Buffer }[] = [];
  timer: NodeJS.Timeout | null = null;
  /** Set while the last opener's leaving unloads it: an opener arriving meanwhile waits, then loads it again. */
  unloading: Promise<void> | null = null;

  constructor(
    readonly room: ActiveRoom<Connection>,
    readonly path: string,
    public doc: Y.Doc,
    readonly schema: ParsedSchema,
    readonly schemaJson: Record<string, unknown>,
    readonly journal: JournalHandle,
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
  private readonly live = new Set<OpenDoc>();
  /** Unloads in progress (close() waits for them: each compacts its document into its file). */
  private readonly unloads = new Set<Promise<void>>();

  constructor(
    private readonly deps: {
      db: DB;
      clock: Clock;
      storage: RoomStorage;
      /** Where acknowledged updates wait for compaction: files (FileJournal) or the store (StoreJournal). */
      journal: DocJournal;
      log?: { warn(obj: object, msg: string): void };
    },
  ) {}

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
        await od.unloading;
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
    const journal = await this.deps.journal.open(room.id, path);
    try {
      if (row && !file && Number(row.compacted_seq) > 0) {
        // Its file was deleted (storage.delete while no one had it open): the document is gone with it.
        await journal.forget();
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
        const od = new OpenDoc(room, path, doc, schema, schemaJson, journal);
        this.live.add(od);
        if (!file) {
          // Its initial content is durable at once (journaled); the file appears with the first compaction.
          const bytes = Buffer.from(Y.encodeStateAsUpdate(doc));
          await journal.append(bytes, bytes.toString("base64"));
          od.sinceCompact = 1;
          this.schedule(od);
        }
        return od;
      }
      const schemaJson = JSON.parse(row.schema) as Record<string, unknown>;
      const schema = this.parse(schemaJson);
      await this.restore(doc, file, journal, path);
      const od = new OpenDoc(room, path, doc, schema, schemaJson, journal);
      this.live.add(od);
      return od;
    } catch (e) {
      journal.close();
      throw e;
    }
  }

  /** A document as durable: its file, then every journaled update over it. */
  private async restore(doc: Y.Doc, file: Buffer | null, journal: JournalHandle, path: string) {
    if (file) this.applyFile(doc, file, path);
    const updates = await journal.replay();
    if (updates.length) Y.transact(doc, () => updates.forEach((u) => Y.applyUpdate(doc, u)));
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
   * One update from an opener (the base64 text of a Yjs v1 update): applied, checked against the schema, journaled and
   * relayed to the document's other openers once durable. Resolves once applied, with `durable`: null when it is
   * durable already (the file journal), else the promise of its commit (acknowledge it then). A malformed update, or
   * one the schema forbids, is refused (a ToolError) and neither relayed nor stored.
   */
  update(od: OpenDoc, from: Opener, text: Buffer): Promise<{ durable: Promise<void> | null }> {
    if (text.length === 0) return Promise.resolve({ durable: null });
    if (text.length > MAX_UPDATE_BYTES)
      return Promise.reject(new ToolError(`an update must be at most ${MAX_UPDATE_BYTES} bytes of base64`, ErrorCode.INVALID_REQUEST));
    return od.serial(async () => {
      const b64 = text.toString("ascii");
      const bytes = Buffer.from(b64, "base64");
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
      let durable: Promise<void> | null;
      try {
        durable = od.journal.append(bytes, b64);
      } catch (e) {
        // Not journaled (a full disk): the document must not keep it either.
        await this.reload(od);
        throw new ToolError(`could not journal the update: ${(e as Error).message}`, ErrorCode.OPERATION_FAILED);
      }
      // Readers see an update once it is durable: at once with the file journal, after its commit with the store's.
      if (durable) durable.then(() => this.relay(od, from, bytes, text)).catch(() => {});
      else this.relay(od, from, bytes, text);
      od.sinceCompact++;
      this.schedule(od);
      return { durable };
    });
  }

  /**
   * Relay an update to the document's other openers right after this turn: the writer's acknowledgement (sent in this
   * one when the journal is a file) leaves first, so its next update overlaps the fan-out. Updates queued meanwhile
   * go out merged (Y.mergeUpdates): one message per opener per turn, however fast the writers are.
   */
  private relay(od: OpenDoc, from: Opener, bytes: Buffer, text: Buffer) {
    od.pending.push({ from, bytes, text });
    if (od.pending.length > 1) return;
    setImmediate(() => {
      const batch = od.pending;
      od.pending = [];
      const merged = new Map<Opener | null, Buffer>();
      const textFor = (skip: Opener | null, items: typeof batch) => {
        let t = merged.get(skip);
        if (!t) {
          t = items.length === 1 ? items[0].text : Buffer.from(Buffer.from(Y.mergeUpdates(items.map((i) => i.bytes))).toString("base64"), "ascii");
          merged.set(skip, t);
        }
        return t;
      };
      const single = batch.every((i) => i.from === batch[0].from) ? batch[0].from : null;
      for (const o of od.openers) {
        if (single !== null) {
          if (o !== single) o.send(textFor(null, batch));
        } else {
          const mine = batch.filter((i) => i.from !== o);
          if (mine.length) o.send(mine.length === batch.length ? textFor(null, batch) : textFor(o, mine));
        }
      }
    });
  }

  private async reload(od: OpenDoc) {
    for (;;) {
      // A compaction that drops journal entries between reading the file and the journal would leave a gap: read again.
      const gen = od.drops;
      const doc = new Y.Doc();
      await this.restore(doc, await this.readFile(od.room, od.path), od.journal, od.path);
      if (gen !== od.drops) {
        doc.destroy();
        continue;
      }
      od.doc.destroy();
      od.doc = doc;
      return;
    }
  }

  private schedule(od: OpenDoc) {
    if (od.sinceCompact >= COMPACT_EVERY) {
      void this.compact(od);
      return;
    }
    if (od.timer) clearTimeout(od.timer);
    od.timer = setTimeout(() => {
      od.timer = null;
      void this.compact(od);
    }, COMPACT_IDLE_MS);
    od.timer.unref();
  }

  /**
   * Write the document's state as its file, then drop the journal before it. The snapshot and the journal mark are
   * taken together (between two updates: updates are synchronous once applied), the file is written while updates go
   * on (they journal after the mark), and a crash anywhere leaves the file or the journal holding every update.
   */
  private compact(od: OpenDoc): Promise<void> {
    if (od.compacting) return od.compacting;
    if (od.timer) clearTimeout(od.timer);
    od.timer = null;
    const p = (async () => {
      try {
        // Serialized with updates and reloads: the snapshot holds exactly the updates journaled before the mark.
        const { bytes, mark } = await od.serial(async () => {
          const bytes = Buffer.from(Y.encodeStateAsUpdate(od.doc));
          const mark = od.journal.mark();
          od.sinceCompact = 0;
          return { bytes, mark };
        });
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
        await syncRepo.compacted(this.deps.db, od.room.id, od.path, mark, this.deps.clock.now());
        od.drops++;
        await od.journal.drop(mark);
        // Like a storage.upload of the file: the room's participants hear of it (the storage service published the
        // storage.file.updated event of webhooks as it committed).
        od.room.fanout(od.room.connections.values(), "storage.file.updated", { path: od.path });
      } catch (e) {
        this.deps.log?.warn({ err: e, path: od.path }, "document compaction failed");
        od.sinceCompact = Math.max(od.sinceCompact, 1);
      } finally {
        od.compacting = null;
      }
    })();
    od.compacting = p;
    return p;
  }

  /** An opener leaves; the last one out compacts the document and unloads it. */
  async leave(od: OpenDoc, opener: Opener): Promise<void> {
    if (!od.openers.delete(opener) || od.openers.size > 0) return;
    const p = this.unload(od);
    od.unloading = p;
    this.unloads.add(p);
    try {
      await p;
    } finally {
      this.unloads.delete(p);
    }
  }

  /**
   * At shutdown, after the room server closed every socket: their streams' aborts unload their documents (each
   * compacting into its file) as the sockets finish closing; wait for that, then compact whatever is still open.
   */
  async close(): Promise<void> {
    const deadline = Date.now() + 5000;
    while (this.live.size > this.unloads.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    while (this.unloads.size) await Promise.all([...this.unloads]);
    for (const od of [...this.live]) {
      if (od.compacting) await od.compacting;
      if (od.sinceCompact > 0) await this.compact(od);
      if (od.timer) clearTimeout(od.timer);
      od.journal.close();
      this.live.delete(od);
    }
  }

  private async unload(od: OpenDoc): Promise<void> {
    try {
      // A compaction in flight finishes first, then the last updates go to the file (openers arriving meanwhile wait).
      if (od.compacting) await od.compacting;
      if (od.sinceCompact > 0) await this.compact(od);
    } catch (e) {
      this.deps.log?.warn({ err: e, path: od.path }, "could not compact a document on unload");
    }
    await od.serial(async () => {
      if (od.timer) clearTimeout(od.timer);
      const docs = this.rooms.get(od.room);
      if (docs) docs.delete(od.path);
      this.live.delete(od);
      od.journal.close();
      od.doc.destroy();
    });
  }
}

export { SchemaError, rootOf };
