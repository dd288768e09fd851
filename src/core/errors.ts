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

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}
