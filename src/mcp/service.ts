import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import type { Implementation } from "@modelcontextprotocol/sdk/types.js";

/** The MCP SDK, loaded with the first discovery (it is not needed to start the server, and takes ~130 ms to load). */
type Sdk = typeof import("@modelcontextprotocol/sdk/client/index.js") &
  typeof import("@modelcontextprotocol/sdk/client/streamableHttp.js") &
  typeof import("@modelcontextprotocol/sdk/client/sse.js") &
  typeof import("@modelcontextprotocol/sdk/client/auth.js") &
  Pick<typeof import("@modelcontextprotocol/sdk/types.js"), "ErrorCode" | "McpError">;
let loaded: Sdk | undefined;
async function sdk(): Promise<Sdk> {
  if (!loaded) {
    const [client, streamable, sse, auth, types] = await Promise.all([
      import("@modelcontextprotocol/sdk/client/index.js"),
      import("@modelcontextprotocol/sdk/client/streamableHttp.js"),
      import("@modelcontextprotocol/sdk/client/sse.js"),
      import("@modelcontextprotocol/sdk/client/auth.js"),
      import("@modelcontextprotocol/sdk/types.js"),
    ]);
    loaded = { ...client, ...streamable, ...sse, ...auth, ErrorCode: types.ErrorCode, McpError: types.McpError };
  }
  return loaded;
}
import { ApiError, badRequest, clip } from "../core/errors.js";
import { checkUrlTarget, guardedFetch, parseHttpUrl, UnsafeUrlError } from "../core/ssrf.js";
import type { MCPEndpointSpec, ServiceTemplateVariable } from "../services/spec.js";

/** MCP discovery settings (MESHAGENT_MCP_* in ConfigSchema, src/config.ts). */
export interface McpConfig {
  /** Connect to private, loopback and link-local addresses (tests, trusted networks). */
  allowPrivate: boolean;
  /** Total time one discovery may take, connection, tool listing and OAuth metadata included. */
  timeoutMs: number;
}

export type DiscoverFormat = "service" | "template";

/** Most tools read from one server; a server with more gets no `allowed_tools` (the list would be incomplete). */
export const MAX_TOOLS = 1000;
/** Most `tools/list` pages followed. */
export const MAX_TOOL_PAGES = 100;
/** Largest body of one response of the MCP server or its OAuth metadata (an event stream counts as one). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Discoveries in flight at once in one process; the next is refused with 429. */
export const MAX_CONCURRENT = 16;
export const MAX_URL_LENGTH = 2048;
const MAX_TOOL_NAME = 128;
const MAX_DESCRIPTION = 1000;
const MAX_LABEL = 40;
const MAX_SCOPES = 100;
const USER_AGENT = "meshagent-server-mcp-discovery/0.1";
/** The CLI's upsert key (wire contract §7.4). */
const ANNOTATION_SERVICE_ID = "meshagent.service.id";

/* The §7.4 shapes this area emits (every key is a field of the strict models; absent instead of null). */
type McpEndpointSpec = MCPEndpointSpec;
export interface DiscoveredSpec {
  version: "v1";
  kind: "Service" | "ServiceTemplate";
  metadata: { name: string; description?: string; icon?: string; annotations?: Record<string, string> };
  variables?: ServiceTemplateVariable[];
  ports: { num: number; type: "http"; endpoints: { path: string; mcp: McpEndpointSpec }[] }[];
  external: { url: string };
}

type Phase = "streamable" | "sse" | "oauth";

/** One HTTP answer the discovery saw. */
interface Seen {
  phase: Phase;
  method: string;
  url: string;
  status: number;
  contentType: string;
  wwwAuthenticate?: string;
  location?: string;
  /** The start of a buffered body (event streams are not read here). */
  excerpt?: string;
}

/** One request that got no answer. */
interface Failure {
  phase: Phase;
  url: string;
  code?: string;
  message: string;
}

interface ToolList {
  names: string[];
  readOnly: Set<string>;
  /** False when the server had more tools than we read, or names we could not use: then no allowed_tools. */
  complete: boolean;
}

type AuthFinding =
  | {
      kind: "oauth";
      authorizationEndpoint: string;
      tokenEndpoint: string;
      scopes?: string[];
      /** The authorization server offers dynamic client registration (RFC 7591). */
      registration: boolean;
      noPkce: boolean;
      resourceName?: string;
    }
  | { kind: "token"; scheme: string; resourceName?: string };

