/**
 * A hosted tool's input JSON schema as form fields, and the form's values back as the tool's arguments. Pure: the
 * room page renders the fields and calls the tool with what buildArguments returns.
 */
import type { Content } from "@meshagent-oss/sdk";

export type FieldKind = "string" | "number" | "integer" | "boolean" | "enum" | "json";

export interface ToolField {
  /** The property name: also the field's label. */
  name: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  /** enum: the allowed values (any JSON). */
  options?: unknown[];
  /** The schema's default, when it has one. */
  default?: unknown;
  /** For a string field: a longer text (format textarea, or a maxLength over 200). */
  multiline?: boolean;
}

/** The form of a schema: its fields, or `whole` when the input is not an object of properties (one JSON text). */
export interface ToolForm {
  fields: ToolField[];
  /** The schema is not `{type: object, properties}`: the arguments are typed as one JSON object. */
  whole: boolean;
}

/** The value a field holds while being edited: text for inputs and textareas, a boolean for a checkbox. */
export type FieldValue = string | boolean;

/** The name of the JSON textarea used when the schema has no properties to show. */
export const WHOLE_FIELD = "arguments";

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** A property's single type: `type` (a string, or a list with "null" dropped), else null when it is not one type. */
function singleType(p: Record<string, unknown>): string | null {
  const t = p.type;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const rest = t.filter((x) => x !== "null");
    if (rest.length === 1 && typeof rest[0] === "string") return rest[0];
  }
  return null;
}

/** The kind of input a property schema gets: string/number/integer/boolean/enum fields, anything else JSON. */
export function fieldKind(p: unknown): FieldKind {
  if (!isObj(p)) return "json";
  if (Array.isArray(p.enum) && p.enum.length > 0) return "enum";
  if ("const" in p) return "json";
  if (p.anyOf || p.oneOf || p.allOf || p.$ref) return "json";
  const t = singleType(p);
  if (t === "string" || t === "number" || t === "integer" || t === "boolean") return t;
  return "json";
}

/** The fields of a tool's input schema, in the order of its properties. */
export function toolForm(schema: unknown): ToolForm {
  if (!isObj(schema) || !isObj(schema.properties) || (schema.type !== undefined && singleType(schema) !== "object"))
    return { fields: [], whole: !isEmptyObjectSchema(schema) };
  const required = new Set(Array.isArray(schema.required) ? schema.required.filter((x): x is string => typeof x === "string") : []);
  const fields: ToolField[] = [];
  for (const [name, p] of Object.entries(schema.properties)) {
    const kind = fieldKind(p);
    const f: ToolField = { name, kind, required: required.has(name) };
    if (isObj(p)) {
      if (typeof p.description === "string" && p.description) f.description = p.description;
      else if (typeof p.title === "string" && p.title && p.title !== name) f.description = p.title;
      if ("default" in p) f.default = p.default;
      if (kind === "enum") f.options = p.enum as unknown[];
      if (kind === "string" && (p.format === "textarea" || (typeof p.maxLength === "number" && p.maxLength > 200))) f.multiline = true;
    }
    fields.push(f);
  }
  return { fields, whole: false };
}

/** A schema that takes nothing: absent, `{}`, or an object with no properties that allows no others. */
function isEmptyObjectSchema(schema: unknown): boolean {
  if (schema === undefined || schema === null) return true;
  if (!isObj(schema)) return false;
  if (Object.keys(schema).length === 0) return true;
  return singleType(schema) === "object" && !schema.properties && schema.additionalProperties === false;
}

/** The text an enum option shows and is selected by (strings as they are, other values as JSON). */
export const optionText = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/** The form's starting values: each field's default (or empty; enums: their first option when required). */
export function initialValues(form: ToolForm): Record<string, FieldValue> {
  const out: Record<string, FieldValue> = {};
  if (form.whole) out[WHOLE_FIELD] = "{}";
  for (const f of form.fields) {
    const d = f.default;
    switch (f.kind) {
      case "boolean":
        out[f.name] = d === true;
        break;
      case "enum":
        out[f.name] = d !== undefined ? optionText(d) : f.required && f.options?.length ? optionText(f.options[0]) : "";
        break;
      case "json":
        out[f.name] = d !== undefined ? JSON.stringify(d, null, 2) : "";
        break;
      default:
        out[f.name] = d !== undefined && d !== null ? String(d) : "";
    }
  }
  return out;
}

