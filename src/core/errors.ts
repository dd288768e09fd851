/** The one error type of the API. Rendered as {"error":{"code","message"}} with its HTTP status. */
export class ApiError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, code = "invalid_request") => new ApiError(400, code, message);
export const unauthorized = (message = "missing or invalid credentials") => new ApiError(401, "unauthorized", message);
export const forbidden = (message = "not allowed") => new ApiError(403, "forbidden", message);
export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);
export const conflict = (message: string) => new ApiError(409, "conflict", message);
export const gone = (message: string) => new ApiError(410, "gone", message);
export const tooLarge = (message: string) => new ApiError(413, "payload_too_large", message);

/** The most characters of an input an error message quotes; longer inputs are cut to a prefix and "…". */
export const QUOTE_MAX = 64;
/** The longest message an error body carries (a backstop: messages quote inputs through `quote`). */
export const MESSAGE_MAX = 400;

/** Cut a text to at most `max` characters, marking the cut with "…". */
export const clip = (s: string, max = QUOTE_MAX) => (s.length > max ? s.slice(0, max) + "…" : s);

/** An input value quoted in an error message: JSON (a string in double quotes), at most QUOTE_MAX characters of it. */
export const quote = (v: unknown) => (typeof v === "string" ? JSON.stringify(clip(v)) : clip(String(JSON.stringify(v))));

export function errorBody(code: string, message: string) {
  return { error: { code, message: clip(message, MESSAGE_MAX) } };
}
