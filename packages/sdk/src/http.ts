import { MeshagentError, errorFromResponse } from "./errors.js";

/** What every SDK method accepts as its last argument. */
export interface RequestOptions {
  /** Cancels the request (the SDK then throws a MeshagentError with code `aborted`). */
  signal?: AbortSignal;
  /** The longest wait, in ms, without progress: for the whole call, or between chunks of a transfer. 0 = none. */
  timeoutMs?: number;
  /** Sent as Idempotency-Key: a POST with a key is retried safely (the server answers a repeat with the first answer). */
  idempotencyKey?: string;
  /** Retries after the first attempt for this call (overrides the client's `maxRetries`). */
  maxRetries?: number;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

export interface ClientOptions {
  /** Default: `MESHAGENT_API_URL`, else http://localhost:8080. */
  baseUrl?: string;
  /** A project API key or a user access token. Default: `MESHAGENT_API_KEY` (then `MESHAGENT_TOKEN`). */
  token?: string | null;
  /** Default 30 000 ms (see RequestOptions.timeoutMs). */
  timeoutMs?: number;
  /** Retries after the first attempt, for idempotent calls and POSTs with an Idempotency-Key. Default 2. */
  maxRetries?: number;
  /** Give every POST an Idempotency-Key of its own (so that POSTs are retried too). Default true. */
  autoIdempotencyKey?: boolean;
  /** First backoff step in ms (doubling each attempt, full jitter). Default 250. */
  retryBaseMs?: number;
  /** The longest backoff, and the longest Retry-After honoured, in ms; a longer Retry-After is not waited for. Default 20 000. */
  retryMaxMs?: number;
  /** Headers sent with every call. */
  headers?: Record<string, string>;
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

export type Query = Record<string, string | number | boolean | null | undefined | readonly string[]>;

/** A request body: JSON, a form, or raw bytes (replayable ones are retried; streams are sent once). */
export type RawData = Uint8Array | ArrayBuffer | Blob | string | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Query;
  json?: unknown;
  form?: Record<string, string | undefined>;
  raw?: { data: RawData; contentType?: string; size?: number; onProgress?: (sent: number, total: number | undefined) => void };
  /** Safe to send twice even without an Idempotency-Key (an upload to one path). */
  idempotent?: boolean;
  /** Send no Authorization header (public routes such as /oauth/token). */
  anonymous?: boolean;
  /** Routes that ignore Idempotency-Key (the OAuth protocol endpoints): never add one. */
  noIdempotencyKey?: boolean;
  opts?: RequestOptions;
}

const env = (name: string): string | undefined => {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.[name];
  return v === "" ? undefined : v;
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Retry-After in ms (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function isReplayable(data: RawData): data is Uint8Array | ArrayBuffer | Blob | string {
  return typeof data === "string" || data instanceof Uint8Array || data instanceof ArrayBuffer || (typeof Blob !== "undefined" && data instanceof Blob);
}

function sizeOf(data: RawData): number | undefined {
  if (typeof data === "string") return new TextEncoder().encode(data).byteLength;
  if (data instanceof Uint8Array || data instanceof ArrayBuffer) return data.byteLength;
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.size;
  return undefined;
}

function toStream(data: RawData): ReadableStream<Uint8Array> {
  if (typeof ReadableStream !== "undefined" && data instanceof ReadableStream) return data;
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.stream();
  if (typeof data === "string" || data instanceof Uint8Array || data instanceof ArrayBuffer) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    let at = 0;
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= bytes.byteLength) return c.close();
        const end = Math.min(at + 256 * 1024, bytes.byteLength);
        c.enqueue(bytes.subarray(at, end));
        at = end;
      },
    });
  }
  const it = (data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const { value, done } = await it.next();
      if (done) c.close();
      else c.enqueue(value);
    },
    async cancel(reason) {
      await it.return?.(reason);
    },
  });
}

/** A stream that reports each chunk's bytes as they pass. */
export function counting(stream: ReadableStream<Uint8Array>, onChunk: (bytes: number) => void): ReadableStream<Uint8Array> {
  return stream.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        onChunk(chunk.byteLength);
        c.enqueue(chunk);
      },
    }),
  );
}

