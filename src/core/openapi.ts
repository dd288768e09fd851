/**
 * Post-processing of the OpenAPI document @fastify/swagger builds, so that it is valid OpenAPI 3.1:
 * - Paths that differ only in a parameter's name (`rooms/{room_name}` for GET, `rooms/{room_id}` for PUT and DELETE:
 *   the wire contract's paths) are one path in OpenAPI's eyes. They are merged under one name (the names' common
 *   stem, `{room}`), each operation keeping its own description of what the segment holds.
 * - An operation without documented responses (the OAuth endpoints, which oidc-provider answers) gets a `default` one.
 * - `servers` names this server's public URL (MESHAGENT_PUBLIC_URL).
 * - A nullable field (`anyOf: [T, {type: "null"}]`) carries T's description itself, where tools look for it.
 */

type Json = Record<string, unknown>;
type Parameter = { in?: string; name?: string; description?: string };
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const blank = (path: string) => path.replace(/\{[^}]+\}/g, "{}");
const names = (path: string) => [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);

/** One name for differently named parameters in the same place: their common stem ("room_name", "room_id" → "room"). */
function mergedName(list: string[]): string {
  let prefix = list[0];
  for (const n of list) while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.replace(/[_-]+$/, "");
  return prefix || list.join("_or_");
}

/** Lift the description of `anyOf: [T, null]` members onto the union (in place). */
function liftNullableDescriptions(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(liftNullableDescriptions);
  if (!node || typeof node !== "object") return;
  const o = node as Json;
  const any = o.anyOf as Json[] | undefined;
  if (Array.isArray(any) && any.length === 2 && o.description === undefined) {
    const inner = any.find((s) => s && s.type !== "null");
    if (any.some((s) => s && s.type === "null") && typeof inner?.description === "string") o.description = inner.description;
  }
  for (const v of Object.values(o)) liftNullableDescriptions(v);
}

export function normalizeOpenApi<T extends Json>(doc: T, publicUrl: string): T {
  doc = structuredClone(doc);
  liftNullableDescriptions(doc);
  const paths = (doc.paths ?? {}) as Record<string, Json>;
  const groups = new Map<string, string[]>();
  for (const p of Object.keys(paths)) groups.set(blank(p), [...(groups.get(blank(p)) ?? []), p]);
  const out: Record<string, Json> = {};
  for (const p of Object.keys(paths)) {
    const group = groups.get(blank(p))!;
    if (group.length === 1) {
      out[p] = paths[p];
      continue;
    }
    // The merged path's parameter names, position by position.
    const per = group.map(names);
    const merged = per[0].map((_, i) => {
      const at = [...new Set(per.map((n) => n[i]))];
      return at.length === 1 ? at[0] : mergedName(at);
    });
    let i = 0;
    const target = p.replace(/\{[^}]+\}/g, () => `{${merged[i++]}}`);
    const own = names(p);
    const item = (out[target] ??= {});
    for (const [k, v] of Object.entries(paths[p])) {
      if (!METHODS.includes(k)) {
        item[k] ??= v;
        continue;
      }
      const op = { ...(v as Json) };
      op.parameters = ((op.parameters ?? []) as Parameter[]).map((param) => {
        const pos = param.in === "path" ? own.indexOf(param.name ?? "") : -1;
        if (pos < 0 || own[pos] === merged[pos]) return param;
        const was = own[pos];
        return { ...param, name: merged[pos], description: `${param.description ? `${param.description} ` : ""}(here: the ${was.replace(/_/g, " ")})`.trim() };
      });
      item[k] = op;
    }
  }
  for (const item of Object.values(out))
    for (const m of METHODS) {
      const op = item[m] as Json | undefined;
      if (op && (!op.responses || Object.keys(op.responses as Json).length === 0))
        op.responses = { default: { description: "the endpoint's own answer, as its description says" } };
    }
  return { ...doc, servers: [{ url: publicUrl, description: "this server (MESHAGENT_PUBLIC_URL)" }], paths: out };
}
