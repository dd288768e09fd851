/**
 * The README's configuration table, rendered from ConfigSchema (src/config.ts).
 *
 *   npm run docs:config            rewrite the table in README.md between the config-table markers
 *   npm run docs:config -- --check exit 1 (changing nothing) when README.md's table is out of date
 *
 * test/config.test.ts fails when the README and the schema disagree.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { KindGuard } from "@sinclair/typebox";
import { configEntries, expectedText, type ConfigEntry } from "../src/config.js";

export const START = "<!-- config-table:start -->";
export const END = "<!-- config-table:end -->";
export const README = fileURLToPath(new URL("../README.md", import.meta.url));

const UNITS: Record<string, string> = { s: "seconds", ms: "ms", bytes: "bytes", days: "days" };

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");

function typeText(s: ConfigEntry): string {
  const t = KindGuard.IsBoolean(s) ? "boolean" : expectedText(s).replace(/^an? /, "");
  return s.secret ? `${t} (secret)` : t;
}

function binary(n: number): string {
  for (const [size, name] of [
    [1024 ** 3, "GiB"],
    [1024 ** 2, "MiB"],
    [1024, "KiB"],
  ] as const) {
    if (n >= size && n % size === 0) return ` (${n / size} ${name})`;
  }
  return "";
}

function defaultText(s: ConfigEntry): string {
  if (s.defaultText) return s.defaultText;
  if (s.default === undefined) return "unset";
  const d = s.default as unknown;
  let extra = "";
  if (typeof d === "number" && s.unit === "bytes") extra = binary(d);
  if (typeof d === "number" && s.unit === "s" && d >= 3600 && d % 3600 === 0) extra = ` (${d / 3600} h)`;
  return `\`${String(d)}\`${extra}`;
}

/** The Markdown table of every variable in ConfigSchema, in schema order (no trailing newline). */
export function renderConfigTable(): string {
  const rows = configEntries().map(([name, s]) => [`\`${name}\``, typeText(s), UNITS[s.unit ?? ""] ?? "", defaultText(s), s.description].map(cell));
  return ["| variable | type | unit | default | meaning |", "|---|---|---|---|---|", ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** What lies between the markers (trimmed), or an Error when they are missing or out of order. */
export function tableInReadme(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md must contain ${START} followed by ${END}`);
  return readme.slice(start + START.length, end).trim();
}

/** The README with the text between the markers replaced by the rendered table. */
export function withTable(readme: string, table = renderConfigTable()): string {
  tableInReadme(readme);
  const start = readme.indexOf(START) + START.length;
  const end = readme.indexOf(END);
  return `${readme.slice(0, start)}\n${table}\n${readme.slice(end)}`;
}

function main(argv: string[]) {
  const readme = readFileSync(README, "utf8");
  const next = withTable(readme);
  if (argv.includes("--check")) {
    if (next !== readme) {
      console.error("README.md's configuration table is out of date: run npm run docs:config");
      process.exit(1);
    }
    return;
  }
  if (next !== readme) writeFileSync(README, next);
  console.log(next === readme ? "README.md: configuration table up to date" : "README.md: configuration table rewritten");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