/** A timer that aborts unless it is touched within `ms` (0 = never). */
class IdleTimer {
  readonly controller = new AbortController();
  private t: ReturnType<typeof setTimeout> | undefined;
  constructor(private readonly ms: number) {
    this.touch();
  }
  touch = () => {
    if (!this.ms || this.controller.signal.aborted) return;
    if (this.t) clearTimeout(this.t);
    this.t = setTimeout(() => this.controller.abort(new DOMException("timed out", "TimeoutError")), this.ms);
    (this.t as { unref?: () => void }).unref?.();
  };
  clear() {
    if (this.t) clearTimeout(this.t);
  }
}

const RETRYABLE_METHODS = new Set(["GET", "PUT", "DELETE"]);
/** Each answer's timer, until its body has been read. */
const timers = new WeakMap<Response, IdleTimer>();

/** The transport under every SDK method: URL and body building, auth, timeouts, retries and error mapping. */
export class HttpClient {
  readonly baseUrl: string;
  token: string | null;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  private readonly autoIdempotencyKey: boolean;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly headers: Record<string, string>;
  private readonly fetchImpl: typeof fetch;

  constructor(o: ClientOptions = {}) {
    this.baseUrl = (o.baseUrl ?? env("MESHAGENT_API_URL") ?? "http://localhost:8080").replace(/\/+$/, "");
    this.token = o.token === undefined ? (env("MESHAGENT_API_KEY") ?? env("MESHAGENT_TOKEN") ?? null) : o.token;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.maxRetries = o.maxRetries ?? 2;
    this.autoIdempotencyKey = o.autoIdempotencyKey ?? true;
    this.retryBaseMs = o.retryBaseMs ?? 250;
    this.retryMaxMs = o.retryMaxMs ?? 20_000;
    this.headers = { ...o.headers };
    const f = o.fetch ?? globalThis.fetch;
    if (!f) throw new Error("no fetch available: pass ClientOptions.fetch");
    this.fetchImpl = f.bind(globalThis);
  }