/**
 * The arguments a filled form stands for, or the errors by field name. Empty optional fields are left out; a
 * checkbox is always sent (true or false).
 */
export function buildArguments(form: ToolForm, values: Record<string, FieldValue>): { args: Record<string, unknown> | null; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  if (form.whole) {
    const text = String(values[WHOLE_FIELD] ?? "").trim();
    if (!text) return { args: {}, errors };
    try {
      const v: unknown = JSON.parse(text);
      if (!isObj(v)) errors[WHOLE_FIELD] = "the arguments must be a JSON object";
      else return { args: v, errors };
    } catch (e) {
      errors[WHOLE_FIELD] = `not valid JSON: ${(e as Error).message}`;
    }
    return { args: null, errors };
  }
  const args: Record<string, unknown> = {};
  for (const f of form.fields) {
    const raw = values[f.name];
    if (f.kind === "boolean") {
      args[f.name] = raw === true;
      continue;
    }
    const text = typeof raw === "string" ? raw : "";
    if (text.trim() === "" && f.kind !== "string") {
      if (f.required) errors[f.name] = `${f.name} is required`;
      continue;
    }
    switch (f.kind) {
      case "string":
        if (text === "") {
          if (f.required) errors[f.name] = `${f.name} is required`;
        } else args[f.name] = text;
        break;
      case "number":
      case "integer": {
        const n = Number(text.trim());
        if (!Number.isFinite(n)) errors[f.name] = `${f.name} must be a number`;
        else if (f.kind === "integer" && !Number.isInteger(n)) errors[f.name] = `${f.name} must be a whole number`;
        else args[f.name] = n;
        break;
      }
      case "enum": {
        const hit = (f.options ?? []).find((o) => optionText(o) === text);
        if (hit === undefined) errors[f.name] = `${f.name} must be one of ${(f.options ?? []).map(optionText).join(", ")}`;
        else args[f.name] = hit;
        break;
      }
      case "json":
        try {
          args[f.name] = JSON.parse(text);
        } catch (e) {
          errors[f.name] = `${f.name} is not valid JSON: ${(e as Error).message}`;
        }
        break;
    }
  }
  return Object.keys(errors).length ? { args: null, errors } : { args, errors };
}

/** A short description of a field's type for its hint (e.g. "number, required"). */
export function fieldHint(f: ToolField): string {
  const kind = f.kind === "json" ? "JSON" : f.kind === "enum" ? "one of the listed values" : f.kind === "integer" ? "whole number" : f.kind;
  return [f.description, `${kind}${f.required ? ", required" : ""}`].filter(Boolean).join(" · ");
}

/** A tool's answer as text to show: JSON pretty-printed, text as it is, files and binaries described. */
export function resultText(c: Content): { kind: "json" | "text" | "empty" | "file" | "link" | "binary" | "other"; text: string } {
  switch (c.type) {
    case "json":
      return { kind: "json", text: JSON.stringify(c.json, null, 2) ?? "null" };
    case "text":
      return { kind: "text", text: c.text };
    case "empty":
      return { kind: "empty", text: "The tool answered with no content." };
    case "file":
      return { kind: "file", text: `A file: ${c.name} (${c.mime_type}, ${c.data.length} bytes)` };
    case "link":
      return { kind: "link", text: `${c.name ? `${c.name}: ` : ""}${c.url}` };
    case "binary":
      return { kind: "binary", text: `${c.data.length} bytes; headers ${JSON.stringify(c.headers)}` };
    default:
      return { kind: "other", text: JSON.stringify(c) };
  }
}