interface Findings {
  url: URL;
  server?: Implementation;
  instructions?: string;
  /** Undefined: unknown (auth required, or listing failed). */
  tools?: ToolList;
  auth?: AuthFinding;
}

const mcpUnreachable = (why: string) => new ApiError(422, "mcp_unreachable", `could not reach an MCP server at the url: ${why}`);
const notMcpServer = (why: string) => new ApiError(422, "not_mcp_server", `the url does not answer as an MCP server: ${why}`);
const addressRefused = (why: string) =>
  new ApiError(400, "address_not_allowed", `${why}; private, loopback and link-local addresses are refused (MESHAGENT_MCP_ALLOW_PRIVATE=1 allows them)`);

/**
 * `POST /mcp/discover`: connect to an MCP server with the official SDK (Streamable HTTP, falling back to the legacy
 * HTTP+SSE transport as the SDK documents for backwards compatibility), read its name, description, instructions and
 * tools, or, when it wants authorization, its OAuth metadata (RFC 9728, then RFC 8414 / OpenID discovery), and
 * describe it as an external service spec. Every connection goes through a guarded fetch (the webhook SSRF rules),
 * the whole discovery has one time budget, and every connection is closed before the answer.
 */
export class McpDiscovery {
  private inFlight = 0;

  constructor(private readonly config: McpConfig) {}

  async discover(rawUrl: string, format: DiscoverFormat = "service"): Promise<DiscoveredSpec> {
    const url = this.parse(rawUrl);
    if (this.inFlight >= MAX_CONCURRENT) throw new ApiError(429, "too_many_discoveries", `at most ${MAX_CONCURRENT} MCP discoveries run at once; try again`);
    this.inFlight++;
    try {
      try {
        await checkUrlTarget(url, this.config.allowPrivate);
      } catch (e) {
        if (!(e instanceof UnsafeUrlError)) throw e;
        if (e.reason === "private") throw addressRefused(e.message);
        if (e.reason === "unresolvable") throw mcpUnreachable(`host ${url.hostname} does not resolve`);
        throw badRequest(e.message, "invalid_url");
      }
      return buildSpec(await this.probe(url), format);
    } finally {
      this.inFlight--;
    }
  }

  private parse(raw: string): URL {
    const s = raw.trim();
    if (s.length > MAX_URL_LENGTH) throw badRequest(`url is longer than ${MAX_URL_LENGTH} characters`, "invalid_url");
    let u: URL;
    try {
      u = parseHttpUrl(s);
    } catch (e) {
      if (e instanceof UnsafeUrlError) throw badRequest(e.message, "invalid_url");
      throw e;
    }
    // A service endpoint is an origin plus a path: a query or fragment would be lost on the way.
    if (u.search || u.hash || s.includes("?") || s.includes("#")) throw badRequest("url must not have a query or a fragment", "invalid_url");
    return u;
  }

  /** Connect, read, close: everything the answer is built from. Throws ApiError (4xx) when there is no MCP server. */
  private async probe(url: URL): Promise<Findings> {
    const { Client, StreamableHTTPClientTransport, SSEClientTransport, McpError, ErrorCode } = await sdk();
    const { timeoutMs, allowPrivate } = this.config;
    const budget = new AbortController();
    const deadline = Date.now() + timeoutMs;
    const timer = setTimeout(() => budget.abort(new DOMException(`MCP discovery took longer than ${timeoutMs} ms`, "AbortError")), timeoutMs);
    const left = () => Math.max(1, deadline - Date.now());
    const guarded = guardedFetch({ allowPrivate, maxBodyBytes: MAX_RESPONSE_BYTES, signal: budget.signal, defaultHeaders: { "user-agent": USER_AGENT } });
    const seen: Seen[] = [];
    const failures: Failure[] = [];
    let phase: Phase = "streamable";
    const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const at = phase;
      const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
      const target = input instanceof Request ? input.url : String(input);
      let res: Response;
      try {
        res = await guarded.fetch(input, init);
      } catch (e) {
        const err = e as Error & { code?: string; cause?: NodeJS.ErrnoException };
        if (err.name !== "AbortError") failures.push({ phase: at, url: target, code: err.cause?.code ?? err.code, message: err.cause?.message ?? err.message });
        throw e;
      }
      const contentType = res.headers.get("content-type") ?? "";
      const entry: Seen = {
        phase: at,
        method,
        url: res.url || target,
        status: res.status,
        contentType,
        wwwAuthenticate: res.headers.get("www-authenticate") ?? undefined,
        location: res.headers.get("location") ?? undefined,
      };
      // Buffered bodies are in memory already: keep their start to say what came back.
      if (res.body && mediaType(contentType) !== "text/event-stream") entry.excerpt = (await res.clone().text()).slice(0, 400);
      seen.push(entry);
      return res;
    };
    const clients: Client[] = [];
    const connect = async (transport: StreamableHTTPClientTransport | SSEClientTransport) => {
      const client = new Client({ name: "meshagent-server", version: "0.1.0" }, { capabilities: {} });
      clients.push(client);
      await client.connect(transport, { signal: budget.signal, timeout: left() });
      return client;
    };
    const timedOut = () => {
      const last = seen.at(-1);
      return mcpUnreachable(`no complete answer within ${timeoutMs} ms` + (last ? ` (last: ${describe(last)})` : ""));
    };
    const oauth = async (challenge: Seen): Promise<Findings> => {
      phase = "oauth";
      return { url, auth: await this.auth(url, challenge, fetchFn) };
    };

