import { pino, type Logger } from "pino";
import { createRequire } from "node:module";
import { requestSerializer } from "./redact.js";

/** `auto`: pretty, one line per event, when stdout is a terminal; JSON lines otherwise. */
export type LogFormat = "auto" | "json" | "pretty";

/** Paths polled by load balancers and Prometheus: their request lines are logged at debug, not info. */
const QUIET_PATHS = new Set(["/healthz", "/readyz", "/metrics"]);

const roots = new Map<string, Logger>();
/**
 * The process's root logger for a level and format (one per pair: every area's logger is a child of it, so the whole
 * process writes through one stream). Pretty output is pino-pretty run in this thread (no worker per context) with
 * the request fields folded into the message, so a request is one short line.
 */
export function rootLogger(level: string, format: LogFormat = "auto", stream?: { write(line: string): void }): Logger {
  // Tests read what the whole context logs from their own stream.
  if (stream) return pino({ level, serializers: { req: requestSerializer } }, stream);
  const pretty = format === "pretty" || (format === "auto" && !!process.stdout.isTTY);
  const id = `${level}:${pretty}`;
  let log = roots.get(id);
  if (!log) {
    const options = { level, serializers: { req: requestSerializer } };
    if (pretty) {
      const pinoPretty = createRequire(import.meta.url)("pino-pretty") as (o: object) => NodeJS.WritableStream;
      log = pino(
        options,
        pinoPretty({
          colorize: !!process.stdout.isTTY,
          translateTime: "HH:MM:ss.l",
          ignore: "pid,hostname,reqId,req,statusCode,responseTime,code,ip,url",
          singleLine: true,
          sync: true,
        }),
      );
    } else log = pino(options);
    roots.set(id, log);
  }
  return log;
}

/** The level and message of a request's one log line: health and metrics polls at debug, 5xx at error. */
export function requestLogLine(method: string, url: string, status: number, ms: number, code?: string) {
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const level: "debug" | "info" | "error" = QUIET_PATHS.has(path) ? "debug" : status >= 500 ? "error" : "info";
  return { level, msg: `${method} ${path} ${status}${code ? ` ${code}` : ""} ${ms.toFixed(1)}ms` };
}

/** The `code` of an `{"error":{"code":…}}` answer (the payload as sent), or undefined. */
export function errorCodeOf(payload: unknown): string | undefined {
  if (typeof payload !== "string" || !payload.startsWith('{"error":')) return undefined;
  const m = /^\{"error":\{"code":"([^"\\]{1,100})"/.exec(payload);
  return m?.[1];
}
