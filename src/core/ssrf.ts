import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import http from "node:http";
import https from "node:https";
import { BlockList, isIP } from "node:net";
import type { Readable } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";

/**
 * Outbound URL safety (webhooks, MCP discovery): URLs a caller gives must not reach into the server's own network.
 * Addresses are checked when a URL is accepted AND at connect time (the HTTP agent's DNS lookup refuses them), so a
 * DNS answer that changes after the check (rebinding) cannot slip through.
 */
const blocked = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8], // "this" network
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata)
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const)
  blocked.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
  ["2001:db8::", 32], // documentation
  ["64:ff9b:1::", 48], // local-use NAT64
] as const)
  blocked.addSubnet(net, bits, "ipv6");

/** True for private, loopback, link-local and other non-public addresses (IPv4-mapped IPv6 included). */
export function isPrivateAddress(address: string): boolean {
  const v = isIP(address);
  if (v === 4) return blocked.check(address, "ipv4");
  if (v === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1], "ipv4");
    return blocked.check(address, "ipv6");
  }
  return true; // not an address: refuse
}

/**
 * Why a URL was refused: `invalid` (not an http(s) URL with a host and without credentials), `private` (it points
 * into a private, loopback, link-local or reserved range), `unresolvable` (its host has no address).
 */
export type UnsafeUrlReason = "invalid" | "private" | "unresolvable";

export class UnsafeUrlError extends Error {
  constructor(
    message: string,
    public readonly reason: UnsafeUrlReason = "invalid",
  ) {
    super(message);
  }
}