  url(path: string, query?: Query): string {
    if (!query) return this.baseUrl + path;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined || v === null) continue;
      if (Array.isArray(v)) for (const x of v) qs.append(k, x);
      else qs.append(k, String(v));
    }
    const s = qs.toString();
    return `${this.baseUrl}${path}${s ? `?${s}` : ""}`;
  }

  /** The headers a call sends (also what `--curl` prints). */
  headersFor(call: Call, idempotencyKey: string | undefined): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json", ...this.headers, ...call.opts?.headers };
    if (this.token && !call.anonymous) h.authorization = `Bearer ${this.token}`;
    if (call.json !== undefined) h["content-type"] = "application/json";
    else if (call.form) h["content-type"] = "application/x-www-form-urlencoded";
    else if (call.raw) h["content-type"] = call.raw.contentType ?? "application/octet-stream";
    if (idempotencyKey) h["idempotency-key"] = idempotencyKey;
    return h;
  }

  idempotencyKeyFor(call: Call): string | undefined {
    if (call.opts?.idempotencyKey) return call.opts.idempotencyKey;
    if (call.method !== "POST" || call.noIdempotencyKey || call.raw || !this.autoIdempotencyKey) return undefined;
    return globalThis.crypto.randomUUID();
  }

  /** One call, retried as the rules allow; resolves to the 2xx Response (its body unread). */
  async send(call: Call): Promise<Response> {
    const idempotencyKey = this.idempotencyKeyFor(call);
    const replayable = !call.raw || isReplayable(call.raw.data);
    const mayRetry = replayable && (RETRYABLE_METHODS.has(call.method) || call.idempotent === true || idempotencyKey !== undefined);
    const retries = mayRetry ? (call.opts?.maxRetries ?? this.maxRetries) : 0;
    const label = `${call.method} ${call.path}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response | undefined;
      let error: MeshagentError;
      try {
        res = await this.attempt(call, idempotencyKey, label);
        if (res.ok) return res;
        error = await errorFromResponse(res, label);
      } catch (e) {
        if (!(e instanceof MeshagentError)) throw e;
        error = e;
      }
      if (attempt >= retries || !error.retryable) throw error;
      const after = retryAfterMs(res?.headers.get("retry-after") ?? null);
      if (after !== undefined && after > this.retryMaxMs) throw error;
      const backoff = Math.random() * Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** attempt);
      try {
        await sleep(after ?? backoff, call.opts?.signal);
      } catch (reason) {
        throw new MeshagentError({ status: 0, code: "aborted", message: `${label} was aborted`, request: label, cause: reason });
      }
    }
  }

  private async attempt(call: Call, idempotencyKey: string | undefined, label: string): Promise<Response> {
    const timer = new IdleTimer(call.opts?.timeoutMs ?? this.timeoutMs);
    const signals = [timer.controller.signal, ...(call.opts?.signal ? [call.opts.signal] : [])];
    const signal = signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    let body: BodyInit | undefined;
    let duplex = false;
    if (call.json !== undefined) body = JSON.stringify(call.json);
    else if (call.form) {
      const f = new URLSearchParams();
      for (const [k, v] of Object.entries(call.form)) if (v !== undefined) f.append(k, v);
      body = f.toString();
    } else if (call.raw) {
      const { data, onProgress } = call.raw;
      const total = call.raw.size ?? sizeOf(data);
      if (!onProgress && isReplayable(data)) body = data as BodyInit;
      else {
        let sent = 0;
        body = counting(toStream(data), (n) => {
          sent += n;
          timer.touch();
          onProgress?.(sent, total);
        });
        duplex = true;
      }
    }
    const headers = this.headersFor(call, idempotencyKey);
    if (call.raw) {
      const total = call.raw.size ?? sizeOf(call.raw.data);
      if (total !== undefined && duplex) headers["content-length"] = String(total);
    }
    try {
      const init: RequestInit & { duplex?: "half" } = { method: call.method, headers, body, signal, ...(duplex ? { duplex: "half" } : {}) };
      const res = await this.fetchImpl(this.url(call.path, call.query), init);
      // The timer keeps running while the caller reads the body (text(), stream()).
      timers.set(res, timer);
      if (!res.ok) timer.clear();
      return res;
    } catch (e) {
      timer.clear();
      if (call.opts?.signal?.aborted) throw new MeshagentError({ status: 0, code: "aborted", message: `${label} was aborted`, request: label, cause: e });
      if (timer.controller.signal.aborted) {
        const ms = call.opts?.timeoutMs ?? this.timeoutMs;
        throw new MeshagentError({ status: 0, code: "timeout", message: `${label} timed out after ${ms} ms`, request: label, cause: e });
      }
      const why = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new MeshagentError({
        status: 0,
        code: "network_error",
        message: `${label}: cannot reach ${this.baseUrl} (${why?.code ?? why?.message ?? (e as Error).message})`,
        request: label,
        cause: e,
      });
    }
  }

  /** A call whose answer is JSON. */
  async json<T>(call: Call): Promise<T> {
    const res = await this.send(call);
    const text = await this.text(res, call);
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new MeshagentError({
        status: res.status,
        code: "invalid_response",
        message: `${call.method} ${call.path} answered non-JSON`,
        request: `${call.method} ${call.path}`,
        cause: e,
      });
    }
  }

  /** A call whose answer is not read (its body is drained). */
  async none(call: Call): Promise<void> {
    const res = await this.send(call);
    await this.text(res, call);
  }

  /** The answer's body as a stream of chunks; each chunk resets the idle timeout, and `onProgress` sees the count. */
  stream(res: Response, call: Call, onProgress?: (received: number, total: number | undefined) => void): ReadableStream<Uint8Array> {
    const timer = timers.get(res);
    const total = res.headers.get("content-length") ? Number(res.headers.get("content-length")) : undefined;
    let received = 0;
    const label = `${call.method} ${call.path}`;
    const src = res.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    const reader = src.getReader();
    return new ReadableStream<Uint8Array>({
      async pull(c) {
        try {
          const { value, done } = await reader.read();
          if (done) {
            timer?.clear();
            return c.close();
          }
          received += value.byteLength;
          timer?.touch();
          onProgress?.(received, total);
          c.enqueue(value);
        } catch (e) {
          timer?.clear();
          const code = timer?.controller.signal.aborted ? "timeout" : call.opts?.signal?.aborted ? "aborted" : "network_error";
          c.error(new MeshagentError({ status: 0, code, message: `${label}: the download stopped (${code})`, request: label, cause: e }));
        }
      },
      cancel(reason) {
        timer?.clear();
        return reader.cancel(reason);
      },
    });
  }

  /** The whole body as text; the call's timer (its signal aborts the read too) stops when the body is in. */
  private async text(res: Response, call: Call): Promise<string> {
    const timer = timers.get(res);
    const label = `${call.method} ${call.path}`;
    try {
      return await res.text();
    } catch (e) {
      const code = timer?.controller.signal.aborted ? "timeout" : call.opts?.signal?.aborted ? "aborted" : "network_error";
      throw new MeshagentError({ status: res.status, code, message: `${label}: the answer did not arrive whole (${code})`, request: label, cause: e });
    } finally {
      timer?.clear();
    }
  }
}
