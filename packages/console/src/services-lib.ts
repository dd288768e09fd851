import type { ServiceSpec, ServiceStatus } from "@meshagent-oss/sdk";

/**
 * Services in the console are edited as ServiceTemplate YAML: the server takes YAML only as a template body
 * ({template, values} on create/update and POST /templates/render), and it parses it, so the browser needs no YAML
 * parser. A stored service made from a template carries its YAML and values in two annotations; one stored as JSON
 * is turned into equivalent template YAML by the small emitter below.
 */
export const ANNOTATION_TEMPLATE_YAML = "meshagent.service.template.yaml";
export const ANNOTATION_TEMPLATE_VALUES = "meshagent.service.template.values";

/** How long the editor waits after the last keystroke before the server checks the YAML. */
export const VALIDATE_DELAY_MS = 400;

/** A new service's starting point. */
export const NEW_SERVICE_YAML = `version: v1
kind: ServiceTemplate
metadata:
  name: my-service
  description: What this service does
container:
  image: ghcr.io/example/agent:latest
  environment:
    - name: LOG_LEVEL
      value: info
`;

// ── YAML emitting (JSON values only) ───────────────────────────────────────────────────────────────────────────

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
/** Words YAML 1.1 reads as booleans or null: quoted when they are keys. */
const YAML11_WORDS = /^(y|n|yes|no|on|off|true|false|null)$/i;
/** Characters YAML must not see raw: C1 controls and YAML 1.1's extra line breaks (NEL, LS, PS), BOM, non-characters. */
const UNSAFE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g;
/** What a literal block may not hold: those, CR, and control characters other than tab and newline. */
// eslint-disable-next-line no-control-regex
const NOT_LITERAL = /[\r\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/;

const key = (k: string) => (PLAIN_KEY.test(k) && !YAML11_WORDS.test(k) ? k : quoted(k));

/** A double-quoted YAML scalar: JSON's escapes are YAML's, plus the characters YAML reads as line breaks. */
function quoted(s: string): string {
  return JSON.stringify(s).replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A multi-line string as a literal block (`|`), when that keeps it exactly; null otherwise. */
function literal(s: string): { header: string; body: string[] } | null {
  if (!s.includes("\n") || s.startsWith(" ") || s.startsWith("\n") || NOT_LITERAL.test(s)) return null;
  const trailing = /\n*$/.exec(s)![0].length;
  const header = trailing === 0 ? "|-" : trailing === 1 ? "|" : "|+";
  const text = trailing ? s.slice(0, -1) : s;
  return { header, body: text.split("\n").map((l) => (l === "" ? "" : `  ${l}`)) };
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return quoted(v);
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  return quoted(String(v));
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const indent = (l: string) => (l === "" ? "" : `  ${l}`);

/** A mapping or sequence as block YAML lines (a null or undefined entry of a mapping is left out). */
function block(v: Record<string, unknown> | unknown[]): string[] {
  const out: string[] = [];
  if (Array.isArray(v)) {
    for (const item of v) {
      const lines = node(item);
      if (typeof lines === "string") out.push(`- ${lines}`);
      else if ("header" in lines) out.push(`- ${lines.header}`, ...lines.body.map(indent));
      else out.push(`- ${lines[0]}`, ...lines.slice(1).map(indent));
    }
    return out;
  }
  for (const [k, val] of Object.entries(v)) {
    if (val === null || val === undefined) continue;
    const lines = node(val);
    if (typeof lines === "string") out.push(`${key(k)}: ${lines}`);
    else if ("header" in lines) out.push(`${key(k)}: ${lines.header}`, ...lines.body);
    else out.push(`${key(k)}:`, ...lines.map(indent));
  }
  return out;
}

/** A value: an inline scalar, a literal block, or block lines of a non-empty collection. */
function node(v: unknown): string | string[] | { header: string; body: string[] } {
  if (Array.isArray(v)) return v.length ? block(v) : "[]";
  if (isObj(v)) return Object.values(v).some((x) => x !== null && x !== undefined) ? block(v) : "{}";
  if (typeof v === "string") return literal(v) ?? quoted(v);
  return scalar(v);
}

/** A JSON object as block YAML text (YAML 1.1 and 1.2 read it back as the same value). */
export function toYaml(doc: Record<string, unknown>): string {
  return block(doc).join("\n") + "\n";
}

// ── A stored service as template YAML ──────────────────────────────────────────────────────────────────────────

export type EditableService = { yaml: string; values: Record<string, string>; fromTemplate: boolean } | { error: string };

/**
 * What the editor starts from for a stored service: its template (YAML and values) when it was made from one,
 * otherwise its ServiceSpec as ServiceTemplate YAML. A container with `secrets` or `pull_secret` has no template
 * form (a ServiceTemplate's container cannot name them): that service cannot be edited here.
 */
export function editableService(spec: ServiceSpec): EditableService {
  const ann = spec.metadata?.annotations ?? {};
  const tpl = ann[ANNOTATION_TEMPLATE_YAML];
  if (typeof tpl === "string" && tpl.trim()) {
    let values: Record<string, string> = {};
    try {
      const v: unknown = JSON.parse(ann[ANNOTATION_TEMPLATE_VALUES] ?? "{}");
      if (isObj(v)) values = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)]));
    } catch {
      // Values that are not JSON: start without them (the server names the missing ones).
    }
    return { yaml: tpl, values, fromTemplate: true };
  }
  const { version, kind: _kind, id: _id, metadata, container, ...rest } = spec as ServiceSpec & { container?: Record<string, unknown> };
  const doc: Record<string, unknown> = { version: version ?? "v1", kind: "ServiceTemplate", metadata };
  const order = ["agents", "ports", "files"];
  for (const k of order) if (rest[k] !== undefined) doc[k] = rest[k];
  if (container) {
    const { secrets, pull_secret, ...c } = container;
    const named = [Array.isArray(secrets) && secrets.length ? "container.secrets" : "", pull_secret ? "container.pull_secret" : ""].filter(Boolean);
    if (named.length)
      return {
        error: `This service's ${named.join(" and ")} cannot be written as a ServiceTemplate, so it cannot be edited here; use the CLI or the API (update_service).`,
      };
    doc.container = c;
  }
  for (const [k, v] of Object.entries(rest)) if (!order.includes(k) && v !== undefined) doc[k] = v;
  let yaml = toYaml(doc);
  // The server renders the whole text as a Jinja2 template first: a spec that contains template syntax stays literal.
  if (/\{[{%#]/.test(yaml)) yaml = `{% raw %}\n${yaml}{% endraw %}\n`;
  return { yaml, values: {}, fromTemplate: false };
}

// ── Template values as "name=value" lines ──────────────────────────────────────────────────────────────────────

/** Values as lines of name=value (a value with a newline, or outer spaces or quotes, as a JSON string). */
export function formatValues(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}=${/[\n\r]|^\s|\s$|^"/.test(v) ? JSON.stringify(v) : v}`)
    .join("\n");
}

/** Lines of name=value as values; blank lines and lines starting with # are skipped. */
export function parseValues(text: string): { values: Record<string, string> } | { error: string } {
  const values: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    if (!line.trim() || line.trimStart().startsWith("#")) continue;
    const eq = line.indexOf("=");
    const name = eq < 0 ? "" : line.slice(0, eq).trim();
    if (!name) return { error: `Values, line ${i + 1}: write name=value` };
    let value = line.slice(eq + 1);
    if (value.startsWith('"')) {
      try {
        const v: unknown = JSON.parse(value);
        if (typeof v !== "string") throw new Error();
        value = v;
      } catch {
        return { error: `Values, line ${i + 1}: a value that starts with " must be a JSON string` };
      }
    }
    values[name] = value;
  }
  return { values };
}

// ── Status ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** Whether a state is good, bad or neither (shown as text; the tone only adds a border). */
export function stateTone(state: string): "ok" | "bad" | "" {
  if (state === "running") return "ok";
  if (state === "failed" || state === "no_runtime" || state === "restarting") return "bad";
  return "";
}

/** A service's rooms in a few words: "running in 2 rooms, failed in 1 room", or that it runs nowhere. */
export function summarizeStatus(rooms: Pick<ServiceStatus, "state">[]): string {
  if (!rooms.length) return "Not running in any room";
  const counts = new Map<string, number>();
  for (const r of rooms) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  return [...counts]
    .map(([state, n]) => `${state.replace("_", " ")} in ${n} ${n === 1 ? "room" : "rooms"}`)
    .join(", ")
    .replace(/^./, (c) => c.toUpperCase());
}

/** What a service runs, in a few words. */
export function serviceKind(spec: ServiceSpec): string {
  const c = spec.container as { image?: string } | undefined;
  const e = spec.external as { url?: string } | undefined;
  if (c?.image) return `Container ${c.image}`;
  if (e?.url) return `External ${e.url}`;
  const agents = Array.isArray(spec.agents) ? spec.agents.length : 0;
  return agents ? `${agents} ${agents === 1 ? "agent" : "agents"}` : "—";
}