    const isTimeout = (e: unknown) => budget.signal.aborted || (e instanceof McpError && e.code === ErrorCode.RequestTimeout);
    try {
      // 1. Streamable HTTP (MCP 2025-03-26 and later).
      let first: Seen;
      try {
        const client = await connect(
          new StreamableHTTPClientTransport(url, {
            fetch: fetchFn,
            reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
          }),
        );
        return await this.read(url, client, budget.signal, left);
      } catch (e1) {
        if (isTimeout(e1)) throw timedOut();
        const post = seen.find((s) => s.phase === "streamable" && s.method === "POST");
        if (!post) throw noAnswer(failures, e1);
        first = post;
        if (isChallenge(first)) return await oauth(first);
        // A server error, a timeout or rate limit in front of the server: there may be an MCP server, it did not answer.
        if (first.status >= 500 || first.status === 408 || first.status === 429) throw mcpUnreachable(describe(first));
        // 2. The SDK's backwards-compatibility rule: a 4xx to the POST means "try the legacy HTTP+SSE transport".
        if (!(first.status >= 400 && first.status < 500)) throw notMcpServer(whatCameBack(first, e1));
      }
      phase = "sse";
      try {
        const client = await connect(new SSEClientTransport(url, { fetch: fetchFn }));
        return await this.read(url, client, budget.signal, left);
      } catch (e2) {
        if (isTimeout(e2)) throw timedOut();
        const get = seen.find((s) => s.phase === "sse" && s.method === "GET");
        if (get && isChallenge(get)) return await oauth(get);
        const large = failures.find((f) => f.code === "ETOOLARGE");
        if (large) throw notMcpServer(`an answer was larger than ${MAX_RESPONSE_BYTES} bytes`);
        const why = get?.status === 200 && e2 instanceof Error ? ` (${clip(e2.message, 100)})` : "";
        const legacy = get ? `; the legacy SSE transport's GET answered ${statusText(get)}${why}` : "";
        throw notMcpServer(whatCameBack(first) + legacy);
      }
    } finally {
      clearTimeout(timer);
      for (const c of clients) await c.close().catch(() => {});
      budget.abort(new DOMException("MCP discovery finished", "AbortError"));
      guarded.close();
    }
  }

  /** After a successful initialize: server info and tools. */
  private async read(url: URL, client: Client, signal: AbortSignal, left: () => number): Promise<Findings> {
    const findings: Findings = { url, server: client.getServerVersion(), instructions: client.getInstructions() };
    if (!client.getServerCapabilities()?.tools) {
      findings.tools = { names: [], readOnly: new Set(), complete: true };
      return findings;
    }
    // A server that cannot list its tools in the budget is still described, just without allowed_tools.
    findings.tools = await this.listTools(client, signal, left).catch(() => undefined);
    return findings;
  }

  private async listTools(client: Client, signal: AbortSignal, left: () => number): Promise<ToolList> {
    const list: ToolList = { names: [], readOnly: new Set(), complete: false };
    const names = new Set<string>();
    const cursors = new Set<string>();
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const r = await client.listTools(cursor === undefined ? undefined : { cursor }, { signal, timeout: left() });
      for (const t of r.tools) {
        if (typeof t.name !== "string" || t.name.length === 0 || t.name.length > MAX_TOOL_NAME || names.has(t.name)) return list;
        if (names.size >= MAX_TOOLS) return list;
        names.add(t.name);
        list.names.push(t.name);
        if (t.annotations?.readOnlyHint === true) list.readOnly.add(t.name);
      }
      cursor = r.nextCursor;
      if (cursor === undefined || cursor === "") {
        list.complete = true;
        return list;
      }
      if (cursors.has(cursor)) return list; // a server going round in circles
      cursors.add(cursor);
    }
    return list;
  }

  /** The server wants authorization: what its OAuth metadata says (the SDK's RFC 9728 / RFC 8414 discovery). */
  private async auth(url: URL, challenge: Seen, fetchFn: (input: string | URL | Request, init?: RequestInit) => Promise<Response>): Promise<AuthFinding> {
    const { discoverOAuthServerInfo, extractWWWAuthenticateParams } = await sdk();
    const headers = new Headers();
    if (challenge.wwwAuthenticate) headers.set("www-authenticate", challenge.wwwAuthenticate);
    const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams({ headers } as Response);
    const info = await discoverOAuthServerInfo(url, { resourceMetadataUrl, fetchFn }).catch(() => undefined);
    const md = info?.authorizationServerMetadata;
    const resourceName = textOr(info?.resourceMetadata?.resource_name);
    const authorizationEndpoint = httpUrl(md?.authorization_endpoint);
    const tokenEndpoint = httpUrl(md?.token_endpoint);
    if (md && authorizationEndpoint && tokenEndpoint) {
      const fromHeader = scope?.split(/\s+/).filter(Boolean);
      const scopes = (fromHeader?.length ? fromHeader : info?.resourceMetadata?.scopes_supported)
        ?.filter((s) => s.length > 0 && s.length <= 200)
        .slice(0, MAX_SCOPES);
      const methods = md.code_challenge_methods_supported?.map((m) => m.toUpperCase());
      return {
        kind: "oauth",
        authorizationEndpoint,
        tokenEndpoint,
        scopes: scopes?.length ? scopes : undefined,
        registration: !!httpUrl(md.registration_endpoint),
        noPkce: !!methods?.length && !methods.includes("S256") && !methods.includes("PLAIN"),
        resourceName,
      };
    }
    const scheme = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)/.exec(challenge.wwwAuthenticate ?? "")?.[1];
    return { kind: "token", scheme: scheme && scheme.length <= 20 ? scheme : "Bearer", resourceName };
  }
}

