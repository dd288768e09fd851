import { randomUUID } from "node:crypto";
import * as Y from "yjs";
import { isObj } from "../core/json.js";

/**
 * MeshSchema (agents-protocol §2.4, the 0.39.9 `schema.js` model): `{"$root_tag_ref": "#/$defs/<tag>", "$defs": {<tag>:
 * {properties: {<tag>: {properties: {<attribute>: {type, enum?} | <children>: {type: "array", items: {anyOf: [{$ref}]}}
 * | {prefixItems: [{$ref}]}}}}}}}`. Parsed here only to check documents against it; the JSON itself is kept as sent.
 */
export interface ElementRule {
  tag: string;
  /** Attribute name → allowed JSON types (and enum values). */
  attributes: Map<string, { types: string[]; enum?: unknown[] }>;
  /** The child property: the tags allowed as children (null: no children allowed). */
  children: Set<string> | null;
  childProperty: string | null;
}

export interface ParsedSchema {
  root: string;
  elements: Map<string, ElementRule>;
}

export class SchemaError extends Error {}

const refTag = (ref: unknown) => {
  if (typeof ref !== "string") throw new SchemaError("a $ref must be a string");
  return ref.startsWith("#/$defs/") ? ref.slice("#/$defs/".length) : ref;
};

/** Parse a MeshSchema JSON as the official client does (fromJson), or a SchemaError saying what is wrong. */
export function parseSchema(json: unknown): ParsedSchema {
  if (!isObj(json)) throw new SchemaError("a schema must be a MeshSchema JSON object");
  const root = refTag(json.$root_tag_ref);
  const defs = json.$defs;
  if (!isObj(defs)) throw new SchemaError("a schema needs $defs");
  const elements = new Map<string, ElementRule>();
  for (const def of Object.values(defs)) {
    if (!isObj(def) || !isObj(def.properties)) throw new SchemaError("each $defs entry needs properties");
    const entries = Object.entries(def.properties);
    if (entries.length === 0) throw new SchemaError("a $defs entry has no properties");
    const [tag, typeJson] = entries[0];
    if (!isObj(typeJson)) throw new SchemaError(`element ${tag}: its type must be an object`);
    const inner = isObj(typeJson.properties) ? typeJson.properties : {};
    const rule: ElementRule = { tag, attributes: new Map(), children: null, childProperty: null };
    for (const [name, p] of Object.entries(inner)) {
      if (!isObj(p)) throw new SchemaError(`element ${tag}: property ${name} must be an object`);
      const types = (Array.isArray(p.type) ? p.type : [p.type]).filter((t): t is string => typeof t === "string");
      if (types[0] === "array") {
        const refs = Array.isArray(p.prefixItems) ? p.prefixItems : isObj(p.items) && Array.isArray(p.items.anyOf) ? p.items.anyOf : null;
        if (!refs) throw new SchemaError(`element ${tag}: array property ${name} needs items.anyOf or prefixItems`);
        if (rule.childProperty) throw new SchemaError(`element ${tag}: only one child property is allowed`);
        rule.childProperty = name;
        rule.children = new Set(refs.map((r) => refTag(isObj(r) ? r.$ref : undefined)));
      } else {
        if (!types.length || !types.every((t) => ["string", "number", "boolean", "null"].includes(t)))
          throw new SchemaError(`element ${tag}: property ${name} has an invalid type`);
        rule.attributes.set(name, { types, enum: Array.isArray(p.enum) ? p.enum : undefined });
      }
    }
    if (elements.has(tag)) throw new SchemaError(`${tag} was found more than once`);
    elements.set(tag, rule);
  }
  if (!elements.has(root)) throw new SchemaError(`${root} was not found in the schema's $defs`);
  for (const r of elements.values())
    for (const c of r.children ?? []) if (!elements.has(c)) throw new SchemaError(`element ${r.tag}: child ${c} is not defined`);
  return { root, elements };
}

const jsonType = (v: unknown) =>
  v === null || v === undefined ? "null" : typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : typeof v === "string" ? "string" : "object";

/** The root element of a document (the schema's root is `doc.get("xml", Y.XmlElement)`). */
export const rootOf = (doc: Y.Doc) => doc.get("xml", Y.XmlElement);

/**
 * Check one element against its rule: its attributes (`$id` always allowed) and, unless `shallow`, its children (tags
 * the child property allows; `text` elements may hold XmlText). Returns the first problem, or null.
 */
