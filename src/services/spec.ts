import { badRequest } from "../core/errors.js";
import { arr, bool, check, enm, int, nonEmptyStr, obj, oneOf, str, tagged, type CheckOptions, type Schema } from "../core/strict.js";

/**
 * ServiceSpec v1 and ServiceTemplateSpec v1 (wire-contract §7.4), the models of meshagent-api 0.39.9
 * `meshagent/api/specs/service.py`. Every model is strict (an unknown key anywhere is a 400 naming its path), `null`
 * counts as absent, and a parsed spec is what was sent, nulls removed: no defaults are filled in, so a client gets
 * back exactly what it sent. The pydantic defaults are noted on the types.
 */

// ---------------------------------------------------------------------------------------------------------------
// Types

/** ApiScope (wire-contract §7.3): any JSON object; its sections are the room server's business. */
export type ApiScope = Record<string, unknown>;

export interface SecretValue {
  identity: string;
  id: string;
}
export interface TokenValue {
  identity: string;
  api?: ApiScope;
  role?: "user" | "agent" | "tool";
}
export interface EnvironmentVariable {
  name: string;
  value?: string;
  token?: TokenValue;
  secret?: SecretValue;
}
export interface RoomStorageMountSpec {
  path: string;
  subpath?: string;
  /** default false */
  read_only?: boolean;
}
export interface ProjectStorageMountSpec {
  path: string;
  subpath?: string;
  /** default true */
  read_only?: boolean;
}
export interface ImageStorageMountSpec {
  image: string;
  path: string;
  subpath?: string;
  /** default true */
  read_only?: boolean;
}
export interface FileStorageMountSpec {
  path: string;
  text: string;
  /** default true */
  read_only?: boolean;
}
export interface EmptyDirMountSpec {
  path: string;
  /** default false */
  read_only?: boolean;
}
export interface ConfigMountSpec {
  /** default "/var/run/meshagent" */
  path?: string;
}
export interface ContainerMountSpec {
  room?: RoomStorageMountSpec[];
  project?: ProjectStorageMountSpec[];
  images?: ImageStorageMountSpec[];
  files?: FileStorageMountSpec[];
  empty_dirs?: EmptyDirMountSpec[];
  configs?: ConfigMountSpec[];
}
export interface ContainerSpec {
  image: string;
  command?: string;
  working_dir?: string;
  environment?: EnvironmentVariable[];
  /** ids of secrets holding environment variables */
  secrets?: string[];
  /** the id of an image pull secret */
  pull_secret?: string;
  storage?: ContainerMountSpec;
  on_demand?: boolean;
  writable_root_fs?: boolean;
  /** default true */
  private?: boolean;
}
export interface ServiceMetadata {
  name: string;
  description?: string;
  repo?: string;
  icon?: string;
  annotations?: Record<string, string>;
}
export interface PromptTemplate {
  name: string;
  description?: string;
  prompt: string;
  annotations?: Record<string, string>;
}
export interface EmailChannel {
  address: string;
  /** default true */
  private?: boolean;
  annotations?: Record<string, string>;
}
export interface MessagingChannel {
  /** default "meshagent.agent-message.v1" */
  protocol?: string;
  prompts?: PromptTemplate[];
  annotations?: Record<string, string>;
}
export interface QueueChannel {
  queue: string;
  threading_mode?: "default-new";
  message_schema?: Record<string, unknown>;
  annotations?: Record<string, string>;
}
export interface ToolkitChannel {
  name: string;
  annotations?: Record<string, string>;
}
export interface ChannelsSpec {
  email?: EmailChannel[];
  messaging?: MessagingChannel[];
  queue?: QueueChannel[];
  toolkit?: ToolkitChannel[];
}
export interface EmailSpec {
  /** not blank */
  address: string;
  /** default false */
  public?: boolean;
}
export type AgentInputContent = { type: "text"; text: string } | { type: "file"; url: string };
export interface HeartbeatSpec {
  /** not blank */
  queue: string;
  thread_id?: string;
  /** required, not empty */
  prompt: AgentInputContent[];
  /** > 0 */
  minutes: number;
}
export interface AgentSpec {
  name: string;
  description?: string;
  annotations?: Record<string, string>;
  channels?: ChannelsSpec;
  email?: EmailSpec;
  heartbeat?: HeartbeatSpec;
}
export interface OAuthClientConfig {
  client_id?: string;
  client_secret?: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  no_pkce?: boolean;
  scopes?: string[];
}
export interface AllowedMcpToolFilter {
  tool_names?: string[];
  read_only?: boolean;
}
export interface MCPEndpointSpec {
  label: string;
  description?: string;
  allowed_tools?: AllowedMcpToolFilter[];
  headers?: Record<string, string>;
  require_approval?: "always" | "never";
  oauth?: OAuthClientConfig;
  openai_connector_id?: string;
}
export interface MeshagentEndpointSpec {
  identity: string;
  api?: ApiScope;
}
export interface EndpointSpec {
  path: string;
  meshagent?: MeshagentEndpointSpec;
  mcp?: MCPEndpointSpec;
  annotations?: Record<string, string>;
}
export interface PortSpec {
  /** "*" or an integer > 0 other than 8078; default "*" */
  num?: "*" | number;
  /** default "http" */
  type?: "http" | "tcp";
  /** default [] */
  endpoints?: EndpointSpec[];
  liveness?: string;
  published?: boolean;
  public?: boolean;
  annotations?: Record<string, string>;
}
export interface ServiceFileSpec {
  path: string;
  text: string;
}
export interface ExternalServiceSpec {
  url?: string;
}
export interface ServiceSpec {
  version: "v1";
  kind: "Service";
  id?: string;
  metadata: ServiceMetadata;
  agents?: AgentSpec[];
  /** default [] */
  ports?: PortSpec[];
  files?: ServiceFileSpec[];
  container?: ContainerSpec;
  external?: ExternalServiceSpec;
}

