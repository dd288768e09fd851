import { badRequest } from "./errors.js";

/**
 * A small strict validator for the wire models that the Python client declares `extra="forbid"` (wire-contract §1):
 * an unknown key is refused, `null` counts as absent and is dropped, and every error (an ApiError 400) names its
 * path, e.g. `spec.metadata.foo is not a known field (known: name, annotations)`, `spec.schedule must be a string,
 * not a number`, `spec.queue.name is required`. What comes back is what was sent, nulls removed: no defaults filled in.
 *
 * `CheckOptions` add bounds (string lengths, array sizes, nesting of open JSON objects), refuse `__proto__` keys, and
 * `lax` accepts what pydantic's lax mode coerces (integers and booleans written as strings; templates render to text).
 * Without options there are no bounds (a node's `max` only replaces the bound of `CheckOptions`), and a check
 * behaves as the scheduler's original validator, except that a key named like an Object.prototype member
 * (`constructor`, `toString`…) is now an unknown field rather than silently dropped.
 */
export type Schema = SchemaNode & {
  /** Runs after the node validated, on the value it returns; throws `badRequest` to refuse it. */
  refine?: (value: unknown, path: string) => void;
};

type SchemaNode =
  | { t: "string"; nonEmpty?: boolean; max?: number } // `max` replaces CheckOptions.maxString when that is set
  | { t: "boolean" }
  | { t: "integer"; min?: number }
  | { t: "enum"; values: readonly string[] } // string literals
  | { t: "object"; fields: Record<string, Schema>; required?: string[]; open?: boolean }
  | { t: "array"; of: Schema; nonEmpty?: boolean; max?: number }
  | { t: "strings"; max?: number } // {str: str}; `max` bounds each value
  | { t: "json" } // any JSON object
  | { t: "oneOf"; of: Schema[]; expected: string } // the first that accepts the value; `expected` words the error
  | { t: "tagged"; key: string; cases: Record<string, Schema> }; // a discriminated union of objects

export interface CheckOptions {
  /** The longest string (characters) unless a node sets its own `max`. */
  maxString?: number;
  /** The most items of an array, and the most keys of a `strings` map or a JSON object. */
  maxItems?: number;
  /** When set, open objects and `json` values are walked, checked to be JSON no deeper than this, and copied. */
  maxDepth?: number;
  /** Refuse `__proto__` as a key of a `strings` map or a JSON object. */
  safeKeys?: boolean;
  /** pydantic lax mode: "8080" is an integer, "true"/"yes"/"on"/"1" (and 1/0) are booleans. */
  lax?: boolean;
}

export const str: Schema = { t: "string" };
export const nonEmptyStr: Schema = { t: "string", nonEmpty: true };
export const bool: Schema = { t: "boolean" };
export const int = (min?: number): Schema => ({ t: "integer", min });
export const enm = (...values: string[]): Schema => ({ t: "enum", values });
export const strings: Schema = { t: "strings" };
export const json: Schema = { t: "json" };
export const obj = (fields: Record<string, Schema>, required: string[] = []): Schema => ({ t: "object", fields, required });
export const arr = (of: Schema): Schema => ({ t: "array", of });
export const oneOf = (expected: string, ...of: Schema[]): Schema => ({ t: "oneOf", of, expected });
export const tagged = (key: string, cases: Record<string, Schema>): Schema => ({ t: "tagged", key, cases });

/** An object schema with some fields replaced or added (field order kept, new ones last). */
export function withFields(s: Schema, fields: Record<string, Schema>, required?: string[]): Schema {
  if (s.t !== "object") throw new Error("withFields needs an object schema");
  return { ...s, fields: { ...s.fields, ...fields }, required: required ?? s.required };
}

