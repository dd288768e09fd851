import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyServerOptions } from "fastify";
import { errorBody, quote } from "./errors.js";

/**
 * Errors Fastify and Node raise before any route runs, answered in the API's own shape ({"error":{"code","message"}})
 * like every other error. Wired into the Fastify options in src/app.ts.
 */

/** The longest path parameter the router accepts (Fastify's default is 100); longer is a 414 uri_too_long. */
export const MAX_PARAM_LENGTH = 1000;

/** Fastify's `frameworkErrors`: a path that is not valid percent-encoding, an over-long path parameter. */
type Reply = { header(k: string, v: string): unknown; code(n: number): { send(b: unknown): unknown } };

function answerFrameworkError(err: { code?: string }, req: { id: string }, reply: Reply) {
  reply.header("x-request-id", req.id);
  if (err.code === "FST_ERR_MAX_PARAM_LENGTH")
    return reply.code(414).send(errorBody("uri_too_long", `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`));
  if (err.code === "FST_ERR_BAD_URL") return reply.code(400).send(errorBody("bad_url", "the URL's path is not valid percent-encoding"));
  return reply.code(400).send(errorBody("bad_request", "the request could not be routed"));
}
export const frameworkErrors = answerFrameworkError as unknown as NonNullable<FastifyServerOptions["frameworkErrors"]>;

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, "request_header_fields_too_large", "the request's headers are larger than the server accepts (16 KiB)"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request_timeout", "the request was not received in time"],
  HPE_URI_TOO_LONG: [414, "uri_too_long", "the request's URL is too long"],
};

/**
 * Node's `clientError` (Fastify's `clientErrorHandler`): the HTTP parser refused the request (oversized headers → 431,
 * malformed request line or headers → 400, a timeout → 408). There is no request object: the response is written
 * to the socket, which then closes.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket) {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message] = CLIENT_ERRORS[err.code ?? ""] ?? [
    400,
    "bad_request",
    `the request is not valid HTTP${err.code?.startsWith("HPE_") ? ` (${err.code.slice(4).toLowerCase()})` : ""}`,
  ];
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable)
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  // A client that never reads must not keep the socket: it is destroyed shortly after the answer was queued.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * onRequest: a URL with a NUL character (%00) in its path or query is a 400, on both stores alike (PostgreSQL's text
 * cannot hold one, SQLite's can): no identifier, name or path of this API contains one.
 */
export async function refuseNulInUrl(req: { url: string; id: string }, reply: Reply) {
  if (!/%00/i.test(req.url)) return;
  const q = req.url.indexOf("?");
  const inPath = /%00/i.test(q < 0 ? req.url : req.url.slice(0, q));
  let where = "the URL path";
  if (!inPath) {
    const name = req.url
      .slice(q + 1)
      .split("&")
      .find((p) => /%00/i.test(p))!
      .split("=")[0]!;
    where = `query parameter ${quote(name.replace(/%00/gi, "\\0"))}`;
  }
  reply.header("x-request-id", req.id);
  return reply.code(400).send(errorBody("invalid_request", `${where} must not contain NUL characters (%00)`));
}
