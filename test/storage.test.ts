import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { startServer, type TestServer } from "./helpers/server.js";
import { BACKENDS, backendEnv, q, rawUpload, until, type Backend } from "./helpers/storage.js";
import type { TestS3 } from "./helpers/s3.js";
import type { DomainEvent } from "../src/core/events.js";
import { ManualClock } from "../src/core/clock.js";
import { parseApiKey } from "../src/api-keys/format.js";
import { projectScope, blobKey } from "../src/blobs/keys.js";
import { storageRepo } from "../src/storage/repo.js";
import { Readable } from "node:stream";
import { RawRoomClient } from "./helpers/raw-room.js";
import { mintToken, roomWsUrl } from "./helpers/room-client.js";

const MAX_UPLOAD = 12 * 1024 * 1024;

/** Every file under a directory, as paths relative to it. */
function filesUnder(dir: string, rel = ""): string[] {
  let out: string[] = [];
  let ents;
  try {
    ents = readdirSync(join(dir, rel), { withFileTypes: true });
  } catch {
    return [];
  }
  for (const e of ents) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out = out.concat(filesUnder(dir, p));
    else out.push(p);
  }
  return out;
}

describe.each(BACKENDS)("project storage on the %s backend", (backend: Backend) => {
  let s: TestServer;
  let s3: TestS3 | undefined;
  let P: string;
  let keyId: string;
  const clock = new ManualClock(Date.parse("2026-06-01T00:00:00Z"));
  const events: DomainEvent[] = [];
  const url = (route: string, path?: string, extra = "") => `/projects/${P}/storage/${route}${path === undefined ? "" : `?path=${q(path)}`}${extra}`;
  const upload = (path: string, data: Uint8Array | string) =>
    s.client().upload({ projectId: P, path, data: typeof data === "string" ? Buffer.from(data) : data });
  const download = async (path: string) => Buffer.from(await s.client().download({ projectId: P, path }));

  beforeAll(async () => {
    const b = await backendEnv(backend);
    s3 = b.s3;
    s = await startServer({ clock, env: { ...b.env, MESHAGENT_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) } });
    P = s.admin.projectId;
    keyId = parseApiKey(s.admin.apiKey)!.keyId;
    s.ctx.bus.on((e) => events.push(e));
  });
  afterAll(async () => {
    await s?.close();
    await s3?.close();
  });

  describe("round trips with the official client", () => {
    it.each([
      ["0 bytes", "sizes/empty.bin", 0],
      ["1 byte", "sizes/one.bin", 1],
      ["10 MB of random bytes", "sizes/ten-mb.bin", 10_000_000],
    ])("%s", async (_name, path, size) => {
      const data = randomBytes(size);
      await upload(path, data);
      const back = await download(path);
      expect(back.length).toBe(size);
      expect(back.equals(data)).toBe(true);
      const st = await s.http("GET", url("stat", path));
      expect(st.status).toBe(200);
      expect(st.json).toMatchObject({ path, name: path.split("/").pop(), is_folder: false, size });
    });

    it.each([
      "docs/über/naïve café.txt",
      "日本語/ファイル 名前.md",
      "emoji/🎉 party.json",
      "odd/spaces and + plus & amp=eq?#hash.txt",
      "odd/percent%20literal%2F.txt",
      "odd/quotes 'single' \"double\".txt",
    ])("UTF-8 name %s", async (path) => {
      const data = Buffer.from(`content of ${path}`);
      await upload(path, data);
      expect((await download(path)).equals(data)).toBe(true);
      const folder = path.slice(0, path.lastIndexOf("/"));
      const l = await s.http("GET", url("list", folder));
      expect(l.status).toBe(200);
      expect(l.json.files.map((f: { name: string }) => f.name)).toContain(path.slice(path.lastIndexOf("/") + 1));
    });

    it("normalizes names to NFC: the decomposed spelling reaches the same file", async () => {
      const nfc = "unicode/caf\u00e9.txt";
      const nfd = "unicode/cafe\u0301.txt";
      await upload(nfd, "decomposed");
      expect((await download(nfc)).toString()).toBe("decomposed");
      await upload(nfc, "composed");
      expect((await download(nfd)).toString()).toBe("composed");
      const l = await s.http("GET", url("list", "unicode"));
      expect(l.json.files).toHaveLength(1);
      expect(l.json.files[0].name).toBe("caf\u00e9.txt");
    });

    it("a missing file is 404 (and the official client throws)", async () => {
      const r = await s.http("GET", url("download", "no/such/file.txt"));
      expect(r.status).toBe(404);
      expect(r.json.error.code).toBe("not_found");
      await expect(download("no/such/file.txt")).rejects.toThrow(/404/);
      // a folder is not a file either
      expect((await s.http("GET", url("download", "sizes"))).status).toBe(404);
    });
  });

  describe("overwrite, events and usage", () => {
    it("replaces the content atomically, changes the ETag and publishes storage.file.updated", async () => {
      events.length = 0;
      await upload("ow/file.txt", "version one");
      const a = await s.http("GET", url("download", "ow/file.txt"));
      await upload("ow/file.txt", "version two, longer");
      const b = await s.http("GET", url("download", "ow/file.txt"));
      expect(b.text).toBe("version two, longer");
      expect(a.headers.get("etag")).not.toBe(b.headers.get("etag"));
      const ups = events.filter((e) => e.type === "storage.file.updated");
      expect(ups).toHaveLength(2);
      expect(ups[1]).toEqual({
        type: "storage.file.updated",
        project_id: P,
        data: { path: "ow/file.txt", participant_id: keyId, size: 19, etag: b.headers.get("etag")!.replace(/"/g, "") },
      });
    });

    it("tracks stored bytes per project through uploads, overwrites and deletes", async () => {
      const other = await s.otherProject();
      const c = s.client(other.apiKey);
      expect(await s.ctx.storage.usage(other.projectId)).toEqual({ bytes: 0, files: 0 });
      await c.upload({ projectId: other.projectId, path: "a.bin", data: randomBytes(1000) });
      await c.upload({ projectId: other.projectId, path: "d/b.bin", data: randomBytes(500) });
      expect(await s.ctx.storage.usage(other.projectId)).toEqual({ bytes: 1500, files: 2 });
      await c.upload({ projectId: other.projectId, path: "a.bin", data: randomBytes(100) });
      expect(await s.ctx.storage.usage(other.projectId)).toEqual({ bytes: 600, files: 2 });
      const del = await s.http("DELETE", `/projects/${other.projectId}/storage/delete?path=d/b.bin`, { token: other.apiKey });
      expect(del.json).toEqual({ ok: true, deleted: 1 });
      expect(await s.ctx.storage.usage(other.projectId)).toEqual({ bytes: 100, files: 1 });
      const r = await s.http("GET", `/projects/${other.projectId}/storage/usage`, { token: other.apiKey });
      expect(r.json).toEqual({ bytes: 100, files: 1, quota_bytes: null, max_upload_bytes: MAX_UPLOAD });
      // the admin's project is counted separately
      expect((await s.ctx.storage.usage(P)).bytes).toBeGreaterThan(10_000_000);
    });

    it("concurrent uploads of one path converge: the index and the usage match what is stored", async () => {
      const other = await s.otherProject();
      const c = s.client(other.apiKey);
      const sizes = [1000, 20_000, 300, 50_000, 7];
      await Promise.all(sizes.map((n) => c.upload({ projectId: other.projectId, path: "race.bin", data: randomBytes(n) })));
      const st = await s.http("GET", `/projects/${other.projectId}/storage/stat?path=race.bin`, { token: other.apiKey });
      expect(sizes).toContain(st.json.size);
      expect(await s.ctx.storage.usage(other.projectId)).toEqual({ bytes: st.json.size, files: 1 });
      const row = await storageRepo.file(s.ctx.store.db, `projects/${other.projectId}`, "race.bin");
      expect(row).toMatchObject({ size: st.json.size, etag: st.json.etag });
    });

    it("names the user as participant_id when a user writes", async () => {
      const dev = await s.user({ is_developer: true });
      events.length = 0;
      await s.client(dev.token).upload({ projectId: P, path: "by-user.txt", data: Buffer.from("x") });
      await s.http("DELETE", url("delete", "by-user.txt"), { token: dev.token });
      expect(events.map((e) => [e.type, e.data.participant_id, e.data.path])).toEqual([
        ["storage.file.updated", dev.userId, "by-user.txt"],
        ["storage.file.deleted", dev.userId, "by-user.txt"],
      ]);
      expect(events[1].data).toMatchObject({ size: 1 });
    });
  });

  describe("download headers, ranges and conditional requests", () => {
    const content = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    let etag: string;
    beforeAll(async () => {
      await upload("range/data.bin", content);
      etag = (await s.http("HEAD", url("download", "range/data.bin"))).headers.get("etag")!;
    });

    it("sends Content-Type from the extension, Content-Length, ETag and Last-Modified", async () => {
      for (const [path, type] of [
        ["types/a.json", "application/json; charset=utf-8"],
        ["types/b.txt", "text/plain; charset=utf-8"],
        ["types/c.png", "image/png"],
        ["types/d.pdf", "application/pdf"],
        ["types/noext", "application/octet-stream"],
      ]) {
        await upload(path, "{}");
        const r = await s.http("GET", url("download", path));
        expect(r.status).toBe(200);
        expect(r.headers.get("content-type")).toBe(type);
        expect(r.headers.get("content-length")).toBe("2");
        expect(r.headers.get("etag")).toMatch(/^"[^"]+"$/);
        expect(Date.parse(r.headers.get("last-modified")!)).toBeGreaterThan(0);
        expect(r.headers.get("accept-ranges")).toBe("bytes");
      }
    });

    it("HEAD gives the headers with the real length and no body", async () => {
      const r = await s.http("HEAD", url("download", "range/data.bin"));
      expect(r.status).toBe(200);
      expect(r.headers.get("content-length")).toBe("100");
      expect(r.text).toBe("");
    });

    it.each([
      ["bytes=0-0", 0, 0],
      ["bytes=10-19", 10, 19],
      ["bytes=90-", 90, 99],
      ["bytes=-5", 95, 99],
      ["bytes=95-200", 95, 99],
      ["bytes=-500", 0, 99],
    ])("Range %s → 206", async (range, start, end) => {
      const r = await fetch(s.url + url("download", "range/data.bin"), { headers: { authorization: `Bearer ${s.admin.apiKey}`, range } });
      expect(r.status).toBe(206);
      expect(r.headers.get("content-range")).toBe(`bytes ${start}-${end}/100`);
      expect(r.headers.get("content-length")).toBe(String(end - start + 1));
      expect(Buffer.from(await r.arrayBuffer()).equals(content.subarray(start, end + 1))).toBe(true);
    });

    it.each(["bytes=100-", "bytes=150-160", "bytes=-0"])("Range %s → 416", async (range) => {
      const r = await s.http("GET", url("download", "range/data.bin"), { headers: { range } });
      expect(r.status).toBe(416);
      expect(r.headers.get("content-range")).toBe("bytes */100");
      expect(r.json.error.code).toBe("range_not_satisfiable");
    });

    it.each(["bytes=0-1,5-6", "bytes=abc", "items=0-1", "bytes=5-2"])("Range %s is ignored → 200 with everything", async (range) => {
      const r = await fetch(s.url + url("download", "range/data.bin"), { headers: { authorization: `Bearer ${s.admin.apiKey}`, range } });
      expect(r.status).toBe(200);
      expect(Buffer.from(await r.arrayBuffer()).equals(content)).toBe(true);
    });

    it("a range of an empty file is unsatisfiable", async () => {
      const r = await s.http("GET", url("download", "sizes/empty.bin"), { headers: { range: "bytes=0-" } });
      expect(r.status).toBe(416);
    });

    it("If-Range applies the range only while the ETag matches", async () => {
      const ok = await s.http("GET", url("download", "range/data.bin"), { headers: { range: "bytes=0-1", "if-range": etag } });
      expect(ok.status).toBe(206);
      const stale = await s.http("GET", url("download", "range/data.bin"), { headers: { range: "bytes=0-1", "if-range": '"stale"' } });
      expect(stale.status).toBe(200);
      expect(stale.headers.get("content-length")).toBe("100");
    });

    it("If-None-Match answers 304 for the current ETag and 200 otherwise", async () => {
      for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
        const r = await s.http("GET", url("download", "range/data.bin"), { headers: { "if-none-match": inm } });
        expect(r.status).toBe(304);
        expect(r.text).toBe("");
        expect(r.headers.get("etag")).toBe(etag);
      }
      const r = await s.http("GET", url("download", "range/data.bin"), { headers: { "if-none-match": '"something-else"' } });
      expect(r.status).toBe(200);
      // after an overwrite with other content the old ETag no longer matches
      await upload("range/data.bin", Buffer.concat([content.subarray(0, 99), Buffer.from([0xff])]));
      const after = await s.http("GET", url("download", "range/data.bin"), { headers: { "if-none-match": etag } });
      expect(after.status).toBe(200);
      etag = after.headers.get("etag")!;
    });
  });

  describe("list, stat and delete", () => {
    beforeAll(async () => {
      for (const p of ["tree/a.txt", "tree/b.txt", "tree/sub/c.txt", "tree/sub/deep/d.txt", "tree/z/e.txt"]) await upload(p, p);
    });

    it("lists one level: files and folders, ordered, with metadata", async () => {
      const r = await s.http("GET", url("list", "tree"));
      expect(r.status).toBe(200);
      expect(r.json.next).toBeNull();
      expect(r.json.files.map((f: any) => [f.name, f.path, f.is_folder, f.size])).toEqual([
        ["a.txt", "tree/a.txt", false, 10],
        ["b.txt", "tree/b.txt", false, 10],
        ["sub", "tree/sub", true, null],
        ["z", "tree/z", true, null],
      ]);
      expect(r.json.files[0]).toMatchObject({ content_type: "text/plain; charset=utf-8", etag: expect.any(String), updated_at: expect.any(String) });
      // a trailing slash names the same folder; the root lists the top level
      expect((await s.http("GET", url("list", "tree/"))).json.files).toHaveLength(4);
      const root = await s.http("GET", url("list"));
      expect(root.json.files.map((f: any) => f.name)).toContain("tree");
    });

    it("pages with limit and after", async () => {
      const seen: string[] = [];
      let after: string | null = null;
      for (let i = 0; i < 10; i++) {
        const r: { json: { files: { name: string }[]; next: string | null } } = await s.http(
          "GET",
          url("list", "tree", `&limit=1${after ? `&after=${q(after)}` : ""}`),
        );
        seen.push(...r.json.files.map((f) => f.name));
        after = r.json.next;
        if (!after) break;
      }
      expect(seen).toEqual(["a.txt", "b.txt", "sub", "z"]);
      const two = await s.http("GET", url("list", "tree", "&limit=2"));
      expect(two.json.files).toHaveLength(2);
      expect(two.json.next).toBe("b.txt");
    });

    it("orders names as UTF-8 bytes with folders as name/, the same on every backend and across pages", async () => {
      for (const p of ["order/suba", "order/sub/x", "order/sub.txt", "order/sub!x", "order/Zed", "order/émile"]) await upload(p, "x");
      const expected = ["Zed", "sub!x", "sub.txt", "sub", "suba", "émile"];
      expect((await s.http("GET", url("list", "order"))).json.files.map((f: any) => f.name)).toEqual(expected);
      const seen: string[] = [];
      let after: string | null = null;
      do {
        const r: any = await s.http("GET", url("list", "order", `&limit=1${after ? `&after=${q(after)}` : ""}`));
        seen.push(...r.json.files.map((f: any) => f.name));
        after = r.json.next;
      } while (after);
      expect(seen).toEqual(expected);
    });

    it("a missing folder is 404, a file is 400, bad paging is 400", async () => {
      expect((await s.http("GET", url("list", "tree/nope"))).status).toBe(404);
      const f = await s.http("GET", url("list", "tree/a.txt"));
      expect(f.status).toBe(400);
      expect(f.json.error.message).toMatch(/file/);
      expect((await s.http("GET", url("list", "tree", "&limit=0"))).status).toBe(400);
      expect((await s.http("GET", url("list", "tree", "&limit=abc"))).status).toBe(400);
    });

    it("stats files and folders", async () => {
      const f = await s.http("GET", url("stat", "tree/sub/c.txt"));
      expect(f.json).toMatchObject({ name: "c.txt", path: "tree/sub/c.txt", is_folder: false, size: 14 });
      const d = await s.http("GET", url("stat", "tree/sub"));
      expect(d.json).toEqual({ name: "sub", path: "tree/sub", is_folder: true, size: null, created_at: null, updated_at: null });
      expect((await s.http("GET", url("stat", "tree/none"))).status).toBe(404);
    });

    it("deletes a file, refuses a folder without recursive, deletes a folder recursively", async () => {
      events.length = 0;
      const before = await s.ctx.storage.usage(P);
      const one = await s.http("DELETE", url("delete", "tree/a.txt"));
      expect(one.status).toBe(200);
      expect(one.json).toEqual({ ok: true, deleted: 1 });
      expect((await s.http("GET", url("download", "tree/a.txt"))).status).toBe(404);
      const folder = await s.http("DELETE", url("delete", "tree/sub"));
      expect(folder.status).toBe(409);
      expect(folder.json.error.code).toBe("recursive_required");
      const rec = await s.http("DELETE", url("delete", "tree/sub", "&recursive=true"));
      expect(rec.json).toEqual({ ok: true, deleted: 2 });
      expect((await s.http("GET", url("list", "tree/sub"))).status).toBe(404);
      expect((await s.http("GET", url("list", "tree"))).json.files.map((f: any) => f.name)).toEqual(["b.txt", "z"]);
      expect((await s.http("DELETE", url("delete", "tree/a.txt"))).status).toBe(404);
      expect((await s.http("DELETE", url("delete", ""))).status).toBe(400);
      expect(events.map((e) => [e.type, e.data.path])).toEqual([
        ["storage.file.deleted", "tree/a.txt"],
        ["storage.file.deleted", expect.stringMatching(/^tree\/sub\//)],
        ["storage.file.deleted", expect.stringMatching(/^tree\/sub\//)],
      ]);
      expect(events[0].data).toEqual({ path: "tree/a.txt", participant_id: keyId, size: 10, etag: expect.any(String) });
      expect((await s.ctx.storage.usage(P)).bytes).toBe(before.bytes - 10 - 14 - 19);
    });

    it("a path is a file or a folder, never both (409)", async () => {
      await upload("shape/file", "x");
      const under = await s.http("POST", url("upload", "shape/file/child"), { body: "y", headers: { "content-type": "application/octet-stream" } });
      expect(under.status).toBe(409);
      await upload("shape/dir/inner", "x");
      const over = await s.http("POST", url("upload", "shape/dir"), { body: "y", headers: { "content-type": "application/octet-stream" } });
      expect(over.status).toBe(409);
      expect((await download("shape/file")).toString()).toBe("x");
      expect((await s.http("GET", url("stat", "shape/dir"))).json.is_folder).toBe(true);
      if (backend === "file") {
        // an empty directory holds no file, so it is no folder: an upload replaces it
        mkdirSync(join(s.dataDir, "storage", "projects", P, "shape", "empty-dir"), { recursive: true });
        await upload("shape/empty-dir", "now a file");
        expect((await download("shape/empty-dir")).toString()).toBe("now a file");
      }
    });
  });

  describe("limits", () => {
    it("answers 413 for a declared length over MESHAGENT_MAX_UPLOAD_BYTES and keeps the old version", async () => {
      await upload("limit/file.bin", "old");
      const err = await upload("limit/file.bin", randomBytes(MAX_UPLOAD + 1)).catch((e: Error) => e);
      expect(String(err)).toMatch(/413/);
      expect(String(err)).toMatch(/payload_too_large/);
      expect((await download("limit/file.bin")).toString()).toBe("old");
    });

    it("answers 413 while streaming a chunked body that grows over the limit, and publishes nothing", async () => {
      events.length = 0;
      const up = rawUpload(s.url + url("upload", "limit/chunked.bin"), s.admin.apiKey);
      const chunk = randomBytes(1024 * 1024);
      let sent = 0;
      try {
        while (sent <= MAX_UPLOAD + chunk.length) {
          await up.write(chunk);
          sent += chunk.length;
        }
        up.end();
      } catch {
        // the server may close the connection after its 413
      }
      const r = await up.response;
      if ("status" in r) {
        expect(r.status).toBe(413);
        expect(JSON.parse(r.body).error.code).toBe("payload_too_large");
      }
      await until(async () => (await s.ctx.store.db.selectFrom("storage_pending").selectAll().execute()).length === 0, "the pending row to go");
      expect((await s.http("GET", url("stat", "limit/chunked.bin"))).status).toBe(404);
      expect(events).toHaveLength(0);
    });

    it("the JSON body limit does not apply to uploads", async () => {
      const data = randomBytes(3 * 1024 * 1024); // > MESHAGENT_BODY_LIMIT (1 MiB)
      await s
        .http("POST", url("upload", "limit/json-limit.json"), { body: data, headers: { "content-type": "application/json" } })
        .then((r) => expect(r.status).toBe(200));
      expect((await download("limit/json-limit.json")).equals(data)).toBe(true);
    });

    it("enforces the project's storage quota (settings.storage_quota_bytes)", async () => {
      const other = await s.otherProject();
      const c = s.client(other.apiKey);
      const up = (path: string, n: number) => c.upload({ projectId: other.projectId, path, data: randomBytes(n) });
      await c.updateProjectSettings(other.projectId, { storage_quota_bytes: 1000 });
      await up("a.bin", 600);
      await expect(up("b.bin", 500)).rejects.toThrow(/413.*storage_quota_exceeded/);
      await up("b.bin", 400); // exactly full
      await up("a.bin", 500); // an overwrite counts the old version as freed
      await expect(up("a.bin", 700)).rejects.toThrow(/413/);
      // a chunked body (no declared length) is cut off while streaming
      const raw = rawUpload(s.url + `/projects/${other.projectId}/storage/upload?path=c.bin`, other.apiKey);
      await raw.write(randomBytes(200));
      raw.end();
      const r = await raw.response;
      expect("status" in r && r.status).toBe(413);
      expect(await s.ctx.storage.usage(other.projectId)).toEqual({ bytes: 900, files: 2 });
      const u = await s.http("GET", `/projects/${other.projectId}/storage/usage`, { token: other.apiKey });
      expect(u.json.quota_bytes).toBe(1000);
    });
  });

  describe("aborted uploads", () => {
    it.each([
      ["with a declared length", 8 * 1024 * 1024],
      ["chunked", undefined],
    ])("a client that goes away mid-upload (%s) leaves nothing new and the old version intact", async (_n, declared) => {
      const path = `abort/${declared ? "declared" : "chunked"}.bin`;
      const v1 = randomBytes(64 * 1024);
      await upload(path, v1);
      const usage = await s.ctx.storage.usage(P);
      events.length = 0;
      const up = rawUpload(s.url + url("upload", path), s.admin.apiKey, { declared });
      for (let i = 0; i < 3; i++) await up.write(randomBytes(1024 * 1024));
      // the server has started the upload once its pending row exists
      await until(async () => (await s.ctx.store.db.selectFrom("storage_pending").selectAll().execute()).length > 0, "the upload to start");
      up.abort();
      await up.response;
      await until(async () => (await s.ctx.store.db.selectFrom("storage_pending").selectAll().execute()).length === 0, "the upload to be abandoned");
      expect((await download(path)).equals(v1)).toBe(true);
      expect((await s.http("GET", url("stat", path))).json.size).toBe(v1.length);
      expect(await s.ctx.storage.usage(P)).toEqual(usage);
      expect(events).toHaveLength(0);
      expect((await s.http("GET", url("list", "abort"))).json.files.map((f: any) => f.name)).toEqual(expect.arrayContaining([path.slice(6)]));
      if (backend === "file") expect(readdirSync(join(s.dataDir, "storage", ".tmp"))).toEqual([]);
    });
  });

  describe("paths", () => {
    // Raw query values, percent-encoded as a client would send them (some are invalid on purpose).
    const hostile: [string, string][] = [
      ["empty", ""],
      ["root slash", "%2F"],
      ["absolute", "%2Fetc%2Fpasswd"],
      ["UNC-like", "%2F%2Fserver%2Fshare"],
      ["dot-dot", ".."],
      ["dot-dot prefix", "..%2Fx"],
      ["climbing out", "a%2F..%2F..%2Fx"],
      ["trailing dot-dot", "a%2F.."],
      ["dot", "."],
      ["dot prefix", ".%2Fx"],
      ["dot segment", "a%2F.%2Fb"],
      ["empty segment", "a%2F%2Fb"],
      ["trailing slash", "a%2F"],
      ["backslash", "a%5Cb"],
      ["backslash dot-dot", "..%5Cx"],
      ["windows absolute", "C%3A%5Cx"],
      ["NUL", "a%00b"],
      ["newline", "a%0Ab"],
      ["carriage return", "a%0Db"],
      ["tab", "a%09b"],
      ["escape", "%1B%5B31mred"],
      ["DEL", "a%7Fb"],
      ["C1 control (NEL)", "a%C2%85b"],
      ["right-to-left override", "a%E2%80%AEtxt.exe"],
      ["line separator", "a%E2%80%A8b"],
      ["invalid UTF-8", "%FF"],
      ["overlong dot-dot", "%C0%AE%C0%AE%2Fx"],
      ["UTF-16 surrogate in UTF-8", "%ED%A0%80"],
      ["truncated percent sequence", "%E2%82"],
      ["over 4096 bytes", "x".repeat(4097)],
      ["over 4096 bytes in UTF-8 (2049 é)", encodeURIComponent("é".repeat(2049))],
      ["a segment over 255 bytes", "a%2F" + "b".repeat(256)],
      ["over 128 segments", encodeURIComponent("a/".repeat(128) + "b")],
      ["encoded dot-dot", "%2e%2e%2Fx"],
      ["double given", "a&path=b"],
    ];

    it(`has at least 30 hostile paths (${hostile.length})`, () => expect(hostile.length).toBeGreaterThanOrEqual(30));

    it.each(hostile)("refuses %s with 400 on upload, download, stat, list and delete", async (_name, raw) => {
      const before = await s.ctx.storage.usage(P);
      const up = await s.http("POST", `/projects/${P}/storage/upload?path=${raw}`, { body: "evil", headers: { "content-type": "application/octet-stream" } });
      expect(up.status).toBe(400);
      expect(up.json.error.message).toMatch(/path/);
      const down = await s.http("GET", `/projects/${P}/storage/download?path=${raw}`);
      expect(down.status).toBe(400);
      for (const route of ["stat", "delete"]) {
        const r = await s.http(route === "delete" ? "DELETE" : "GET", `/projects/${P}/storage/${route}?path=${raw}`);
        // stat and delete take folders too: "" is the root and "a/" the folder "a" (absent here)
        expect(raw === "" ? [200, 400] : raw === "a%2F" ? [404] : [400]).toContain(r.status);
      }
      expect(await s.ctx.storage.usage(P)).toEqual(before);
    });

    it("odd but legal names stay inside the project", async () => {
      const odd = ["．．/fullwidth.txt", "...", "a/.../b", "%2e%2e/literal", "..%2fx", " lead", "trail ", "-rf", "~", "con.txt", ".hidden", "a..b", "x:y"];
      const other = await s.otherProject();
      for (const p of odd) {
        await upload(`odd-legal/${p}`, p);
        expect((await download(`odd-legal/${p}`)).toString()).toBe(p);
        expect((await s.http("GET", `/projects/${other.projectId}/storage/download?path=${q(`odd-legal/${p}`)}`, { token: other.apiKey })).status).toBe(404);
      }
      if (backend === "file") {
        const all = filesUnder(join(s.dataDir, "storage"));
        expect(all.length).toBeGreaterThan(0);
        for (const f of all) expect(f.startsWith("projects/"), f).toBe(true);
        expect(all.filter((f) => f.includes("odd-legal")).every((f) => f.startsWith(`projects/${P}/odd-legal/`))).toBe(true);
      }
    });

    it("a path longer than the backend holds is 400, not 500", async () => {
      const long = "l/" + "x".repeat(250) + "/" + "y".repeat(250) + "/" + "z".repeat(250) + "/" + "w".repeat(250);
      const r = await s.http("POST", url("upload", long), { body: "x", headers: { "content-type": "application/octet-stream" } });
      if (backend === "s3") {
        expect(r.status).toBe(400);
        expect(r.json.error.message).toMatch(/too long for this storage backend/);
      } else {
        expect(r.status).toBe(200);
        expect((await download(long)).toString()).toBe("x");
      }
    });
  });

  describe("authorization", () => {
    const routes = (path: string) => [
      { name: "upload", method: "POST", url: url("upload", path), body: "x" },
      { name: "download", method: "GET", url: url("download", path) },
      { name: "list", method: "GET", url: url("list", "auth") },
      { name: "stat", method: "GET", url: url("stat", path) },
      { name: "delete", method: "DELETE", url: url("delete", path) },
      { name: "usage", method: "GET", url: `/projects/${P}/storage/usage` },
    ];
    const call = (r: ReturnType<typeof routes>[number], token: string | null) =>
      s.http(r.method, r.url, { token, body: r.body, headers: r.body ? { "content-type": "application/octet-stream" } : {} });

    it("no token and a garbage token are 401 on every route", async () => {
      for (const r of routes("auth/x.txt")) {
        expect((await call(r, null)).status, r.name).toBe(401);
        expect((await call(r, "ma-garbage")).status, r.name).toBe(401);
        expect((await call(r, "mpat_nope")).status, r.name).toBe(401);
      }
    });

    it("members read, developers and admins read and write", async () => {
      const member = await s.user({});
      const dev = await s.user({ is_developer: true });
      const admin = await s.user({ is_admin: true });
      for (const who of [dev, admin]) {
        for (const r of routes(`auth/${who.userId}.txt`)) expect((await call(r, who.token)).status, `${r.name}`).toBe(200);
      }
      await upload("auth/shared.txt", "shared");
      const expected: Record<string, number> = { upload: 403, download: 200, list: 200, stat: 200, delete: 403, usage: 200 };
      for (const r of routes("auth/shared.txt")) {
        const res = await call(r, member.token);
        expect(res.status, r.name).toBe(expected[r.name]);
        if (res.status === 403) expect(res.json.error.code).toBe("forbidden");
      }
      expect((await download("auth/shared.txt")).toString()).toBe("shared");
    });

    it("another project's key and a user outside the project get 404", async () => {
      await upload("auth/private.txt", "mine");
      const other = await s.otherProject();
      const outsider = await s.user(null);
      for (const token of [other.apiKey, other.userToken, outsider.token]) {
        for (const r of routes("auth/private.txt")) expect((await call(r, token)).status, r.name).toBe(404);
      }
      await expect(s.client(other.apiKey).download({ projectId: P, path: "auth/private.txt" })).rejects.toThrow(/404/);
      // the other project's own file of the same name is a different file
      await s.client(other.apiKey).upload({ projectId: other.projectId, path: "auth/private.txt", data: Buffer.from("theirs") });
      expect((await download("auth/private.txt")).toString()).toBe("mine");
      expect(Buffer.from(await s.client(other.apiKey).download({ projectId: other.projectId, path: "auth/private.txt" })).toString()).toBe("theirs");
    });

    it("takes requests as the Python client sends them (Content-Type: application/json on every call)", async () => {
      const json = { "content-type": "application/json" };
      const up = await s.http("POST", url("upload", "py/file.bin"), {
        body: Buffer.from([0, 1, 2, 255]),
        headers: { "content-type": "application/octet-stream" },
      });
      expect(up.status).toBe(200);
      const down = await fetch(s.url + url("download", "py/file.bin"), { headers: { authorization: `Bearer ${s.admin.apiKey}`, ...json } });
      expect(down.status).toBe(200);
      expect([...new Uint8Array(await down.arrayBuffer())]).toEqual([0, 1, 2, 255]);
      expect((await s.http("GET", url("list", "py"), { headers: json })).status).toBe(200);
      expect((await s.http("DELETE", url("delete", "py/file.bin"), { headers: json })).json).toEqual({ ok: true, deleted: 1 });
      const missing = await s.http("GET", url("download", "py/file.bin"), { headers: json });
      expect(missing.status).toBe(404);
    });

    it("bad input is 400 naming the problem", async () => {
      const bad = [
        ["POST", `/projects/${P}/storage/upload`],
        ["GET", `/projects/${P}/storage/download`],
        ["GET", `/projects/${P}/storage/stat`],
        ["DELETE", `/projects/${P}/storage/delete`],
        ["GET", `/projects/not-a-uuid/storage/download?path=x`],
        ["GET", `/projects/not-a-uuid/storage/list`],
        ["GET", `/projects/${P}/storage/list?limit=100000`],
        ["GET", `/projects/not-a-uuid/storage/usage`],
        ["GET", `/projects/not-a-uuid/storage/stat?path=x`],
        ["POST", `/projects/not-a-uuid/storage/upload?path=x`],
        ["DELETE", `/projects/not-a-uuid/storage/delete?path=x`],
        ["DELETE", `/projects/${P}/storage/delete?path=x&recursive=maybe`],
      ];
      for (const [method, u] of bad) {
        const r = await s.http(method, u, { body: method === "POST" ? "x" : undefined });
        expect(r.status, `${method} ${u}`).toBe(400);
        expect(r.json.error.message.length).toBeGreaterThan(3);
      }
    });
  });

  describe("crash recovery", () => {
    it("reconciles a write whose process died between the blob write and the commit", async () => {
      const scope = projectScope(P);
      await s.ctx.storage.stop(); // no background pass racing this test's explicit one
      await upload("recover/file.txt", "before");
      const usage = await s.ctx.storage.usage(P);
      events.length = 0;
      // What a process leaves when it dies right after publishing: a pending row, and a new blob the index doesn't know.
      const now = clock.now();
      await storageRepo.insertPending(s.ctx.store.db, {
        id: "11111111-1111-4111-8111-111111111111",
        project_id: P,
        scope: `projects/${P}`,
        path: "recover/file.txt",
        op: "upload",
        participant_id: "dead-writer",
        started_at: now,
        lease_until: now + 60_000,
      });
      const put = await s.ctx.blobs.put(blobKey(scope, "recover/file.txt"), Readable.from([Buffer.from("after the crash")]));
      // A dead write with nothing published changes nothing and publishes nothing.
      await storageRepo.insertPending(s.ctx.store.db, {
        id: "22222222-2222-4222-8222-222222222222",
        project_id: P,
        scope: `projects/${P}`,
        path: "recover/never.txt",
        op: "upload",
        participant_id: "dead-writer",
        started_at: now,
        lease_until: now + 60_000,
      });
      expect(await s.ctx.storage.recover()).toBe(0); // leases still running
      clock.advance(61_000);
      expect(await s.ctx.storage.recover()).toBe(2);
      expect(await s.ctx.storage.usage(P)).toEqual({ bytes: usage.bytes - 6 + 15, files: usage.files });
      expect(events).toEqual([
        { type: "storage.file.updated", project_id: P, data: { path: "recover/file.txt", participant_id: "dead-writer", size: 15, etag: put.etag } },
      ]);
      expect(await s.ctx.store.db.selectFrom("storage_pending").selectAll().execute()).toEqual([]);
    });
  });
});

describe("a stalled upload", () => {
  it("is closed after MESHAGENT_HTTP_IDLE_TIMEOUT of silence: nothing new is stored, the old version stays", async () => {
    const s = await startServer({ env: { MESHAGENT_HTTP_IDLE_TIMEOUT: "0.5" } });
    try {
      const base = `/projects/${s.admin.projectId}/storage`;
      const v1 = randomBytes(1000);
      expect((await s.http("POST", `${base}/upload?path=stall.bin`, { body: v1, headers: { "content-type": "application/octet-stream" } })).status).toBe(200);
      const up = rawUpload(`${s.url}${base}/upload?path=stall.bin`, s.admin.apiKey, { declared: 4 * 1024 * 1024 });
      await up.write(randomBytes(1024 * 1024)); // then silence
      const t0 = Date.now();
      const r = await up.response;
      expect(Date.now() - t0).toBeLessThan(5000);
      expect("error" in r || r.status >= 400).toBe(true);
      await until(async () => (await s.ctx.store.db.selectFrom("storage_pending").selectAll().execute()).length === 0, "the upload to be abandoned");
      const d = await fetch(`${s.url}${base}/download?path=stall.bin`, { headers: { authorization: `Bearer ${s.admin.apiKey}` } });
      expect(Buffer.from(await d.arrayBuffer()).equals(v1)).toBe(true);
      // a quiet WebSocket is not an idle HTTP connection: the room server's sockets stay open
      await s.client().createRoom({ projectId: s.admin.projectId, name: "quiet" } as any);
      const c = await RawRoomClient.connect(roomWsUrl(s, "quiet"), await mintToken(s.admin.apiKey, "quiet"));
      await new Promise((r) => setTimeout(r, 1500));
      expect(c.closed).toBeNull();
      expect((await c.invoke("queues", "list", {})).type).toBe("json");
      c.close();
    } finally {
      await s.close();
    }
  });
});