export const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`);

/** A plain object (what JSON.parse and YAML mappings give): not null, an array, a Date, a Map… */
function isPlain(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

const LAX_TRUE = new Set(["1", "on", "t", "true", "y", "yes"]);
const LAX_FALSE = new Set(["0", "off", "f", "false", "n", "no"]);

function tooMany(path: string, max: number): never {
  throw badRequest(`${path} must have at most ${max} items`);
}

function checkKey(k: string, path: string, o: CheckOptions) {
  if (o.safeKeys && k === "__proto__") throw badRequest(`${path} must not have the key "__proto__"`);
  if (o.maxString !== undefined && k.length > o.maxString) throw badRequest(`${path} has a key longer than ${o.maxString} characters`);
}

/** A deep copy of a JSON value, bounded by `o` (only when `o.maxDepth` is set). */
function cloneJson(v: unknown, path: string, o: CheckOptions, depth: number): unknown {
  if (v === null || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw badRequest(`${path} must be a finite number`);
    return v;
  }
  if (typeof v === "string") {
    if (o.maxString !== undefined && v.length > o.maxString) throw badRequest(`${path} must be at most ${o.maxString} characters`);
    return v;
  }
  if (depth >= o.maxDepth!) throw badRequest(`${path} is nested more than ${o.maxDepth} levels deep`);
  if (Array.isArray(v)) {
    if (o.maxItems !== undefined && v.length > o.maxItems) tooMany(path, o.maxItems);
    return v.map((x, i) => cloneJson(x, `${path}[${i}]`, o, depth + 1));
  }
  if (!isPlain(v)) throw badRequest(`${path} must be JSON (an object, array, string, number, boolean or null), not ${typeName(v)}`);
  const entries = Object.entries(v);
  if (o.maxItems !== undefined && entries.length > o.maxItems) tooMany(path, o.maxItems);
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries) {
    checkKey(k, path, o);
    out[k] = cloneJson(x, `${path}.${k}`, o, depth + 1);
  }
  return out;
}

/** Validate `v` against `s`; returns the value as sent, nulls in objects dropped (open JSON objects kept whole). */
export function check(s: Schema, v: unknown, path: string, o: CheckOptions = {}): unknown {
  const out = checkNode(s, v, path, o);
  s.refine?.(out, path);
  return out;
}

function checkNode(s: Schema, v: unknown, path: string, o: CheckOptions): unknown {
  switch (s.t) {
    case "string": {
      if (typeof v !== "string") throw badRequest(`${path} must be a string, not ${typeName(v)}`);
      if (s.nonEmpty && v.trim() === "") throw badRequest(`${path} must not be empty`);
      const max = o.maxString === undefined ? undefined : (s.max ?? o.maxString);
      if (max !== undefined && v.length > max) throw badRequest(`${path} must be at most ${max} characters`);
      return v;
    }
    case "boolean":
      if (o.lax) {
        if (typeof v === "string" && LAX_TRUE.has(v.toLowerCase())) return true;
        if (typeof v === "string" && LAX_FALSE.has(v.toLowerCase())) return false;
        if (v === 1 || v === 0) return v === 1;
      }
      if (typeof v !== "boolean") throw badRequest(`${path} must be true or false, not ${typeName(v)}`);
      return v;
    case "integer": {
      const n = !o.lax
        ? v
        : typeof v === "string" && /^\s*[+-]?\d+(_\d+)*(\.0*)?\s*$/.test(v)
          ? Number(v.replace(/_/g, ""))
          : typeof v === "boolean"
            ? Number(v)
            : v;
      if (typeof n !== "number" || !Number.isInteger(n) || (s.min !== undefined && n < s.min))
        throw badRequest(`${path} must be an integer${s.min !== undefined ? ` ≥ ${s.min}` : ""}`);
      return n;
    }
    case "enum":
      if (typeof v !== "string" || !s.values.includes(v)) throw badRequest(`${path} must be ${s.values.map((x) => `"${x}"`).join(" or ")}`);
      return v;
    case "array": {
      if (!Array.isArray(v)) throw badRequest(`${path} must be an array, not ${typeName(v)}`);
      const max = o.maxItems === undefined ? undefined : (s.max ?? o.maxItems);
      if (max !== undefined && v.length > max) tooMany(path, max);
      if (s.nonEmpty && v.length === 0) throw badRequest(`${path} must not be empty`);
      return v.map((x, i) => check(s.of, x, `${path}[${i}]`, o));
    }
    case "strings": {
      if (o.maxDepth !== undefined ? !isPlain(v) : !isObjLike(v)) throw badRequest(`${path} must be an object of strings, not ${typeName(v)}`);
      const entries = Object.entries(v as Record<string, unknown>);
      if (o.maxItems !== undefined && entries.length > o.maxItems) tooMany(path, o.maxItems);
      const max = o.maxString === undefined ? undefined : (s.max ?? o.maxString);
      for (const [k, x] of entries) {
        checkKey(k, path, o);
        if (typeof x !== "string") throw badRequest(`${path}.${k} must be a string, not ${typeName(x)}`);
        if (max !== undefined && x.length > max) throw badRequest(`${path}.${k} must be at most ${max} characters`);
      }
      return { ...(v as Record<string, string>) };
    }
    case "json":
      if (!isObjLike(v) || (o.maxDepth !== undefined && !isPlain(v))) throw badRequest(`${path} must be a JSON object, not ${typeName(v)}`);
      return o.maxDepth !== undefined ? cloneJson(v, path, o, 0) : v;
    case "object": {
      if (!isObjLike(v) || (o.maxDepth !== undefined && !isPlain(v))) throw badRequest(`${path} must be an object, not ${typeName(v)}`);
      if (s.open) return o.maxDepth !== undefined ? cloneJson(v, path, o, 0) : v;
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const f = Object.prototype.hasOwnProperty.call(s.fields, k) ? s.fields[k] : undefined;
        if (!f) throw badRequest(`${path}.${k} is not a known field (known: ${Object.keys(s.fields).join(", ")})`);
        if (x === null || x === undefined) continue;
        out[k] = check(f, x, `${path}.${k}`, o);
      }
      for (const r of s.required ?? []) if (out[r] === undefined) throw badRequest(`${path}.${r} is required`);
      return out;
    }
    case "oneOf": {
      for (const alt of s.of) {
        try {
          return check(alt, v, path, o);
        } catch (err) {
          if (!(err instanceof Error && "status" in err)) throw err;
        }
      }
      throw badRequest(`${path} must be ${s.expected}`);
    }
    case "tagged": {
      if (!isObjLike(v) || (o.maxDepth !== undefined && !isPlain(v))) throw badRequest(`${path} must be an object, not ${typeName(v)}`);
      const tag = v[s.key];
      if (tag === null || tag === undefined) throw badRequest(`${path}.${s.key} is required`);
      const c = typeof tag === "string" && Object.prototype.hasOwnProperty.call(s.cases, tag) ? s.cases[tag] : undefined;
      if (!c)
        throw badRequest(
          `${path}.${s.key} must be ${Object.keys(s.cases)
            .map((x) => `"${x}"`)
            .join(" or ")}`,
        );
      return check(c, v, path, o);
    }
  }
}

/** What the original validator called an object (core/json.ts `isObj`): not null, not an array. */
function isObjLike(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
