/**
 * Every failure the SDK reports is a MeshagentError: an HTTP error answer (status, the server's error code and message,
 * its request id), a timeout, an abort, or a transport error (status 0).
 */
export class MeshagentError extends Error {
  override readonly name = "MeshagentError";
  /** HTTP status; 0 when no answer came back (timeout, abort, connection refused). */
  readonly status: number;
  /** The server's `error.code` (snake_case), or `timeout`, `aborted`, `network_error`, `http_<status>`. */
  readonly code: string;
  /** The server's `x-request-id` answer header, when there was an answer. */
  readonly requestId: string | undefined;
  /** The method and path that failed, e.g. `GET /accounts/projects`. */
  readonly request: string;
  /** The parsed error body, when the server sent JSON. */
  readonly body: unknown;

  constructor(init: { status: number; code: string; message: string; request: string; requestId?: string; body?: unknown; cause?: unknown }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.request = init.request;
    this.body = init.body;
  }

  /** True for answers worth trying again: 408, 429, 5xx, and transport errors (timeouts included; an abort is not). */
  get retryable(): boolean {
    if (this.code === "aborted") return false;
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** The MeshagentError for a non-2xx answer, from its `{"error": {"code", "message"}}` body when there is one. */
export async function errorFromResponse(res: Response, request: string): Promise<MeshagentError> {
  const requestId = res.headers.get("x-request-id") ?? undefined;
  const text = await res.text().catch(() => "");
  let body: unknown = text || undefined;
  let code = `http_${res.status}`;
  let message = `${request} failed with HTTP ${res.status}`;
  try {
    body = JSON.parse(text);
    const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (err && typeof err === "object") {
      if (typeof err.code === "string") code = err.code;
      if (typeof err.message === "string") message = err.message;
    } else if (typeof err === "string") message = err;
  } catch {
    if (text && text.length < 500) message = `${message}: ${text}`;
  }
  return new MeshagentError({ status: res.status, code, message, request, requestId, body });
}
