import { mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { dirname, join, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import type { BigIntStats } from "node:fs";
import { assertKey, assertPrefix, BlobConflictError, compareKeys } from "./types.js";
import type { BlobEntry, BlobHandle, BlobInfo, BlobStore, ByteRange, ListPage, PutResult } from "./types.js";

const TMP_DIR = ".tmp";
/** Temp files of a process that is still alive are kept this long before they count as abandoned anyway. */
const TMP_MAX_AGE_MS = 24 * 3600 * 1000;
const PATH_MAX = 4096;

type ErrnoError = NodeJS.ErrnoException;
const code = (e: unknown) => (e as ErrnoError)?.code;

/** A strong validator of one version: a publish always creates a new inode with a new mtime. */
function etagOf(st: BigIntStats): string {
  return `${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}`;
}

function infoOf(key: string, st: BigIntStats): BlobInfo {
  return { key, size: Number(st.size), etag: etagOf(st), lastModified: Number(st.mtimeMs) };
}

async function fsyncDir(dir: string) {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) === "EPERM";
  }
}

/**
 * Blobs as files under a root directory (default `<MESHAGENT_DATA_DIR>/storage`): key `a/b/c` is `<root>/a/b/c`.
 *
 * Atomic publish: the body streams into `<root>/.tmp/<pid>.<uuid>.part` (same filesystem, outside the key space),
 * is fsynced, then renamed over the destination and the directory is fsynced. rename(2) is atomic, so readers see
 * the old file or the new one, never a partial one; a crash before the rename leaves only the temp file, which
 * `sweep` removes once its process is gone. Readers keep an open descriptor, so a version being read stays
 * readable after a newer one replaced it.
 */