export interface ServiceTemplateVariable {
  name: string;
  title?: string;
  description?: string;
  /** default false; an obscure value never appears in an error message */
  obscure?: boolean;
  enum?: string[];
  /** default false: the variable is required */
  optional?: boolean;
  type?: "email" | "route";
  annotations?: Record<string, string>;
}
/** ContainerSpec without secrets/pull_secret, the image optional. */
export interface ContainerTemplateSpec {
  environment?: EnvironmentVariable[];
  image?: string;
  command?: string;
  working_dir?: string;
  storage?: ContainerMountSpec;
  on_demand?: boolean;
  writable_root_fs?: boolean;
  /** default true */
  private?: boolean;
}
export interface ServiceTemplateSpec {
  version: "v1";
  kind: "ServiceTemplate";
  metadata: ServiceMetadata;
  agents?: AgentSpec[];
  variables?: ServiceTemplateVariable[];
  ports?: PortSpec[];
  files?: ServiceFileSpec[];
  container?: ContainerTemplateSpec;
  external?: { url: string };
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas

/** Reserved for the room's own API inside the room (meshagent-api `room_ports.RESERVED_ROOM_SERVICE_PORTS`). */
export const RESERVED_PORTS: readonly number[] = [8078];

export const MAX_SPEC_STRING = 64 * 1024;
/** Annotations (the template annotations carry the whole template), file texts and prompts. */
export const MAX_SPEC_TEXT = 1024 * 1024;
export const MAX_SPEC_ITEMS = 1000;
export const MAX_SPEC_DEPTH = 32;

/** The bounds every service spec and template is checked with; the models themselves have none. */
export const SPEC_LIMITS: CheckOptions = {
  maxString: MAX_SPEC_STRING,
  maxItems: MAX_SPEC_ITEMS,
  maxDepth: MAX_SPEC_DEPTH,
  safeKeys: true,
};

const text: Schema = { t: "string", max: MAX_SPEC_TEXT };
const annotations: Schema = { t: "strings", max: MAX_SPEC_TEXT };
/** ApiScope: an open object (any keys). */
const ApiScopeSchema: Schema = { t: "object", fields: {}, open: true };

const EnvironmentVariableSchema = obj(
  {
    name: str,
    value: str,
    token: obj({ identity: str, api: ApiScopeSchema, role: enm("user", "agent", "tool") }, ["identity"]),
    secret: obj({ identity: str, id: str }, ["identity", "id"]),
  },
  ["name"],
);
/** ContainerMountSpec (also the `mounts` of the room `containers` toolkit's run). */
export const ContainerMountSchema = obj({
  room: arr(obj({ path: str, subpath: str, read_only: bool }, ["path"])),
  project: arr(obj({ path: str, subpath: str, read_only: bool }, ["path"])),
  images: arr(obj({ image: str, path: str, subpath: str, read_only: bool }, ["image", "path"])),
  files: arr(obj({ path: str, text, read_only: bool }, ["path", "text"])),
  empty_dirs: arr(obj({ path: str, read_only: bool }, ["path"])),
  configs: arr(obj({ path: str })),
});

/** ContainerSpec (0.39.9). Also the container target of a ScheduledTaskSpec (src/scheduler/spec.ts). */
export const ContainerSpecSchema = obj(
  {
    image: str,
    command: str,
    working_dir: str,
    environment: arr(EnvironmentVariableSchema),
    secrets: arr(str),
    pull_secret: str,
    storage: ContainerMountSchema,
    on_demand: bool,
    writable_root_fs: bool,
    private: bool,
  },
  ["image"],
);

const MetadataSchema = obj({ name: str, description: str, repo: str, icon: str, annotations }, ["name"]);

const AgentInputContentSchema = tagged("type", {
  text: obj({ type: enm("text"), text }, ["type", "text"]),
  file: obj({ type: enm("file"), url: str }, ["type", "url"]),
});
const ChannelsSchema = obj({
  email: arr(obj({ annotations, address: str, private: bool }, ["address"])),
  messaging: arr(
    obj({
      annotations,
      protocol: str,
      prompts: arr(obj({ name: str, description: str, prompt: text, annotations }, ["name", "prompt"])),
    }),
  ),
  queue: arr(obj({ annotations, queue: str, threading_mode: enm("default-new"), message_schema: { t: "json" } }, ["queue"])),
  toolkit: arr(obj({ annotations, name: str }, ["name"])),
});
const AgentSchema = obj(
  {
    name: str,
    description: str,
    annotations,
    channels: ChannelsSchema,
    email: obj({ address: nonEmptyStr, public: bool }, ["address"]),
    heartbeat: obj({ queue: nonEmptyStr, thread_id: str, prompt: { t: "array", of: AgentInputContentSchema, nonEmpty: true }, minutes: int(1) }, [
      "queue",
      "prompt",
      "minutes",
    ]),
  },
  ["name"],
);

const OAuthClientConfigSchema = obj({
  client_id: str,
  client_secret: str,
  authorization_endpoint: str,
  token_endpoint: str,
  no_pkce: bool,
  scopes: arr(str),
});
const EndpointSchema = obj(
  {
    path: str,
    meshagent: obj({ identity: str, api: ApiScopeSchema }, ["identity"]),
    mcp: obj(
      {
        label: str,
        description: str,
        allowed_tools: arr(obj({ tool_names: arr(str), read_only: bool })),
        headers: { t: "strings" },
        require_approval: enm("always", "never"),
        oauth: OAuthClientConfigSchema,
        openai_connector_id: str,
      },
      ["label"],
    ),
    annotations,
  },
  ["path"],
);
const PortNumSchema: Schema = {
  ...oneOf('"*" or an integer ≥ 1', enm("*"), int(1)),
  refine: (v, path) => {
    if (typeof v === "number" && RESERVED_PORTS.includes(v))
      throw badRequest(
        `${path} must not be ${v}: service port ${v} is reserved for MeshAgent room infrastructure; reserved ports: ${RESERVED_PORTS.join(", ")}`,
      );
  },
};
const PortSchema = obj({
  num: PortNumSchema,
  type: enm("http", "tcp"),
  endpoints: arr(EndpointSchema),
  liveness: str,
  published: bool,
  public: bool,
  annotations,
});
const FileSchema = obj({ path: str, text }, ["path", "text"]);

export const ServiceSpecSchema = obj(
  {
    version: enm("v1"),
    kind: enm("Service"),
    id: str,
    metadata: MetadataSchema,
    agents: arr(AgentSchema),
    ports: arr(PortSchema),
    files: arr(FileSchema),
    container: ContainerSpecSchema,
    external: obj({ url: str }),
  },
  ["version", "kind", "metadata"],
);

export const ServiceTemplateVariableSchema = obj(
  {
    name: str,
    title: str,
    description: str,
    obscure: bool,
    enum: arr(str),
    optional: bool,
    type: enm("email", "route"),
    annotations,
  },
  ["name"],
);

const ContainerTemplateSchema = obj({
  environment: arr(EnvironmentVariableSchema),
  image: str,
  command: str,
  working_dir: str,
  storage: ContainerMountSchema,
  on_demand: bool,
  writable_root_fs: bool,
  private: bool,
});

export const ServiceTemplateSpecSchema = obj(
  {
    version: enm("v1"),
    kind: enm("ServiceTemplate"),
    metadata: MetadataSchema,
    agents: arr(AgentSchema),
    variables: arr(ServiceTemplateVariableSchema),
    ports: arr(PortSchema),
    files: arr(FileSchema),
    container: ContainerTemplateSchema,
    external: obj({ url: str }, ["url"]),
  },
  ["version", "kind", "metadata"],
);

// ---------------------------------------------------------------------------------------------------------------
// Parsing

/**
 * Validate a ServiceSpec (`id` allowed: the caller decides what to do with it). Returns it as sent, nulls removed.
 * `ports: []` is fine; port 8078 is refused.
 */
export function parseServiceSpec(raw: unknown, root = "service"): ServiceSpec {
  return check(ServiceSpecSchema, raw, root, SPEC_LIMITS) as ServiceSpec;
}

/**
 * Validate a ServiceTemplateSpec. `lax` accepts what pydantic's lax mode coerces (an integer or boolean written as a
 * string): a rendered template's `!template` values are always strings.
 */
export function parseServiceTemplateSpec(raw: unknown, root = "template", opts: { lax?: boolean } = {}): ServiceTemplateSpec {
  return check(ServiceTemplateSpecSchema, raw, root, { ...SPEC_LIMITS, lax: opts.lax }) as ServiceTemplateSpec;
}

/** Copy the keys of `src` that are set, in the order given (the Python model's field order). */
function pick<T extends object>(src: T, keys: readonly (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const k of keys) if (src[k] !== undefined) out[k] = src[k];
  return out;
}

/**
 * `ServiceTemplateSpec.to_service_spec()`: metadata (annotations always present), agents, files, ports and external
 * are copied; the container maps across with its environment (always a list), storage and `private` (default
 * true). The image is required here, as ContainerSpec requires it.
 */
export function templateToServiceSpec(t: ServiceTemplateSpec): ServiceSpec {
  const spec: ServiceSpec = {
    version: t.version,
    kind: "Service",
    metadata: { ...pick(t.metadata, ["name", "description", "repo", "icon"]), annotations: { ...(t.metadata.annotations ?? {}) } } as ServiceMetadata,
  };
  if (t.agents !== undefined) spec.agents = t.agents.map((a) => pick(a, ["name", "description", "annotations", "channels", "email", "heartbeat"]) as AgentSpec);
  if (t.ports !== undefined) spec.ports = t.ports;
  if (t.files !== undefined) spec.files = t.files;
  if (t.container !== undefined) {
    const c = t.container;
    if (c.image === undefined) throw badRequest("template.container.image is required (a service's container needs an image)");
    spec.container = {
      image: c.image,
      ...pick(c, ["command", "working_dir"]),
      environment: (c.environment ?? []).map((e) => pick(e, ["name", "value", "token", "secret"]) as EnvironmentVariable),
      ...(c.storage !== undefined ? { storage: pick(c.storage, ["room", "project", "images", "files", "empty_dirs", "configs"]) } : {}),
      ...pick(c, ["on_demand", "writable_root_fs"]),
      private: c.private ?? true,
    };
  }
  if (t.external !== undefined) spec.external = { url: t.external.url };
  return spec;
}

/**
 * Every secret id the spec references, with where: `container.secrets[i]`, `container.pull_secret` and
 * `container.environment[i].secret.id`.
 */
export function serviceSecretRefs(spec: ServiceSpec): { id: string; path: string }[] {
  const c = spec.container;
  if (!c) return [];
  const refs: { id: string; path: string }[] = [];
  c.secrets?.forEach((id, i) => refs.push({ id, path: `container.secrets[${i}]` }));
  if (c.pull_secret !== undefined) refs.push({ id: c.pull_secret, path: "container.pull_secret" });
  c.environment?.forEach((e, i) => {
    if (e.secret) refs.push({ id: e.secret.id, path: `container.environment[${i}].secret.id` });
  });
  return refs;
}