export function checkElement(s: ParsedSchema, el: Y.XmlElement, tag: string, shallow: boolean, depth = 0): string | null {
  const rule = s.elements.get(tag);
  if (!rule) return `element <${tag}> is not in the schema`;
  for (const [name, value] of Object.entries(el.getAttributes())) {
    if (name === "$id") continue;
    const a = rule.attributes.get(name);
    if (!a) return `<${tag}> has no attribute "${name}" in the schema`;
    const t = jsonType(value);
    if (!a.types.includes(t)) return `<${tag}> attribute "${name}" must be ${a.types.join(" or ")} (got ${t})`;
    if (a.enum && value !== null && !a.enum.includes(value)) return `<${tag}> attribute "${name}" must be one of ${JSON.stringify(a.enum)}`;
  }
  if (shallow) return null;
  if (depth > 256) return "the document is nested too deeply";
  for (const child of el.toArray()) {
    if (child instanceof Y.XmlText) {
      if (rule.children !== null || tag === "text") continue;
      return `<${tag}> may not hold text`;
    }
    if (!(child instanceof Y.XmlElement)) return `<${tag}> holds something that is not an element`;
    if (!rule.children || !rule.children.has(child.nodeName)) return `<${child.nodeName}> is not allowed in <${tag}>`;
    const p = checkElement(s, child, child.nodeName, false, depth + 1);
    if (p) return p;
  }
  return null;
}

/**
 * Check what a transaction changed: the elements whose attributes changed (shallow), and the children of elements
 * whose children changed (each child fully, new ones with their whole subtree). Returns the first problem or null.
 */
export function checkTransaction(s: ParsedSchema, doc: Y.Doc, tr: Y.Transaction): string | null {
  const root = rootOf(doc);
  for (const [type, keys] of tr.changed) {
    if (!(type instanceof Y.XmlElement)) {
      if (type instanceof Y.XmlText) continue;
      if (type === (root as unknown)) continue;
      return "an update changed something that is not part of the document's XML tree";
    }
    const tag = type === root ? s.root : type.nodeName;
    const childrenChanged = keys.has(null);
    const p = checkElement(s, type, tag, !childrenChanged);
    if (p) return p;
  }
  // Only "xml" may exist at the top level.
  for (const name of doc.share.keys()) if (name !== "xml") return `an update created the top-level type "${name}"; a document only has "xml"`;
  return null;
}

/**
 * `initial_json` (and sync.create's `json`) as elements of the document, as the client's JSON form of a MeshDocument:
 * `{<root tag>: {<attribute>: value, …, <child property>: [{<tag>: {…}}, …]}}`; every element gets a `$id`.
 */
export function applyJson(s: ParsedSchema, doc: Y.Doc, json: Record<string, unknown>): void {
  const body = isObj(json[s.root]) ? (json[s.root] as Record<string, unknown>) : json;
  doc.transact(() => fill(s, rootOf(doc), s.root, body, 0));
}

function fill(s: ParsedSchema, el: Y.XmlElement, tag: string, body: Record<string, unknown>, depth: number) {
  const rule = s.elements.get(tag);
  if (!rule) throw new SchemaError(`element <${tag}> is not in the schema`);
  if (depth > 64) throw new SchemaError("initial_json is nested too deeply");
  for (const [k, v] of Object.entries(body)) {
    if (k === rule.childProperty) {
      if (!Array.isArray(v)) throw new SchemaError(`<${tag}>.${k} must be an array of elements`);
      for (const item of v) {
        if (!isObj(item) || Object.keys(item).length !== 1) throw new SchemaError(`<${tag}>.${k}: each item must be {<tag>: {…}}`);
        const [childTag, childBody] = Object.entries(item)[0];
        if (!rule.children!.has(childTag)) throw new SchemaError(`<${childTag}> is not allowed in <${tag}>`);
        const child = new Y.XmlElement(childTag);
        el.push([child]);
        child.setAttribute("$id", randomUUID());
        fill(s, child, childTag, isObj(childBody) ? childBody : {}, depth + 1);
      }
    } else {
      const a = rule.attributes.get(k);
      if (!a) throw new SchemaError(`<${tag}> has no attribute "${k}" in the schema`);
      if (!a.types.includes(jsonType(v))) throw new SchemaError(`<${tag}> attribute "${k}" must be ${a.types.join(" or ")}`);
      el.setAttribute(k, v as string);
    }
  }
}
