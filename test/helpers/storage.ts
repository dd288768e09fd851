import { request } from "node:http";
import { startS3, type TestS3 } from "./s3.js";

export type Backend = "file" | "s3";
export const BACKENDS: Backend[] = ["file", "s3"];

/** Env for a server on the given backend; for s3, starts a loopback S3 server (close it after). */
export async function backendEnv(backend: Backend, prefix = "blobs"): Promise<{ env: Record<string, string>; s3?: TestS3 }> {
  if (backend === "file") return { env: {} };
  const s3 = await startS3();
  return { env: s3.env(prefix), s3 };
}

export const q = (p: string) => encodeURIComponent(p);

/**
 * A raw upload that the test controls chunk by chunk (the official client and fetch send whole bodies).
 * `declared` sets Content-Length; without it the body is chunked.
 */
export function rawUpload(url: string, token: string, opts: { declared?: number } = {}) {
  const u = new URL(url);
  const headers: Record<string, string | number> = { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" };
  if (opts.declared !== undefined) headers["content-length"] = opts.declared;
  const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: "POST", headers });
  const response = new Promise<{ status: number; body: string } | { error: Error }>((resolve) => {
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (error) => resolve({ error }));
    });
    req.on("error", (error) => resolve({ error }));
  });
  return {
    req,
    response,
    write: (chunk: Buffer) => new Promise<void>((resolve, reject) => req.write(chunk, (e) => (e ? reject(e) : resolve()))),
    end: () => req.end(),
    abort: () => req.destroy(),
  };
}

export async function until<T>(fn: () => Promise<T | undefined | false | null> | T | undefined | false | null, what: string, timeoutMs = 10_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
