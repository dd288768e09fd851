import { randomUUID } from "node:crypto";
import fc from "fast-check";

/**
 * Reading /openapi.json in tests: its operations, a small valid value for a schema (the authorization matrix), and
 * fast-check arbitraries of valid values (the fuzz suite). Every route is covered as soon as it is in the document.
 */
export type Schema = Record<string, any>;

/** One operation; `access` is its declared `x-access`. */
export interface Operation<A extends string = string> {
  method: string;
  path: string;
  access: A;
  op: Schema;
}

/** Every operation of the document. */
export function operations<A extends string = string>(doc: Schema): Operation<A>[] {
  return Object.entries<Schema>(doc.paths).flatMap(([path, methods]) =>
    Object.entries<Schema>(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, access: op["x-access"] as A, op })),
  );
}

/** A schema with its $ref followed (component schemas by name). */
export function resolve(schema: Schema | undefined, doc: Schema, depth = 0): Schema | undefined {
  if (!schema?.$ref || depth > 8) return schema;
  return resolve(doc.components.schemas[String(schema.$ref).split("/").pop()!], doc, depth + 1);
}

/** A small valid value for a JSON schema (enough to get past request validation, so the gate decides). */
export function sample(schema: Schema | undefined, doc: Schema, depth = 0): unknown {
  if (!schema || depth > 8) return undefined;
  if (schema.$ref) return sample(doc.components.schemas[String(schema.$ref).split("/").pop()!], doc, depth + 1);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  if (schema.default !== undefined) return schema.default;
  for (const k of ["anyOf", "oneOf"]) if (schema[k]) return sample(schema[k].find((s: Schema) => s.type !== "null") ?? schema[k][0], doc, depth + 1);
  if (schema.allOf) return Object.assign({}, ...schema.allOf.map((s: Schema) => sample(s, doc, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type.find((t: string) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const k of schema.required ?? []) out[k] = sample(schema.properties?.[k], doc, depth + 1);
      return out;
    }
    case "array":
      return Array.from({ length: schema.minItems ?? 0 }, () => sample(schema.items, doc, depth + 1));
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return false;
    case "string":
      if (schema.format === "uuid") return randomUUID();
      if (schema.format === "email") return "matrix@example.com";
      return "x".repeat(Math.max(1, schema.minLength ?? 1));
    default:
      // untyped (any JSON): an object will do
      return schema.properties ? sample({ ...schema, type: "object" }, doc, depth) : {};
  }
}

/**
 * An arbitrary of values valid for a JSON schema, as far as the schema says (patterns through fc.stringMatching).
 * `named(name)` may supply an arbitrary for a property by its name (a real room name, a known id); `mix` wraps every
 * leaf so a caller can blend invalid values in.
 */
export function arbitraryFor(
  schema: Schema | undefined,
  doc: Schema,
  opts: { named?: (name: string) => fc.Arbitrary<unknown> | undefined; mix?: (a: fc.Arbitrary<unknown>, s: Schema) => fc.Arbitrary<unknown> } = {},
  depth = 0,
  name = "",
): fc.Arbitrary<unknown> {
  const mix = opts.mix ?? ((a) => a);
  const s = resolve(schema, doc);
  if (!s || depth > 6) return fc.constant(undefined);
  const byName = name ? opts.named?.(name) : undefined;
  if (byName) return mix(byName, s);
  if (s.const !== undefined) return mix(fc.constant(s.const), s);
  if (s.enum) return mix(fc.constantFrom(...(s.enum as unknown[])), s);
  for (const k of ["anyOf", "oneOf"]) if (s[k]) return fc.oneof(...(s[k] as Schema[]).map((x) => arbitraryFor(x, doc, opts, depth + 1, name)));
  if (s.allOf) return fc.tuple(...(s.allOf as Schema[]).map((x) => arbitraryFor(x, doc, opts, depth + 1))).map((parts) => Object.assign({}, ...parts));
  const type = Array.isArray(s.type) ? s.type.find((t: string) => t !== "null") : s.type;
  switch (type) {
    case "object": {
      const props: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries<Schema>(s.properties ?? {})) props[k] = arbitraryFor(v, doc, opts, depth + 1, k);
      const required = (s.required ?? []) as string[];
      const rec = Object.keys(props).length ? fc.record(props, { requiredKeys: required.filter((k) => k in props) }) : fc.constant({});
      if (s.additionalProperties && !Object.keys(props).length) {
        const values = typeof s.additionalProperties === "object" ? arbitraryFor(s.additionalProperties, doc, opts, depth + 1) : fc.jsonValue({ maxDepth: 3 });
        return fc.dictionary(fc.string({ maxLength: 12 }), values, { maxKeys: 5 });
      }
      return rec;
    }
    case "array":
      return fc.array(arbitraryFor(s.items, doc, opts, depth + 1), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 3, 3) });
    case "integer":
      return mix(fc.integer({ min: s.minimum ?? -1000, max: s.maximum ?? Math.max(1000, (s.minimum ?? 0) + 1000) }), s);
    case "number":
      return mix(fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true }), s);
    case "boolean":
      return mix(fc.boolean(), s);
    case "string": {
      const len = { minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 200) };
      let a: fc.Arbitrary<string>;
      if (s.format === "uuid") a = fc.uuid();
      else if (s.format === "email") a = fc.emailAddress();
      else if (s.format === "date-time") a = fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      else if (s.format === "uri") a = fc.webUrl();
      else if (s.pattern) {
        try {
          a = fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length >= len.minLength && x.length <= (s.maxLength ?? Infinity));
        } catch {
          a = fc.string(len);
        }
      } else a = fc.string(len);
      return mix(a, s);
    }
    default:
      return s.properties ? arbitraryFor({ ...s, type: "object" }, doc, opts, depth, name) : mix(fc.jsonValue({ maxDepth: 3 }), s);
  }
}