export class FileBlobStore implements BlobStore {
  readonly kind = "file" as const;
  readonly maxKeyBytes: number;
  private readonly root: string;
  private readonly tmp: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.tmp = join(this.root, TMP_DIR);
    // Every syscall takes the full path, so root + "/" + key must stay under PATH_MAX.
    this.maxKeyBytes = PATH_MAX - 1 - Buffer.byteLength(this.root + sep);
  }

  async init() {
    await mkdir(this.tmp, { recursive: true });
  }

  private pathOf(key: string): string {
    assertKey(key);
    const p = join(this.root, key);
    if (!p.startsWith(this.root + sep) || p.startsWith(this.tmp + sep)) throw new Error(`blob key escapes the root: ${key}`);
    return p;
  }

  private dirOf(prefix: string): string {
    assertPrefix(prefix);
    return prefix ? this.pathOf(prefix.slice(0, -1)) : this.root;
  }

  async put(key: string, body: Readable): Promise<PutResult> {
    const dest = this.pathOf(key);
    const tmp = join(this.tmp, `${process.pid}.${randomUUID()}.part`);
    const fh = await open(tmp, "wx", 0o644);
    // autoClose off: the handle is fsynced before it is closed. The stream holds a reference on the handle until it
    // is destroyed, and FileHandle.close() waits for that, so the stream is destroyed first.
    const ws = fh.createWriteStream({ autoClose: false, emitClose: false, highWaterMark: 1024 * 1024 });
    let closed = false;
    try {
      await pipeline(body, ws);
      await fh.sync();
      const st = await fh.stat({ bigint: true });
      ws.destroy();
      await fh.close();
      closed = true;
      await this.publish(tmp, dest);
      return { size: Number(st.size), etag: etagOf(st) };
    } catch (e) {
      ws.destroy();
      if (!closed) await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw e;
    }
  }

  /** mkdir -p the parents, rename over the destination, fsync every directory whose entries changed. */
  private async publish(tmp: string, dest: string) {
    const dir = dirname(dest);
    for (let attempt = 0; ; attempt++) {
      let created: string | undefined;
      try {
        created = await mkdir(dir, { recursive: true });
      } catch (e) {
        if (code(e) === "ENOTDIR" || code(e) === "EEXIST") throw new BlobConflictError("a parent of this path is a file");
        throw e;
      }
      try {
        await rename(tmp, dest);
      } catch (e) {
        // A concurrent delete may have pruned the (then empty) directory between mkdir and rename: try again.
        if (code(e) === "ENOENT" && attempt < 5) continue;
        if (code(e) === "EISDIR" || code(e) === "ENOTEMPTY" || code(e) === "EEXIST") {
          // An empty directory (left by an interrupted prune) is no folder: it holds no file. Replace it.
          if (
            attempt < 5 &&
            (await rmdir(dest).then(
              () => true,
              () => false,
            ))
          )
            continue;
          throw new BlobConflictError("this path is a folder");
        }
        if (code(e) === "ENOTDIR") throw new BlobConflictError("a parent of this path is a file");
        throw e;
      }
      await fsyncDir(dir);
      if (created) {
        // New directories must be durable in their parents too.
        for (let d = dir; d !== dirname(created); d = dirname(d)) await fsyncDir(dirname(d));
      }
      await fsyncDir(this.tmp);
      return;
    }
  }

  async open(key: string): Promise<BlobHandle | null> {
    let fh: FileHandle;
    try {
      fh = await open(this.pathOf(key), "r");
    } catch (e) {
      if (["ENOENT", "ENOTDIR", "EISDIR", "ENAMETOOLONG"].includes(code(e) ?? "")) return null;
      throw e;
    }
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) {
      await fh.close();
      return null;
    }
    let used = false;
    return {
      info: infoOf(key, st),
      async read(range?: ByteRange) {
        if (used) throw new Error("a blob handle is read once");
        used = true;
        // An empty file with no range: createReadStream with end -1 would misbehave, so give it no bounds.
        return fh.createReadStream({ start: range?.start, end: range?.end, highWaterMark: 1024 * 1024, autoClose: true });
      },
      async close() {
        if (!used) {
          used = true;
          await fh.close();
        }
      },
    };
  }

  async stat(key: string): Promise<BlobInfo | null> {
    try {
      const st = await stat(this.pathOf(key), { bigint: true });
      return st.isFile() ? infoOf(key, st) : null;
    } catch (e) {
      if (["ENOENT", "ENOTDIR", "ENAMETOOLONG"].includes(code(e) ?? "")) return null;
      throw e;
    }
  }

  async delete(key: string): Promise<boolean> {
    const p = this.pathOf(key);
    try {
      const st = await stat(p);
      if (!st.isFile()) return false;
      await unlink(p);
    } catch (e) {
      if (["ENOENT", "ENOTDIR", "EISDIR", "EPERM"].includes(code(e) ?? "")) return false;
      throw e;
    }
    await fsyncDir(dirname(p));
    await this.prune(dirname(p));
    return true;
  }

  /** Remove now-empty directories up to the root, so an empty folder disappears as it does on S3. */
  private async prune(dir: string) {
    for (let d = dir; d.startsWith(this.root + sep); d = dirname(d)) {
      try {
        await rmdir(d);
      } catch {
        return;
      }
    }
  }

  async list(prefix: string, opts: { after?: string; limit: number }): Promise<ListPage | null> {
    const dir = this.dirOf(prefix);
    let dirents;
    try {
      dirents = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (["ENOENT", "ENOTDIR", "ENAMETOOLONG"].includes(code(e) ?? "")) return null;
      throw e;
    }
    const items: { name: string; isFolder: boolean; sortKey: string }[] = [];
    for (const d of dirents) {
      if (dir === this.root && d.name === TMP_DIR) continue;
      if (d.isFile()) items.push({ name: d.name, isFolder: false, sortKey: d.name });
      else if (d.isDirectory()) items.push({ name: d.name, isFolder: true, sortKey: d.name + "/" });
    }
    items.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    const from = opts.after === undefined ? items : items.filter((i) => compareKeys(i.sortKey, opts.after!) > 0);
    const entries: BlobEntry[] = [];
    let next: string | undefined;
    for (const item of from) {
      if (entries.length === opts.limit) {
        next = entries.length ? entries[entries.length - 1].name + (entries[entries.length - 1].isFolder ? "/" : "") : undefined;
        break;
      }
      if (item.isFolder) {
        entries.push({ name: item.name, isFolder: true });
        continue;
      }
      try {
        const st = await stat(join(dir, item.name), { bigint: true });
        if (st.isFile()) entries.push({ name: item.name, isFolder: false, size: Number(st.size), etag: etagOf(st), lastModified: Number(st.mtimeMs) });
      } catch {
        // deleted meanwhile
      }
    }
    return { entries, next };
  }

  async *walk(prefix: string): AsyncIterable<BlobInfo> {
    const base = this.dirOf(prefix);
    const stack = [base];
    while (stack.length) {
      const dir = stack.pop()!;
      let dirents;
      try {
        dirents = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (["ENOENT", "ENOTDIR"].includes(code(e) ?? "")) continue;
        throw e;
      }
      for (const d of dirents) {
        const p = join(dir, d.name);
        if (p === this.tmp) continue;
        if (d.isDirectory()) stack.push(p);
        else if (d.isFile()) {
          try {
            const st = await stat(p, { bigint: true });
            yield infoOf(
              p
                .slice(this.root.length + 1)
                .split(sep)
                .join("/"),
              st,
            );
          } catch {
            // deleted meanwhile
          }
        }
      }
    }
  }

  async hasChildren(prefix: string): Promise<boolean> {
    for await (const _ of this.walk(prefix)) return true;
    return false;
  }

  async sweep(now = Date.now()): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.tmp);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(name.split(".", 1)[0]);
      const p = join(this.tmp, name);
      try {
        const st = await stat(p);
        const dead = Number.isInteger(pid) && pid !== process.pid && !pidAlive(pid);
        if (dead || now - st.mtimeMs > TMP_MAX_AGE_MS) await unlink(p);
      } catch {
        // gone meanwhile
      }
    }
  }

  async close() {}
}