/* ---------- classifying what came back ---------- */

const mediaType = (ct: string) => ct.split(";")[0].trim().toLowerCase();

/** 401, or 403 with a Bearer challenge: the server wants credentials. */
function isChallenge(s: Seen): boolean {
  return s.status === 401 || (s.status === 403 && /^\s*bearer\b/i.test(s.wwwAuthenticate ?? ""));
}

const statusText = (s: Seen) => `HTTP ${s.status}${s.contentType ? ` (${mediaType(s.contentType)})` : ""}`;

function describe(s: Seen): string {
  return `${s.method} ${clip(s.url, 120)} answered ${statusText(s)}`;
}

function snippet(text: string, max = 60): string {
  return JSON.stringify(clip(text.replace(/\s+/g, " ").trim(), max));
}

/** A short account of an answer that is not MCP (HTML page, 404, JSON that is not JSON-RPC). */
function whatCameBack(s: Seen, err?: unknown): string {
  // Called while a discovery runs: the SDK is loaded.
  const { McpError, ErrorCode } = loaded!;
  const mt = mediaType(s.contentType);
  const body = s.excerpt ?? "";
  const ok = s.status >= 200 && s.status < 300;
  if (s.status >= 300 && s.status < 400 && s.location)
    return `${s.method} answered HTTP ${s.status} redirecting to ${clip(s.location, 120)} (only redirects within the origin are followed: discover that URL instead)`;
  if (ok && err instanceof McpError) {
    if (err.code === ErrorCode.ConnectionClosed) return `${s.method} answered ${statusText(s)} and closed the connection before an MCP answer`;
    return `it answered the MCP initialize request with JSON-RPC error ${err.code}: ${clip(err.message, 120)}`;
  }
  if (mt === "text/html" || /^\s*<(!doctype|html)/i.test(body)) {
    const title = /<title[^>]*>([^<]*)/i.exec(body)?.[1];
    return `${s.method} answered HTTP ${s.status} with an HTML page${title ? ` (title ${snippet(title)})` : ""}, not JSON-RPC`;
  }
  if (ok && /json/.test(mt)) {
    if (/"jsonrpc"\s*:\s*"2\.0"/.test(body) && err instanceof Error) return `it speaks JSON-RPC but not MCP: ${clip(err.message, 160)}`;
    return `${s.method} answered HTTP ${s.status} with JSON that is not a JSON-RPC message${body ? `: ${snippet(body, 80)}` : ""}`;
  }
  if (ok && mt === "text/event-stream")
    return `${s.method} answered an event stream without a valid MCP answer${err instanceof Error ? ` (${clip(err.message, 120)})` : ""}`;
  if (ok && err instanceof Error && !/content type/i.test(err.message)) return clip(err.message, 200);
  return `${s.method} answered ${statusText(s)}${body ? `: ${snippet(body)}` : ""}`;
}

