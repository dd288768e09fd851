import { badRequest } from "../core/errors.js";
import { isObj } from "../core/json.js";

/**
 * ApiScope (wire-contract §7.3): validation of the REST form and the compact form that goes into JWTs.
 *
 * REST bodies carry three forms (Python's full dump with every default and null, Python's compact dump, TS `toJSON`),
 * so validation accepts all of them: a missing or null section means "no access", nulls inside a section mean the
 * default, unknown keys inside a section are kept (the clients' models ignore them). Unknown top-level sections are
 * refused, because a typo there would silently grant or deny a whole API surface.
 */
export type Scope = Record<string, unknown>;

type Check = (v: unknown, path: string) => void;

const bool: Check = (v, path) => {
  if (v !== null && v !== undefined && typeof v !== "boolean") throw badRequest(`${path} must be a boolean or null`);
};
const strList: Check = (v, path) => {
  if (v === null || v === undefined) return;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw badRequest(`${path} must be a list of strings or null`);
};
const str =
  (required: boolean): Check =>
  (v, path) => {
    if (v === undefined || v === null) {
      if (required) throw badRequest(`${path} is required`);
      return;
    }
    if (typeof v !== "string") throw badRequest(`${path} must be a string`);
  };
const obj =
  (fields: Record<string, Check>): Check =>
  (v, path) => {
    if (v === null || v === undefined) return;
    if (!isObj(v)) throw badRequest(`${path} must be an object or null`);
    for (const [k, check] of Object.entries(fields)) check(v[k], `${path}.${k}`);
  };
const required =
  (c: Check): Check =>
  (v, path) => {
    if (v === null || v === undefined) throw badRequest(`${path} is required`);
    c(v, path);
  };
const listOf =
  (item: Check): Check =>
  (v, path) => {
    if (v === null || v === undefined) return;
    if (!Array.isArray(v)) throw badRequest(`${path} must be a list or null`);
    v.forEach((x, i) => required(item)(x, `${path}[${i}]`));
  };

const pathGrant = obj({ path: str(true), read_only: bool });
const MEMORY_PERMS = ["create", "drop", "inspect", "query", "upsert", "ingest", "recall", "optimize"] as const;

const SECTIONS: Record<string, Check> = {
  livekit: obj({ breakout_rooms: strList }),
  queues: obj({ send: strList, receive: strList, list: bool }),
  messaging: obj({ broadcast: bool, list: bool, send: bool }),
  dataset: obj({
    tables: listOf(obj({ name: str(true), namespace: strList, write: bool, read: bool, alter: bool })),
    list_tables: bool,
  }),
  memory: obj({
    list: bool,
    memories: listOf(obj({ name: str(true), namespace: strList, permissions: obj(Object.fromEntries(MEMORY_PERMS.map((p) => [p, bool]))) })),
  }),
  sync: obj({ paths: listOf(pathGrant) }),
  storage: obj({ paths: listOf(pathGrant) }),
  containers: obj({
    logs: bool,
    pull: strList,
    run: strList,
    registry: obj({ list: strList, pull: strList, run: strList, write: strList }),
    use_containers: bool,
  }),
  developer: obj({ logs: bool }),
  agents: obj({
    register_agent: bool,
    register_public_toolkit: bool,
    register_private_toolkit: bool,
    call: bool,
    use_agents: bool,
    use_tools: bool,
    allowed_toolkits: strList,
  }),
  llm: obj({ models: strList }),
  admin: obj({ config: bool }),
  secrets: obj({ request_oauth_token: listOf(obj({ endpoint: str(true), client_id: str(true) })) }),
  tunnels: obj({ ports: strList }),
  services: obj({ list: bool }),
};
/** Input aliases of `dataset` (Python's model accepts them; the JWT form always says `dataset`). */
const DATASET_ALIASES = ["database", "datasets"];
export const SCOPE_SECTIONS = Object.keys(SECTIONS);

/** Validate an ApiScope as the REST API receives it; throws 400 naming the offending path. Returns it unchanged. */
export function validateScope(v: unknown, path = "permissions"): Scope {
  if (!isObj(v)) throw badRequest(`${path} must be an ApiScope object`);
  for (const [k, val] of Object.entries(v)) {
    const check = SECTIONS[k] ?? (DATASET_ALIASES.includes(k) ? SECTIONS.dataset : undefined);
    if (!check) throw badRequest(`${path}.${k} is not an ApiScope section (known: ${SCOPE_SECTIONS.join(", ")})`);
    check(val, `${path}.${k}`);
  }
  return v;
}

