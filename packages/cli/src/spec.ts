import { readFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { CliError } from "./output.js";

export function readText(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`, "usage", undefined, 2);
  }
}

/** A template's placeholders need not be YAML before rendering: it is recognised by its kind line. */
export const isTemplate = (text: string) => /^kind:\s*["']?ServiceTemplate["']?\s*$/m.test(text);

/** A YAML file's text (- for stdin) and its parsed document. */
export function readYaml(file: string, given?: string): { text: string; doc: Record<string, unknown> } {
  const text = given ?? readText(file);
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new CliError(`${file} is not valid YAML: ${(e as Error).message.split("\n")[0]}`, "invalid_yaml");
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new CliError(`${file} must hold one YAML mapping`, "invalid_spec");
  return { text, doc: doc as Record<string, unknown> };
}

/** Without nulls, empty collections and `id`, keys sorted: what a spec says, for comparing two of them. */
export function normalize(v: unknown, top = true): unknown {
  if (Array.isArray(v)) return v.map((x) => normalize(x, false)).filter((x) => x !== undefined);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      if (top && k === "id") continue;
      const n = normalize((v as Record<string, unknown>)[k], false);
      if (n === undefined || n === null) continue;
      if (typeof n === "object" && Object.keys(n).length === 0) continue;
      out[k] = n;
    }
    return out;
  }
  return v === null ? undefined : v;
}

export const toYaml = (v: unknown) => (v === undefined ? "" : stringify(v));