/** Nothing answered: why (refused by the SSRF rules at connect time, connection refused, no such host, TLS, …). */
function noAnswer(failures: Failure[], err: unknown): ApiError {
  const f = failures.find((x) => x.phase === "streamable") ?? failures[0];
  if (!f) return mcpUnreachable(clip(err instanceof Error ? err.message : String(err), 200));
  if (f.code === "EPRIVATEADDR") return addressRefused(f.message.replace(/^refused: /, ""));
  if (f.code === "EBADURL" || f.code === "EREDIRECT") return notMcpServer(f.message);
  if (f.code === "ETOOLARGE") return notMcpServer(`the answer was larger than ${MAX_RESPONSE_BYTES} bytes`);
  if (f.code === "EBADRESPONSE") return notMcpServer(f.message);
  if (f.code?.startsWith("HPE_")) return notMcpServer(`it does not answer HTTP (${clip(f.message, 80)})`);
  const host = (() => {
    try {
      return new URL(f.url).host;
    } catch {
      return f.url;
    }
  })();
  const reasons: Record<string, string> = {
    ECONNREFUSED: `connection refused by ${host}`,
    ECONNRESET: `connection reset by ${host}`,
    ENOTFOUND: `host ${host} does not resolve`,
    EAI_AGAIN: `host ${host} does not resolve (DNS lookup failed)`,
    ETIMEDOUT: `connecting to ${host} timed out`,
    EHOSTUNREACH: `host ${host} is unreachable`,
    ENETUNREACH: `the network of ${host} is unreachable`,
  };
  return mcpUnreachable((f.code && reasons[f.code]) ?? clip(`${f.code ? f.code + ": " : ""}${f.message}`, 200));
}

/* ---------- the spec ---------- */

const textOr = (v: unknown) => (typeof v === "string" && v.trim() ? v.trim() : undefined);

