import { MeshagentError } from "@meshagent-oss/sdk";

export type Format = "table" | "json";

/** A failure the CLI explains itself: a message, a code, an optional fix, and the exit code (1 error, 2 usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = "error",
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Thrown after `--curl` printed a request instead of sending it: the command stops there, successfully. */
export class CurlPrinted extends Error {}

export const out = (s: string): void => void process.stdout.write(s.endsWith("\n") ? s : s + "\n");
export const log = (s: string): void => void process.stderr.write(s.endsWith("\n") ? s : s + "\n");

const cell = (v: unknown): string => {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
};

/** Columns padded to their widest cell; the header in capitals. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const grid = [columns.map((c) => c.toUpperCase()), ...rows.map((r) => columns.map((c) => cell(r[c])))];
  const widths = columns.map((_, i) => Math.max(...grid.map((row) => row[i].length)));
  return grid.map((row) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]))).join("  ")).join("\n") + "\n";
}

/** A list: JSON array, or a table (an empty one is a "no <what>" line on stderr, still exit 0). */
export function printList(format: Format, items: unknown[], columns: string[], what: string) {
  if (format === "json") return out(JSON.stringify(items, null, 2));
  if (items.length === 0) return log(`no ${what}`);
  out(table(items as Record<string, unknown>[], columns));
}

/** One object: JSON, or "key  value" lines. */
export function printOne(format: Format, item: unknown) {
  if (format === "json" || typeof item !== "object" || item === null) return out(JSON.stringify(item, null, 2));
  const entries = Object.entries(item as Record<string, unknown>);
  const w = Math.max(0, ...entries.map(([k]) => k.length));
  out(entries.map(([k, v]) => `${k.padEnd(w)}  ${cell(v)}`).join("\n"));
}

/** A fix worth suggesting for a server error. */
function hintFor(e: MeshagentError): string | undefined {
  if (e.status === 401) return "run `meshagent auth login` or set MESHAGENT_API_KEY";
  if (e.status === 403) return "the credentials in use lack the permission; see `meshagent auth whoami`";
  if (e.code === "network_error") return "is the server running? check --api-url / MESHAGENT_API_URL (`meshagent dev` starts one locally)";
  if (e.status === 404) return "check the id or name (a list command shows what exists)";
  return undefined;
}

/**
 * Reports a failure: one `error:` line (and a `hint:` line) on stderr; with JSON output also `{code, message, hint}`
 * on stdout, so that a script reading stdout always gets JSON. Returns the exit code.
 */
export function reportError(e: unknown, format: Format): number {
  let code = "error";
  let message = String(e);
  let hint: string | undefined;
  let exitCode = 1;
  if (e instanceof CliError) ({ code, message, hint, exitCode } = e);
  else if (e instanceof MeshagentError) {
    ({ code, message } = e);
    hint = hintFor(e);
  } else if (e instanceof Error) {
    message = e.message;
    // A file the command was given (ENOENT, EACCES, …): the system's code says which.
    const sys = (e as NodeJS.ErrnoException).code;
    if (typeof sys === "string") code = sys.toLowerCase();
  }
  log(`error: ${message.split("\n")[0]} (${code})`);
  if (hint) log(`hint: ${hint}`);
  if (format === "json") out(JSON.stringify({ code, message, hint: hint ?? null }));
  return exitCode;
}
