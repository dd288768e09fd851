import { Transform, type Readable } from "node:stream";
import { BlobAbortedError, BlobTooLargeError } from "./types.js";

export interface MeteredBody extends Transform {
  /** Bytes that went through so far. */
  readonly bytes: number;
}

/**
 * Wraps a request body for a blob upload:
 * - counts bytes and fails with BlobTooLargeError as soon as more than `maxBytes` went through;
 * - fails with BlobAbortedError when the source errors or closes before its end (a client abort), or ends short of
 *   `expectedBytes` (the declared Content-Length), so a truncated body can never be published as complete;
 * - never destroys the source: on failure it only unpipes, so the HTTP layer can still answer (413) on the socket.
 */
export function meteredBody(source: Readable, opts: { maxBytes: number; expectedBytes?: number }): MeteredBody {
  let bytes = 0;
  const t = new Transform({
    readableHighWaterMark: 256 * 1024,
    writableHighWaterMark: 256 * 1024,
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > opts.maxBytes) return cb(new BlobTooLargeError(opts.maxBytes));
      cb(null, chunk);
    },
    flush(cb) {
      if (opts.expectedBytes !== undefined && bytes !== opts.expectedBytes)
        return cb(new BlobAbortedError(`the body ended after ${bytes} of ${opts.expectedBytes} declared bytes`));
      cb();
    },
  }) as MeteredBody;
  Object.defineProperty(t, "bytes", { get: () => bytes });
  // The body flows as soon as it is piped, maybe before the backend attached its own handlers: the error is kept
  // on the stream (`errored`), and whoever consumes it (pipeline, async iteration) gets it from there.
  t.on("error", () => {});

  const fail = (err?: Error) => {
    if (!t.destroyed)
      t.destroy(err instanceof BlobTooLargeError ? err : new BlobAbortedError(err?.message ?? "the client closed the connection before the upload completed"));
  };
  const onError = (err: Error) => fail(err);
  const onAborted = () => fail();
  const onClose = () => {
    if (!source.readableEnded) fail();
  };
  source.on("error", onError);
  source.on("aborted", onAborted);
  source.on("close", onClose);
  t.on("close", () => {
    source.unpipe(t);
    source.off("error", onError);
    source.off("aborted", onAborted);
    source.off("close", onClose);
  });
  if (source.readableEnded) {
    // Nothing more will come (an empty body already consumed): end now.
    t.end();
  } else {
    source.pipe(t);
  }
  return t;
}
