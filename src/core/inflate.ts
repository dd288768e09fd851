import { Transform, type Readable } from "node:stream";
import { createGunzip, createInflate } from "node:zlib";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiError, badRequest, quote, tooLarge } from "./errors.js";

/**
 * Compressed request bodies (Content-Encoding gzip or deflate), inflated as they stream in, with the route's body
 * limit enforced on the INFLATED bytes: as soon as the inflated body passes `limit` the request is a 413 and the
 * inflater is destroyed (a 1 MB gzip bomb costs the server ~`limit` bytes of work, not 1 GiB). Fastify's own body
 * limit then applies to both the compressed bytes (`receivedEncodedLength`) and the inflated ones. Only the OTLP
 * receiver takes compressed bodies; the JSON parser refuses any Content-Encoding (415).
 */
export function inflatingBodies(limit: number) {
  return async (req: FastifyRequest, _reply: FastifyReply, payload: Readable) => {
    const enc = String(req.headers["content-encoding"] ?? "")
      .trim()
      .toLowerCase();
    if (enc === "" || enc === "identity") return payload;
    if (enc !== "gzip" && enc !== "x-gzip" && enc !== "deflate")
      throw new ApiError(415, "unsupported_media_type", `unsupported Content-Encoding ${quote(enc)} (gzip, deflate or identity)`);
    return inflateLimited(payload, enc === "deflate" ? "deflate" : "gzip", limit);
  };
}

/** `source` inflated, failing with a 413 as soon as more than `limit` bytes come out (and a 400 for a corrupt stream). */
export function inflateLimited(source: Readable, enc: "gzip" | "deflate", limit: number): Readable & { receivedEncodedLength: number } {
  const z = enc === "gzip" ? createGunzip() : createInflate();
  let inflated = 0;
  const out = new Transform({
    transform(chunk: Buffer, _e, cb) {
      inflated += chunk.length;
      if (inflated > limit) return cb(tooLarge(`the inflated request body is larger than ${limit} bytes`));
      cb(null, chunk);
    },
  }) as Transform & { receivedEncodedLength: number };
  out.receivedEncodedLength = 0;
  const stop = () => {
    source.unpipe(z);
    z.destroy();
    source.resume(); // the rest of the compressed body is read and dropped, so the answer can be sent
  };
  source.on("data", (c: Buffer) => (out.receivedEncodedLength += c.length));
  source.on("error", (e) => out.destroy(e));
  z.on("error", () => out.destroy(badRequest(`the body is not valid ${enc}`)));
  out.on("error", stop);
  out.on("close", stop);
  source.pipe(z).pipe(out);
  return out;
}