function httpUrl(v: unknown): string | undefined {
  if (typeof v !== "string" || v.length > MAX_URL_LENGTH) return undefined;
  try {
    const u = new URL(v);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/** A short label: lower-case letters, digits and dashes, starting with a letter. */
export function toLabel(v: string | undefined): string | undefined {
  if (!v) return undefined;
  let s = v
    .normalize("NFKD")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (!s) return undefined;
  if (!/^[a-z]/.test(s)) s = `mcp-${s}`;
  return s.slice(0, MAX_LABEL).replace(/-+$/, "");
}

/** A name from the URL when the server gave none (the CLI's rule: host's first label, plus the path's last word). */
function nameFromUrl(u: URL): string {
  const host = u.hostname.replace(/^www\./, "");
  const parts = /^[\d.]+$|^\[/.test(host) ? [] : host.split(".").filter(Boolean);
  let hostToken = parts[0] ?? "mcp";
  if (hostToken === "mcp" && parts.length > 1) hostToken = parts[1];
  const segs = u.pathname.split("/").filter(Boolean);
  let pathToken: string | undefined = segs.at(-1);
  if (pathToken && ["mcp", "sse"].includes(pathToken.toLowerCase())) pathToken = segs.length > 1 ? segs.at(-2) : undefined;
  const raw = pathToken && pathToken.toLowerCase() !== hostToken.toLowerCase() ? `${hostToken}-${pathToken}` : hostToken;
  return toLabel(raw) ?? "mcp-service";
}

const clean = (v: string | undefined, max = MAX_DESCRIPTION) => (v && v.trim() ? clip(v.trim(), max) : undefined);

/** Jinja delimiters in text a server sent would be rendered in a template: break them up. */
const noJinja = (s: string) => s.replace(/\{(?=[{%#])/g, "{ ");

function deepMap<T>(v: T, f: (s: string) => string): T {
  if (typeof v === "string") return f(v) as T;
  if (Array.isArray(v)) return v.map((x) => deepMap(x, f)) as T;
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deepMap(x, f)])) as T;
  return v;
}

/** Findings → ServiceSpec (format "service") or ServiceTemplateSpec ("template"), keys of §7.4 only, no nulls. */
function buildSpec(f: Findings, format: DiscoverFormat): DiscoveredSpec {
  const u = f.url;
  const href = u.href;
  const server = f.server;
  const displayName = textOr(server?.title) ?? textOr(server?.name) ?? f.auth?.resourceName;
  const label = toLabel(textOr(server?.name) ?? textOr(server?.title) ?? f.auth?.resourceName) ?? nameFromUrl(u);
  const serverDescription = clean(textOr(server?.description));
  const icon = server?.icons?.map((i) => httpUrl(i.src)).find((x) => x !== undefined);

  const mcp: McpEndpointSpec = {
    label,
    description: serverDescription ?? clean(f.instructions) ?? `MCP tools exposed by ${href}`,
  };
  const tools = f.tools;
  const templateSafeNames = format === "service" || !tools?.names.some((n) => /\{[{%#]/.test(n));
  if (tools?.complete && tools.names.length && templateSafeNames) {
    const ro = tools.names.filter((n) => tools.readOnly.has(n));
    const other = tools.names.filter((n) => !tools.readOnly.has(n));
    mcp.allowed_tools = [...(ro.length ? [{ tool_names: ro, read_only: true }] : []), ...(other.length ? [{ tool_names: other }] : [])];
  }
  if (f.auth?.kind === "oauth") {
    mcp.oauth = {
      authorization_endpoint: f.auth.authorizationEndpoint,
      token_endpoint: f.auth.tokenEndpoint,
      ...(f.auth.scopes ? { scopes: f.auth.scopes } : {}),
      ...(f.auth.noPkce ? { no_pkce: true } : {}),
    };
  }

  let spec: DiscoveredSpec = {
    version: "v1",
    kind: format === "template" ? "ServiceTemplate" : "Service",
    metadata: {
      name: label,
      description: serverDescription ?? (displayName ? `${clip(displayName, 200)}: MCP server at ${href}` : `External MCP service at ${href}`),
      ...(icon ? { icon } : {}),
      annotations: { [ANNOTATION_SERVICE_ID]: href },
    },
    external: { url: u.origin },
    ports: [
      {
        num: u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80,
        type: "http",
        endpoints: [{ path: u.pathname || "/", mcp }],
      },
    ],
  };
  if (format === "service") return spec;

  // A template: what came from the server must not render as Jinja; the credentials discovery cannot supply
  // become variables, referenced where they go.
  spec = deepMap(spec, noJinja);
  const endpoint = spec.ports[0].endpoints[0].mcp;
  const variables: ServiceTemplateVariable[] = [];
  if (f.auth?.kind === "oauth" && !f.auth.registration) {
    const where = new URL(f.auth.authorizationEndpoint).host;
    variables.push(
      { name: "oauth_client_id", title: "OAuth client ID", description: `the client registered with the authorization server ${where} for this MCP server` },
      { name: "oauth_client_secret", title: "OAuth client secret", description: `the secret of that client at ${where}`, obscure: true },
    );
    endpoint.oauth = { client_id: "{{ oauth_client_id }}", client_secret: "{{ oauth_client_secret }}", ...endpoint.oauth };
  } else if (f.auth?.kind === "token") {
    variables.push({
      name: "token",
      title: "Access token",
      description: `sent as "Authorization: ${f.auth.scheme} <token>" to ${noJinja(href)}`,
      obscure: true,
    });
    endpoint.headers = { Authorization: `${f.auth.scheme} {{ token }}` };
  }
  if (variables.length) spec.variables = variables;
  return spec;
}
