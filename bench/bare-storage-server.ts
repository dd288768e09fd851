// The ceiling for bench/storage-transfer.ts: a bare node:http server that streams a request body into a file and a
// file into a response, and nothing else: no auth, no database, no temp file + rename, no fsync, no hashing.
//   POST /upload?path=<file>    → 200 once the body is on disk (page cache)
//   GET  /download?path=<file>  → the file
// Paths are files under BENCH_BARE_DIR (the benchmark's scratch directory).
import { createReadStream, createWriteStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { basename, join } from "node:path";
import { pipeline } from "node:stream/promises";

const dir = process.env.BENCH_BARE_DIR ?? ".";
const MiB = 1024 * 1024;

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const file = join(dir, basename(url.searchParams.get("path") ?? "bare.bin"));
  try {
    if (url.pathname === "/healthz") res.end("ok");
    else if (req.method === "POST" && url.pathname === "/upload") {
      await pipeline(req, createWriteStream(file, { highWaterMark: MiB }));
      res.end("{}");
    } else if (req.method === "GET" && url.pathname === "/download") {
      res.writeHead(200, { "content-length": statSync(file).size, "content-type": "application/octet-stream" });
      await pipeline(createReadStream(file, { highWaterMark: MiB }), res);
    } else res.writeHead(404).end();
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
    else res.destroy();
  }
});
server.listen(Number(process.env.MESHAGENT_PORT ?? 0), "127.0.0.1");
