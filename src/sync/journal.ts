import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { DB } from "../store/db.js";
import { syncRepo } from "./repo.js";

/**
 * Where a document's acknowledged updates wait until its file is compacted (src/sync/documents.ts). An update is
 * acknowledged once `append` says it is durable; a load replays every journaled update over the document's file
 * (Yjs updates are idempotent, so replaying one the file already holds changes nothing). Compaction takes a `mark`
 * with the snapshot it writes, then `drop`s what came before the mark once the file is committed.
 */
export interface DocJournal {
  /** Open the document's journal (at load); returns a handle the other calls take. */
  open(roomId: string, path: string): Promise<JournalHandle>;
}

export interface JournalHandle {
  /** Every update journaled (raw Yjs v1 bytes), oldest first. */
  replay(): Promise<Buffer[]>;
  /** Journal an update (raw bytes; `text` is its base64): null when durable already, else a promise of it. */
  append(bytes: Buffer, text: string): Promise<void> | null;
  /** Updates appended from now on come after the snapshot being compacted; returns the mark. */
  mark(): number;
  /** The snapshot taken at `mark` is in the document's file: drop the updates before the mark. */
  drop(mark: number): Promise<void>;
  /** The document is unloaded: release what the handle holds (not the journal). */
  close(): void;
  /** The document is gone (its file deleted): remove its journal. */
  forget(): Promise<void>;
}

/**
 * The journal as files next to the database (the default on SQLite): `<dir>/<room_id>/<sha256(path)>/<segment>.log`,
 * records `[u32 length][update][u32 crc32]`, written with one write(2) each before the acknowledgement. The kernel
 * holds a completed write even when the process is killed (kill -9), so no acknowledged update is lost then; it does
 * not fsync each update (a power loss can lose the last moments, as with PostgreSQL's `synchronous_commit = off`).
 * A torn or corrupt tail record (a crash mid-write) ends the replay. Compaction starts a new segment at its mark
 * and removes the older segments after the file is written.
 */
export class FileJournal implements DocJournal {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  async open(roomId: string, path: string): Promise<JournalHandle> {
    const dir = join(this.dir, roomId, createHash("sha256").update(path).digest("hex").slice(0, 40));
    mkdirSync(dir, { recursive: true });
    const segments = () =>
      readdirSync(dir)
        .map((f) => /^(\d+)\.log$/.exec(f))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => Number(m[1]))
        .sort((a, b) => a - b);
    let current = (segments().at(-1) ?? 0) + 1;
    let fd: number | null = null;
    const header = Buffer.alloc(4);
    const trailer = Buffer.alloc(4);
    return {
      async replay() {
        const out: Buffer[] = [];
        for (const seg of segments()) {
          const buf = readFileSync(join(dir, `${seg}.log`));
          for (let at = 0; at + 8 <= buf.length;) {
            const len = buf.readUInt32LE(at);
            if (at + 8 + len > buf.length) break;
            const data = buf.subarray(at + 4, at + 4 + len);
            if (crc32(data) !== buf.readUInt32LE(at + 4 + len)) break;
            out.push(Buffer.from(data));
            at += 8 + len;
          }
        }
        return out;
      },
      append(bytes) {
        if (fd === null) fd = openSync(join(dir, `${current}.log`), "a");
        header.writeUInt32LE(bytes.length);
        trailer.writeUInt32LE(crc32(bytes));
        // One write(2): a record is whole in the page cache or (a crash mid-call) a torn tail the replay stops at.
        writeSync(fd, Buffer.concat([header, bytes, trailer]));
        return null;
      },
      mark() {
        if (fd !== null) closeSync(fd);
        fd = null;
        return current++;
      },
      async drop(mark) {
        for (const seg of segments()) if (seg <= mark) rmSync(join(dir, `${seg}.log`), { force: true });
      },
      close() {
        if (fd !== null) closeSync(fd);
        fd = null;
      },
      async forget() {
        if (fd !== null) closeSync(fd);
        fd = null;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

interface Row {
  room_id: string;
  path: string;
  seq: number;
  data: string;
}

/**
 * The journal in the database (`sync_updates`, the default on PostgreSQL: every process of an installation sees it,
 * so the process that takes a room over after its owner died replays what the owner acknowledged). Rows queued in
 * one turn of the event loop are committed in one statement (group commit); an update is durable once its row is.
 */
export class StoreJournal implements DocJournal {
  private queue: { row: Row; done: (e?: unknown) => void }[] = [];
  private flushing = false;

  constructor(private readonly db: DB) {}

  private add(row: Row): Promise<void> {
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

  async open(roomId: string, path: string): Promise<JournalHandle> {
    const db = this.db;
    let seq = await syncRepo.maxSeq(db, roomId, path);
    let last: Promise<void> = Promise.resolve();
    return {
      async replay() {
        // Updates appended but not yet committed are part of the document too.
        await last;
        return (await syncRepo.journal(db, roomId, path, 0)).map((j) => Buffer.from(j.data, "base64"));
      },
      append: (_bytes, text) => {
        const p = this.add({ room_id: roomId, path, seq: ++seq, data: text });
        last = p.catch(() => {});
        return p;
      },
      mark: () => seq,
      async drop(mark) {
        // Every row up to the mark is committed before it is dropped (a drop racing its insert would leave it behind).
        await last;
        await syncRepo.dropJournal(db, roomId, path, mark);
      },
      close() {},
      async forget() {
        await last;
        await syncRepo.dropJournal(db, roomId, path, Number.MAX_SAFE_INTEGER);
      },
    };
  }
}