/** Parse and check an outbound URL's shape (http/https, a host, no credentials). Throws UnsafeUrlError. */
export function parseHttpUrl(raw: string, what = "url"): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UnsafeUrlError(`${what} is not a valid absolute URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new UnsafeUrlError(`${what} must use http or https`);
  if (!u.hostname) throw new UnsafeUrlError(`${what} must have a host`);
  if (u.username || u.password) throw new UnsafeUrlError(`${what} must not contain credentials`);
  return u;
}

/** The host of a URL without the brackets of an IPv6 literal. */
export const bareHost = (h: string) => (h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h);

function lookupAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => dnsLookup(host, { all: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));
}

/** Resolve the URL's host and refuse it when any address is private (unless allowed). */
export async function checkUrlTarget(u: URL, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return;
  const host = bareHost(u.hostname);
  if (isIP(host)) {
    if (isPrivateAddress(host)) throw new UnsafeUrlError(`url points to a private, loopback or link-local address (${host})`, "private");
    return;
  }
  let addrs: LookupAddress[];
  try {
    addrs = await lookupAll(host);
  } catch {
    throw new UnsafeUrlError(`url host ${host} does not resolve`, "unresolvable");
  }
  const bad = addrs.find((a) => isPrivateAddress(a.address));
  if (bad) throw new UnsafeUrlError(`url host ${host} resolves to a private, loopback or link-local address (${bad.address})`, "private");
}

/**
 * A `lookup` for http(s) agents that refuses private answers at connect time. IP-literal hosts never reach a
 * lookup function, so callers check those themselves before connecting (as {@link guardedFetch} does).
 */
export function guardedLookup(allowPrivate: boolean) {
  return (hostname: string, options: object, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
      if (err) return cb(err, "", 4);
      if (!allowPrivate) {
        const bad = addrs.find((a) => isPrivateAddress(a.address));
        if (bad) {
          const e = new Error(`refused: ${hostname} resolves to a private address (${bad.address})`) as NodeJS.ErrnoException;
          e.code = "EPRIVATEADDR";
          return cb(e, "", 4);
        }
      }
      if ((options as { all?: boolean }).all) return cb(null, addrs);
      cb(null, addrs[0].address, addrs[0].family);
    });
  };
}

export interface GuardedFetchOptions {
  /** Connect to private, loopback and link-local addresses too. */
  allowPrivate: boolean;
  /** Largest body of one response, after decompression; a longer one fails the read (or the request). */
  maxBodyBytes: number;
  /** Aborts every request of this fetch, in flight or later. */
  signal?: AbortSignal;
  /** Redirects followed for `redirect: "follow"` (each hop is checked like the first request). Default 5. */
  maxRedirects?: number;
  /** Headers sent with every request unless the request sets them (e.g. User-Agent). */
  defaultHeaders?: Record<string, string>;
  /** Bodies of these media types are streamed as they arrive (default: `text/event-stream`); others are buffered. */
  streamed?: (mediaType: string) => boolean;
}

export interface GuardedFetch {
  /** A WHATWG-style `fetch` (the subset clients use: URL or string input, method, headers, a string/bytes body, signal, redirect). */
  fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** Close every connection this fetch opened. */
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

function fetchError(message: string, code: string): TypeError {
  const cause = Object.assign(new Error(message), { code }) as NodeJS.ErrnoException;
  return Object.assign(new TypeError(`fetch failed: ${message}`), { cause, code });
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === "AbortError") return reason;
  return new DOMException(reason instanceof Error ? reason.message : "This operation was aborted", "AbortError");
}

async function bodyBytes(body: BodyInit | null | undefined, headers: Headers): Promise<Buffer | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof URLSearchParams) {
    if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
    return Buffer.from(body.toString(), "utf8");
  }
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof Blob) return Buffer.from(await body.arrayBuffer());
  throw new TypeError("guarded fetch: unsupported request body type");
}

/** A node stream as a web ReadableStream of at most `max` bytes (more errors the stream), with backpressure. */
function limitedStream(src: Readable, max: number, what: string): ReadableStream<Uint8Array> {
  let total = 0;
  let done = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      src.on("data", (chunk: Buffer) => {
        if (done) return;
        total += chunk.length;
        if (total > max) {
          done = true;
          controller.error(fetchError(`${what}: response larger than ${max} bytes`, "ETOOLARGE"));
          src.destroy();
          return;
        }
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) src.pause();
      });
      src.on("end", () => {
        if (done) return;
        done = true;
        controller.close();
      });
      src.on("error", (err) => {
        if (done) return;
        done = true;
        controller.error(err);
      });
      src.on("close", () => {
        if (done) return;
        done = true;
        controller.error(fetchError(`${what}: connection closed`, "ECONNRESET"));
      });
    },
    pull() {
      src.resume();
    },
    cancel() {
      done = true;
      src.destroy();
    },
  });
}

/** Read a node stream into one buffer of at most `max` bytes. */
function readAll(src: Readable, max: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    src.on("data", (c: Buffer) => {
      total += c.length;
      if (total > max) {
        src.destroy();
        reject(fetchError(`${what}: response larger than ${max} bytes`, "ETOOLARGE"));
        return;
      }
      chunks.push(c);
    });
    src.on("end", () => resolve(Buffer.concat(chunks)));
    src.on("error", reject);
    src.on("close", () => reject(fetchError(`${what}: connection closed`, "ECONNRESET")));
  });
}

/**
 * A `fetch` whose every connection is guarded like a webhook delivery: http(s) only, no credentials in the URL, IP
 * literals checked before connecting and every resolved address checked at connect time ({@link guardedLookup}), so
 * neither a DNS answer that changes after a check nor a redirect can reach a private address unless `allowPrivate`.
 * Redirects (`redirect: "follow"`, the default) are followed by hand, each hop checked again; `"manual"` returns the
 * 3xx answer as it is, `"error"` fails. Bodies are capped at `maxBodyBytes`. It speaks HTTP/1.1 through its own
 * agents (node:http), so `close()` ends every connection it made.
 */
export function guardedFetch(opts: GuardedFetchOptions): GuardedFetch {
  const lookup = guardedLookup(opts.allowPrivate);
  const agentOpts = { keepAlive: true, maxSockets: 8, lookup };
  const httpAgent = new http.Agent(agentOpts as http.AgentOptions);
  const httpsAgent = new https.Agent(agentOpts as https.AgentOptions);
  const maxRedirects = opts.maxRedirects ?? 5;
  const streamed = opts.streamed ?? ((t: string) => t === "text/event-stream");
  let closed = false;

  function once(u: URL, method: string, headers: Headers, body: Buffer | undefined, signal: AbortSignal | undefined): Promise<Response> {
    return new Promise<Response>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException) => reject(err);
      if (closed) return fail(fetchError("closed", "ECLOSED"));
      const host = bareHost(u.hostname);
      if (!opts.allowPrivate && isIP(host) && isPrivateAddress(host))
        return fail(fetchError(`refused: ${host} is a private, loopback or link-local address`, "EPRIVATEADDR"));
      const signals = [opts.signal, signal].filter((s): s is AbortSignal => !!s);
      const aborted = signals.find((s) => s.aborted);
      if (aborted) return fail(abortError(aborted));

      const out: Record<string, string> = { ...opts.defaultHeaders };
      headers.forEach((v, k) => (out[k] = v));
      if (body) out["content-length"] = String(body.length);
      const isHttps = u.protocol === "https:";
      const req = (isHttps ? https : http).request(u, { method, headers: out, agent: isHttps ? httpsAgent : httpAgent, lookup: lookup as never });
      let settled = false;
      const onAbort = (ev: Event) => {
        const err = abortError(ev.target as AbortSignal);
        req.destroy(err);
        if (!settled) {
          settled = true;
          fail(err);
        }
      };
      for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
      const cleanup = () => {
        for (const s of signals) s.removeEventListener("abort", onAbort);
      };
      req.on("error", (err: NodeJS.ErrnoException) => {
        cleanup();
        if (settled) return;
        settled = true;
        fail(Object.assign(new TypeError(`fetch failed: ${err.message || err.code}`), { cause: err, code: err.code }));
      });
      req.on("response", (res) => {
        settled = true;
        // Errors of the answer reach whoever reads it (below); none may go unhandled.
        res.on("error", () => {});
        try {
          answer(res);
        } catch (err) {
          // A status or header the WHATWG Response refuses (e.g. status 600+): not an HTTP answer we can use.
          cleanup();
          res.destroy();
          fail(fetchError(`invalid HTTP answer (${(err as Error).message})`, "EBADRESPONSE"));
        }
      });
      const answer = (res: http.IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const rh = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          for (const one of [v].flat()) rh.append(k, one);
        }
        let src: Readable = res;
        const encoding = (rh.get("content-encoding") ?? "").trim().toLowerCase();
        const decoder =
          encoding === "gzip" || encoding === "x-gzip"
            ? createGunzip()
            : encoding === "deflate"
              ? createInflate()
              : encoding === "br"
                ? createBrotliDecompress()
                : null;
        if (decoder) {
          res.on("error", (e) => decoder.destroy(e));
          src = res.pipe(decoder);
          rh.delete("content-encoding");
          rh.delete("content-length");
        }
        const done = (r: Response) => {
          Object.defineProperty(r, "url", { value: u.href });
          resolve(r);
        };
        const init = { status, statusText: res.statusMessage ?? "", headers: rh };
        if (NULL_BODY.has(status) || method === "HEAD" || status < 200) {
          res.resume();
          cleanup();
          return done(new Response(null, { ...init, status: status < 200 ? 502 : status }));
        }
        const mediaType = (rh.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
        if (streamed(mediaType)) {
          // The stream stays tied to the signals: aborting ends it (and its socket).
          res.on("close", cleanup);
          return done(new Response(limitedStream(src, opts.maxBodyBytes, u.href), init));
        }
        readAll(src, opts.maxBodyBytes, u.href).then(
          (buf) => {
            cleanup();
            try {
              done(new Response(buf.length ? new Uint8Array(buf) : null, init));
            } catch (err) {
              fail(fetchError(`invalid HTTP answer (${(err as Error).message})`, "EBADRESPONSE"));
            }
          },
          (err: NodeJS.ErrnoException) => {
            cleanup();
            fail(err);
          },
        );
      };
      req.end(body);
    });
  }

  async function fetchImpl(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    let url: string;
    let method = init.method;
    let headers: Headers;
    let bodyInit = init.body;
    if (input instanceof Request) {
      url = input.url;
      method ??= input.method;
      headers = new Headers(input.headers);
      new Headers(init.headers).forEach((v, k) => headers.set(k, v));
      if (bodyInit === undefined && input.body) bodyInit = await input.arrayBuffer();
    } else {
      url = String(input);
      headers = new Headers(init.headers);
    }
    method = (method ?? "GET").toUpperCase();
    let u: URL;
    try {
      u = parseHttpUrl(url);
    } catch (e) {
      throw fetchError((e as Error).message, "EBADURL");
    }
    let body = await bodyBytes(bodyInit, headers);
    const redirect = init.redirect ?? "follow";
    for (let hop = 0; ; hop++) {
      const res = await once(u, method, headers, body, init.signal ?? undefined);
      const location = res.headers.get("location");
      if (!REDIRECTS.has(res.status) || !location || redirect === "manual") return res;
      await res.body?.cancel();
      if (redirect === "error") throw fetchError(`redirected to ${location}`, "EREDIRECT");
      if (hop >= maxRedirects) throw fetchError(`more than ${maxRedirects} redirects`, "EREDIRECT");
      let next: URL;
      try {
        next = parseHttpUrl(new URL(location, u).href, "redirect target");
      } catch (e) {
        throw fetchError((e as Error).message, "EBADURL");
      }
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
        if (method !== "HEAD") method = "GET";
        body = undefined;
        headers.delete("content-type");
      }
      if (next.origin !== u.origin) {
        headers.delete("authorization");
        headers.delete("cookie");
      }
      u = next;
    }
  }

  return {
    fetch: fetchImpl,
    close() {
      closed = true;
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
