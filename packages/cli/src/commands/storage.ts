import { createReadStream, createWriteStream, statSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebStream } from "node:stream/web";
import type { Command } from "commander";
import cliProgress from "cli-progress";
import { errorFromResponse, MeshagentError, type Call, type Meshagent } from "@meshagent-oss/sdk";
import { act } from "../context.js";
import { CliError, log, printList, printOne } from "../output.js";

const PREFIX = "storage:";
const MiB = 1024 * 1024;
const remote = (s: string) => (s.startsWith(PREFIX) ? s.slice(PREFIX.length).replace(/^\/+/, "") : null);

/** A bar on stderr for transfers over 1 MiB, and only when stderr is a terminal (never in logs or pipes). */
function progress(total: number | undefined, label: string): { update?: (n: number) => void; stop: () => void } {
  if (!process.stderr.isTTY || total === undefined || total <= MiB) return { stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {percentage}% | {value}/{total} bytes`, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (n: number) => bar.update(n), stop: () => bar.stop() };
}

/**
 * An upload streamed from a Node stream through node:http, with backpressure: undici's fetch reads a stream body as
 * fast as it can and holds what the socket has not taken yet (the whole file, for a fast disk), so large files go this
 * way. The URL, headers and error answers are the SDK's.
 */
async function streamUpload(client: Meshagent, projectId: string, path: string, src: Readable, size: number | undefined, onProgress?: (n: number) => void) {
  const call: Call = { method: "POST", path: `/projects/${encodeURIComponent(projectId)}/storage/upload`, query: { path }, raw: { data: "" } };
  const label = `POST ${call.path}`;
  const url = new URL(client.http.url(call.path, call.query));
  const headers = client.http.headersFor(call, undefined);
  if (size !== undefined) headers["content-length"] = String(size);
  const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, { method: "POST", headers });
  // The longest wait without progress, as the SDK's timeout.
  req.setTimeout(client.http.timeoutMs, () => req.destroy(new MeshagentError({ status: 0, code: "timeout", message: `${label} timed out`, request: label })));
  const answer = new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  let sent = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      onProgress!((sent += chunk.length));
      done(null, chunk);
    },
  });
  // The server may answer (413, 401) before it has read everything: its answer is what counts, not the broken pipe.
  const piped = (onProgress ? pipeline(src, count, req) : pipeline(src, req)).then(
    () => undefined,
    (e: unknown) => e,
  );
  let res: IncomingMessage;
  try {
    res = await answer;
  } catch (e) {
    if (e instanceof MeshagentError) throw e;
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new MeshagentError({ status: 0, code: "network_error", message: `${label}: cannot reach ${client.baseUrl} (${why})`, request: label, cause: e });
  }
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    const h = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
    throw await errorFromResponse(new Response(Buffer.concat(chunks), { status, headers: h }), label);
  }
  const err = await piped;
  if (err) throw err;
}

export function registerStorage(program: Command) {
  const storage = program.command("storage").description("project storage (paths as storage:path)");
  storage
    .command("cp <source> <destination>")
    .description("copy a local file (or - for stdin) to storage:path, or storage:path to a local file (or - for stdout)")
    .action(
      act(async (ctx, src: string, dst: string) => {
        const from = remote(src);
        const to = remote(dst);
        if ((from === null) === (to === null))
          throw new CliError("one side must be storage:path and the other local", "usage", "e.g. meshagent storage cp ./a.txt storage:docs/a.txt", 2);
        const client = await ctx.client();
        const projectId = ctx.projectId();
        if (to !== null) {
          const size = src === "-" ? undefined : statSync(src).size;
          ctx.curlBody = src;
          const bar = progress(size, `upload ${to}`);
          try {
            // 1 MiB reads: the server takes 1 MiB chunks at 2-3x the rate of 64-256 KiB ones (measured on loopback).
            const data = src === "-" ? process.stdin : createReadStream(src, { highWaterMark: MiB });
            // --curl prints the SDK's request; a real upload streams through node:http (see streamUpload).
            if (ctx.opts.curl) await client.upload(projectId, to, data, { size });
            else await streamUpload(client, projectId, to, data, size, bar.update);
          } finally {
            bar.stop();
          }
          log(`uploaded ${src} to ${PREFIX}${to}`);
        } else {
          const { stream, size } = await client.downloadStream(projectId, from!, {});
          const bar = progress(size, `download ${from}`);
          let n = 0;
          const counted = Readable.fromWeb(stream as WebStream<Uint8Array>).on("data", (c: Buffer) => bar.update?.((n += c.length)));
          try {
            const sink: Writable = dst === "-" ? process.stdout : createWriteStream(dst);
            await pipeline(counted, sink, { end: dst !== "-" });
          } finally {
            bar.stop();
          }
          if (dst !== "-") log(`downloaded ${PREFIX}${from} to ${dst}`);
        }
      }),
    );
  storage
    .command("ls [path]")
    .description("the entries under a folder")
    .action(
      act(async (ctx, path: string | undefined) => {
        const client = await ctx.client();
        const all = await client.listStorage(ctx.projectId(), remote(path ?? "") ?? path ?? "").all();
        printList(ctx.format, all, ["name", "is_folder", "size", "updated_at"], "files");
      }),
    );
  storage
    .command("rm <path>")
    .description("delete a file (or a folder with -r)")
    .option("-r, --recursive", "a folder and everything in it")
    .action(
      act(async (ctx, path: string, o: { recursive?: boolean }) => {
        const client = await ctx.client();
        const r = await client.deleteStorage(ctx.projectId(), remote(path) ?? path, { recursive: o.recursive });
        if (ctx.format === "json") printOne(ctx.format, r);
        else log(`deleted ${path}`);
      }),
    );
}