// ---- compact form: what Python's to_json() puts in the `api` grant (exclude_none + exclude_defaults) ----

const DEFAULT_TRUE: Record<string, string[]> = {
  queues: ["list"],
  messaging: ["broadcast", "list", "send"],
  dataset: ["list_tables"],
  memory: ["list"],
  containers: ["logs", "use_containers"],
  developer: ["logs"],
  agents: ["register_agent", "register_public_toolkit", "register_private_toolkit", "call", "use_agents", "use_tools"],
  admin: ["config"],
  services: ["list"],
};
const LISTS: Record<string, string[]> = {
  livekit: ["breakout_rooms"],
  queues: ["send", "receive"],
  containers: ["pull", "run"],
  agents: ["allowed_toolkits"],
  llm: ["models"],
  tunnels: ["ports"],
};

function compactBools(src: Record<string, unknown>, trueByDefault: string[], falseByDefault: string[] = []) {
  const out: Record<string, unknown> = {};
  for (const k of trueByDefault) if (src[k] === false) out[k] = false;
  for (const k of falseByDefault) if (src[k] === true) out[k] = true;
  return out;
}
function nn(v: unknown) {
  return v !== null && v !== undefined;
}

function compactSection(name: string, s: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of LISTS[name] ?? []) if (nn(s[k])) out[k] = s[k];
  Object.assign(out, compactBools(s, DEFAULT_TRUE[name] ?? []));
  switch (name) {
    case "dataset":
      if (Array.isArray(s.tables))
        out.tables = s.tables.map((t: Record<string, unknown>) => ({
          name: t.name,
          ...(nn(t.namespace) ? { namespace: t.namespace } : {}),
          ...compactBools(t, ["read"], ["write", "alter"]),
        }));
      break;
    case "memory":
      if (Array.isArray(s.memories))
        out.memories = s.memories.map((m: Record<string, unknown>) => {
          const perms = isObj(m.permissions) ? compactBools(m.permissions, [...MEMORY_PERMS]) : {};
          return { name: m.name, ...(nn(m.namespace) ? { namespace: m.namespace } : {}), ...(Object.keys(perms).length ? { permissions: perms } : {}) };
        });
      break;
    case "sync":
    case "storage":
      if (Array.isArray(s.paths)) out.paths = s.paths.map((p: Record<string, unknown>) => ({ path: p.path, ...compactBools(p, [], ["read_only"]) }));
      break;
    case "containers":
      if (isObj(s.registry)) {
        const r: Record<string, unknown> = {};
        for (const k of ["list", "pull", "run", "write"]) if (nn(s.registry[k])) r[k] = s.registry[k];
        out.registry = r;
      }
      break;
    case "secrets":
      if (Array.isArray(s.request_oauth_token))
        out.request_oauth_token = s.request_oauth_token.map((e: Record<string, unknown>) => ({ endpoint: e.endpoint, client_id: e.client_id }));
      break;
  }
  return out;
}

/** The `api` grant of a JWT: present sections only, without nulls or defaults, `dataset` under its canonical name. */
export function compactScope(scope: Scope): Scope {
  const out: Scope = {};
  for (const name of SCOPE_SECTIONS) {
    const raw = name === "dataset" ? (scope.dataset ?? scope.database ?? scope.datasets) : scope[name];
    if (isObj(raw)) out[name] = compactSection(name, raw);
  }
  return out;
}

/** ApiScope.full(): every section with its defaults. What project admins, developers and API keys get. */
export const fullScope = (): Scope => Object.fromEntries(SCOPE_SECTIONS.map((s) => [s, {}]));

/** ApiScope.user_default(): every section but llm, admin and tunnels. */
export const userDefaultScope = (): Scope => Object.fromEntries(SCOPE_SECTIONS.filter((s) => !["llm", "admin", "tunnels"].includes(s)).map((s) => [s, {}]));

/** ApiScope.agentDefault() (tunnels off): every section but admin and tunnels. What room.call tokens carry (src/calls). */
export const agentDefaultScope = (): Scope => Object.fromEntries(SCOPE_SECTIONS.filter((s) => !["admin", "tunnels"].includes(s)).map((s) => [s, {}]));
