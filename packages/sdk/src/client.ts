import type { components, paths } from "./openapi.js";
import { HttpClient, type Call, type ClientOptions, type Query, type RawData, type RequestOptions } from "./http.js";
import { MeshagentError } from "./errors.js";
import { PagedList, offsetPage, type Page } from "./paging.js";

/** The server's named schemas (Room, ServiceSpec, …), as its /openapi.json declares them. */
export type Schemas = components["schemas"];
type Method = "get" | "post" | "put" | "delete";
type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonContent<R> = R extends { content: { "application/json": infer B } } ? B : void;
/** The JSON a route answers with (200 or 201), from the OpenAPI document. */
export type ResponseOf<P extends keyof paths, M extends Method> =
  Op<P, M> extends { responses: infer R } ? (R extends { 200: infer A } ? JsonContent<A> : R extends { 201: infer A } ? JsonContent<A> : void) : never;
/** The JSON body a route takes. */
export type Body<P extends keyof paths, M extends Method> = Op<P, M> extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
/** A route's query parameters. */
export type QueryOf<P extends keyof paths, M extends Method> = Op<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

type PP = "/accounts/projects/{project_id}";
export type Project = Schemas["Project"];
export type Room = Schemas["Room"];
export type RoomGrant = Schemas["ProjectRoomGrant"];
export type ApiScope = RoomGrant["permissions"];
export type RoomShare = Schemas["RoomShare"];
export type Mailbox = Schemas["Mailbox"];
export type RoomSession = Schemas["RoomSession"];
export type Webhook = Schemas["Webhook"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
export type ServiceSpec = Schemas["ServiceSpec"];
export type ServiceTemplateSpec = Schemas["ServiceTemplateSpec"];
export type ServiceStatus = Schemas["ServiceStatus"];
export type ManagedSecret = Schemas["ManagedSecret"];
export type ManagedSecretInfo = Schemas["ManagedSecretInfo"];
export type OAuthClient = Schemas["OAuthClient"];
export type ScheduledTask = Schemas["ScheduledTask"];
export type ScheduledTaskSpec = Schemas["ScheduledTaskSpec"];
export type ScheduledTaskRun = Schemas["ScheduledTaskRun"];
export type StorageEntry = Schemas["StorageEntry"];
export type Balance = Schemas["Balance"];
export type Transaction = Schemas["Transaction"];
export type Subscription = Schemas["Subscription"];
export type UsageEntry = Schemas["UsageEntry"];
export type AuditEntry = Schemas["AuditEntry"];
export type UserToken = Schemas["UserToken"];
export type ProjectUser = ResponseOf<`${PP}/users`, "get">["users"][number];
export type ApiKey = ResponseOf<`${PP}/api-keys`, "get">["keys"][number];
export type CreatedApiKey = ResponseOf<`${PP}/api-keys`, "post">;
export type RoomConnectionInfo = ResponseOf<`${PP}/rooms/{room_name}/connect`, "post">;
export type RoomShareConnectionInfo = ResponseOf<"/shares/{share_id}/connect", "post">;
export type UserProfile = ResponseOf<"/accounts/profiles/{user_id}", "get">;

/** The image-pull secret of the seed's typed `create_secret` (wire-contract §5.2). */
export interface PullSecret {
  id?: string;
  name: string;
  type: "docker";
  server: string;
  username: string;
  password: string;
  email?: string;
}
/** The key/value secret of the seed's typed `create_secret`. */
export interface KeysSecret {
  id?: string;
  name: string;
  type: "keys";
  data: Record<string, string>;
}
export type Secret = PullSecret | KeysSecret;

/** Paging options of the limit/offset routes. */
export interface Paging {
  limit?: number;
  offset?: number;
}

/** What an upload or download reports as bytes move. */
export type Progress = (bytes: number, total: number | undefined) => void;

const enc = encodeURIComponent;
const P = (projectId: string) => `/accounts/projects/${enc(projectId)}`;
const SP = (projectId: string) => `/projects/${enc(projectId)}/storage`;

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
const utf8 = (s: string) => new TextEncoder().encode(s);

/** A typed secret's stored value: its payload as JSON with sorted keys, as the Python client writes it (§5.2). */
function secretBytes(secret: Secret): Uint8Array {
  const payload: Record<string, string> =
    secret.type === "docker"
      ? { email: secret.email ?? "none@example.com", password: secret.password, server: secret.server, username: secret.username }
      : secret.data;
  return utf8(
    JSON.stringify(
      Object.fromEntries(
        Object.keys(payload)
          .sort()
          .map((k) => [k, payload[k]]),
      ),
    ),
  );
}

/**
 * The MeshAgent REST API: one method for every method of the seed reference (camelCase of its names, its required
 * parameters in its order, the optional ones in an options object keyed as on the wire), plus what the official
 * TypeScript client lacks. Every method takes a last `RequestOptions` (signal, timeout, idempotency key, retries).
 */
export class Meshagent {
  readonly http: HttpClient;

  constructor(options: ClientOptions = {}) {
    this.http = new HttpClient(options);
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  #json<T>(method: Call["method"], path: string, opts?: RequestOptions, extra: Partial<Call> = {}): Promise<T> {
    return this.http.json<T>({ method, path, opts, ...extra });
  }

  #none(method: Call["method"], path: string, opts?: RequestOptions, extra: Partial<Call> = {}): Promise<void> {
    return this.http.none({ method, path, opts, ...extra });
  }

  /** A limit/offset list whose answer holds its items under `key` (and `total` when the route counts). */
  #paged<T>(path: string, key: string, defaults: { limit: number; param?: "limit" | "count" }, options: object, opts?: RequestOptions): PagedList<T> {
    const query = options as Query;
    const param = defaults.param ?? "limit";
    const limit = Number(query[param] ?? query.limit ?? defaults.limit);
    const rest: Query = { ...query };
    delete rest.limit;
    delete rest.count;
    delete rest.offset;
    return new PagedList<T>(
      async (offset) => {
        const body = await this.#json<Record<string, unknown>>("GET", path, opts, { query: { ...rest, [param]: limit, offset } });
        const items = (body[key] as T[] | undefined) ?? [];
        return offsetPage(items, offset, limit, typeof body.total === "number" ? body.total : undefined);
      },
      Number(query.offset ?? 0),
    );
  }

  // ── Projects and users ───────────────────────────────────────────────────────────────────────────────────────

  createProject(name: string, settings?: Record<string, unknown>, opts?: RequestOptions): Promise<Project> {
    return this.#json("POST", "/accounts/projects", opts, { json: { name, settings } });
  }
  async listProjects(opts?: RequestOptions): Promise<Project[]> {
    return (await this.#json<ResponseOf<"/accounts/projects", "get">>("GET", "/accounts/projects", opts)).projects;
  }
  getProject(projectId: string, opts?: RequestOptions): Promise<Project> {
    return this.#json("GET", P(projectId), opts);
  }
  updateProjectSettings(projectId: string, settings: Record<string, unknown>, opts?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#json("PUT", `${P(projectId)}/settings`, opts, { json: settings });
  }
  /** Whether the project is enabled. */
  async getStatus(projectId: string, opts?: RequestOptions): Promise<boolean> {
    return (await this.#json<ResponseOf<`${PP}/status`, "get">>("GET", `${P(projectId)}/status`, opts)).enabled;
  }
  getProjectRole(projectId: string, opts?: RequestOptions): Promise<ResponseOf<`${PP}/role`, "get">> {
    return this.#json("GET", `${P(projectId)}/role`, opts);
  }
  /** Add a user (by id, or by `email` with userId null) with optional admin/developer/can_create_rooms flags. */
  addUserToProject(
    projectId: string,
    userId: string | null,
    options: Omit<Body<`${PP}/users`, "post">, "project_id" | "user_id"> = {},
    opts?: RequestOptions,
  ): Promise<ResponseOf<`${PP}/users`, "post">> {
    return this.#json("POST", `${P(projectId)}/users`, opts, { json: { project_id: projectId, ...(userId ? { user_id: userId } : {}), ...options } });
  }
  updateProjectUser(projectId: string, userId: string, flags: Body<`${PP}/users/{user_id}`, "put">, opts?: RequestOptions): Promise<void> {
    return this.#none("PUT", `${P(projectId)}/users/${enc(userId)}`, opts, { json: flags });
  }
  removeUserFromProject(projectId: string, userId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/users/${enc(userId)}`, opts);
  }
  getUsersInProject(projectId: string, query: { count?: number; offset?: number; filter?: string } = {}, opts?: RequestOptions): PagedList<ProjectUser> {
    return this.#paged(`${P(projectId)}/users`, "users", { limit: 100, param: "count" }, query, opts);
  }
  /** A user's profile; `"me"` is the caller. */
  getUserProfile(userId: string, opts?: RequestOptions): Promise<UserProfile> {
    return this.#json("GET", `/accounts/profiles/${enc(userId)}`, opts);
  }
  updateUserProfile(userId: string, firstName: string, lastName: string, opts?: RequestOptions): Promise<void> {
    return this.#none("PUT", `/accounts/profiles/${enc(userId)}`, opts, { json: { first_name: firstName, last_name: lastName } });
  }
  /** The caller's personal access tokens and OAuth sessions. */
  async listUserTokens(opts?: RequestOptions): Promise<UserToken[]> {
    return (await this.#json<ResponseOf<"/accounts/profiles/me/tokens", "get">>("GET", "/accounts/profiles/me/tokens", opts)).tokens;
  }
  createUserToken(name: string, options: { expires_in?: number } = {}, opts?: RequestOptions): Promise<ResponseOf<"/accounts/profiles/me/tokens", "post">> {
    return this.#json("POST", "/accounts/profiles/me/tokens", opts, { json: { name, ...options } });
  }
  revokeUserToken(tokenId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `/accounts/profiles/me/tokens/${enc(tokenId)}`, opts);
  }

  // ── API keys ─────────────────────────────────────────────────────────────────────────────────────────────────

  /** Issue an API key; its `value` is in this answer only. */
  createApiKey(projectId: string, name: string, description = "", opts?: RequestOptions): Promise<CreatedApiKey> {
    return this.#json("POST", `${P(projectId)}/api-keys`, opts, { json: { name, description } });
  }
  async listApiKeys(projectId: string, opts?: RequestOptions): Promise<ApiKey[]> {
    return (await this.#json<ResponseOf<`${PP}/api-keys`, "get">>("GET", `${P(projectId)}/api-keys`, opts)).keys;
  }
  deleteApiKey(projectId: string, id: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/api-keys/${enc(id)}`, opts);
  }

  // ── Rooms ────────────────────────────────────────────────────────────────────────────────────────────────────

  createRoom(projectId: string, name: string, options: Omit<Body<`${PP}/rooms`, "post">, "name"> = {}, opts?: RequestOptions): Promise<Room> {
    return this.#json("POST", `${P(projectId)}/rooms`, opts, { json: { name, ...options } });
  }
  listRooms(projectId: string, query: QueryOf<`${PP}/rooms`, "get"> = {}, opts?: RequestOptions): PagedList<Room> {
    return this.#paged(`${P(projectId)}/rooms`, "rooms", { limit: 50 }, query, opts);
  }
  getRoom(projectId: string, roomName: string, opts?: RequestOptions): Promise<Room> {
    return this.#json("GET", `${P(projectId)}/rooms/${enc(roomName)}`, opts);
  }
  updateRoom(
    projectId: string,
    roomId: string,
    name: string,
    options: Omit<Body<`${PP}/rooms/{room}`, "put">, "name"> = {},
    opts?: RequestOptions,
  ): Promise<Room> {
    return this.#json("PUT", `${P(projectId)}/rooms/${enc(roomId)}`, opts, { json: { name, ...options } });
  }
  deleteRoom(projectId: string, roomId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/rooms/${enc(roomId)}`, opts);
  }
  /** A participant token and the room's URL, to join it with a room client. */
  connectRoom(projectId: string, roomName: string, opts?: RequestOptions): Promise<RoomConnectionInfo> {
    return this.#json("POST", `${P(projectId)}/rooms/${enc(roomName)}/connect`, opts, { json: {} });
  }

  // ── Room grants ──────────────────────────────────────────────────────────────────────────────────────────────

  createRoomGrant(projectId: string, roomId: string, userId: string, permissions: ApiScope, opts?: RequestOptions): Promise<RoomGrant> {
    return this.#json("POST", `${P(projectId)}/room-grants`, opts, { json: { room_id: roomId, user_id: userId, permissions } });
  }
  createRoomGrantByEmail(
    projectId: string,
    roomId: string,
    email: string,
    permissions: ApiScope,
    options: { invite_redirect_url?: string } = {},
    opts?: RequestOptions,
  ): Promise<RoomGrant> {
    return this.#json("POST", `${P(projectId)}/room-grants`, opts, { json: { room_id: roomId, email, permissions, ...options } });
  }
  updateRoomGrant(projectId: string, roomId: string, userId: string, permissions: ApiScope, grantId = "unused", opts?: RequestOptions): Promise<RoomGrant> {
    return this.#json("PUT", `${P(projectId)}/room-grants/${enc(grantId)}`, opts, { json: { room_id: roomId, user_id: userId, permissions } });
  }
  deleteRoomGrant(projectId: string, roomId: string, userId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/room-grants/${enc(roomId)}/${enc(userId)}`, opts);
  }
  getRoomGrant(projectId: string, roomId: string, userId: string, opts?: RequestOptions): Promise<RoomGrant> {
    return this.#json("GET", `${P(projectId)}/room-grants/${enc(roomId)}/${enc(userId)}`, opts);
  }
  listRoomGrants(projectId: string, query: QueryOf<`${PP}/room-grants`, "get"> = {}, opts?: RequestOptions): PagedList<RoomGrant> {
    return this.#paged(`${P(projectId)}/room-grants`, "room_grants", { limit: 50 }, query, opts);
  }
  listRoomGrantsByUser(
    projectId: string,
    userId: string,
    query: QueryOf<`${PP}/room-grants/by-user/{user_id}`, "get"> = {},
    opts?: RequestOptions,
  ): PagedList<RoomGrant> {
    return this.#paged(`${P(projectId)}/room-grants/by-user/${enc(userId)}`, "room_grants", { limit: 100 }, query, opts);
  }
  listRoomGrantsByRoom(projectId: string, roomName: string, query: Paging = {}, opts?: RequestOptions): PagedList<RoomGrant> {
    return this.#paged(`${P(projectId)}/room-grants/by-room/${enc(roomName)}`, "room_grants", { limit: 50 }, query, opts);
  }
  listUniqueRoomsWithGrants(
    projectId: string,
    query: Paging = {},
    opts?: RequestOptions,
  ): PagedList<ResponseOf<`${PP}/room-grants/by-room`, "get">["rooms"][number]> {
    return this.#paged(`${P(projectId)}/room-grants/by-room`, "rooms", { limit: 50 }, query, opts);
  }
  listUniqueUsersWithGrants(
    projectId: string,
    query: QueryOf<`${PP}/room-grants/by-user`, "get"> = {},
    opts?: RequestOptions,
  ): PagedList<ResponseOf<`${PP}/room-grants/by-user`, "get">["users"][number]> {
    return this.#paged(`${P(projectId)}/room-grants/by-user`, "users", { limit: 100 }, query, opts);
  }

  // ── Project storage ──────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Upload bytes to a path (replacing what is there). `data` may be bytes, a Blob, a string, or a stream / async
   * iterable of chunks (sent as it is read; give `size` to send a Content-Length). Bytes and Blobs are retried.
   */
  upload(
    projectId: string,
    path: string,
    data: RawData,
    options: { size?: number; contentType?: string; onProgress?: Progress } = {},
    opts?: RequestOptions,
  ): Promise<ResponseOf<"/projects/{project_id}/storage/upload", "post">> {
    return this.http.json({
      method: "POST",
      path: `${SP(projectId)}/upload`,
      query: { path },
      raw: { data, size: options.size, contentType: options.contentType, onProgress: options.onProgress },
      idempotent: true,
      opts,
    });
  }
  /** A file's bytes (404 → MeshagentError code `not_found`). */
  async download(projectId: string, path: string, options: { onProgress?: Progress } = {}, opts?: RequestOptions): Promise<Uint8Array> {
    const { stream } = await this.downloadStream(projectId, path, options, opts);
    return new Uint8Array(await new globalThis.Response(stream).arrayBuffer());
  }
  /** A file as a stream of chunks, with its size when the server sends one; for large files. */
  async downloadStream(
    projectId: string,
    path: string,
    options: { onProgress?: Progress } = {},
    opts?: RequestOptions,
  ): Promise<{ stream: ReadableStream<Uint8Array>; size: number | undefined; contentType: string | null }> {
    const call: Call = { method: "GET", path: `${SP(projectId)}/download`, query: { path }, opts };
    const res = await this.http.send(call);
    const len = res.headers.get("content-length");
    return { stream: this.http.stream(res, call, options.onProgress), size: len ? Number(len) : undefined, contentType: res.headers.get("content-type") };
  }
  /** The entries under a folder, page by page (`for await` walks them all). */
  listStorage(
    projectId: string,
    path = "",
    query: { limit?: number; after?: string } = {},
    opts?: RequestOptions,
  ): PagedList<StorageEntry, string | undefined> {
    const limit = query.limit ?? 1000;
    return new PagedList<StorageEntry, string | undefined>(async (after) => {
      const body = await this.#json<ResponseOf<"/projects/{project_id}/storage/list", "get">>("GET", `${SP(projectId)}/list`, opts, {
        query: { path, limit, after },
      });
      return { items: body.files, next: body.next ?? undefined } as Page<StorageEntry, string | undefined>;
    }, query.after);
  }
  statStorage(projectId: string, path: string, opts?: RequestOptions): Promise<ResponseOf<"/projects/{project_id}/storage/stat", "get">> {
    return this.#json("GET", `${SP(projectId)}/stat`, opts, { query: { path } });
  }
  deleteStorage(
    projectId: string,
    path: string,
    options: { recursive?: boolean } = {},
    opts?: RequestOptions,
  ): Promise<ResponseOf<"/projects/{project_id}/storage/delete", "delete">> {
    return this.#json("DELETE", `${SP(projectId)}/delete`, opts, { query: { path, recursive: options.recursive } });
  }
  getStorageUsage(projectId: string, opts?: RequestOptions): Promise<ResponseOf<"/projects/{project_id}/storage/usage", "get">> {
    return this.#json("GET", `${SP(projectId)}/usage`, opts);
  }

  // ── Services (project and room) ──────────────────────────────────────────────────────────────────────────────

  createService(projectId: string, service: ServiceSpec, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("POST", `${P(projectId)}/services`, opts, { json: service });
  }
  createServiceFromTemplate(projectId: string, template: string, values: Record<string, string> = {}, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("POST", `${P(projectId)}/services`, opts, { json: { template, values } });
  }
  async listServices(projectId: string, opts?: RequestOptions): Promise<ServiceSpec[]> {
    return (await this.#json<ResponseOf<`${PP}/services`, "get">>("GET", `${P(projectId)}/services`, opts)).services;
  }
  getService(projectId: string, serviceId: string, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("GET", `${P(projectId)}/services/${enc(serviceId)}`, opts);
  }
  updateService(projectId: string, serviceId: string, service: ServiceSpec, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("PUT", `${P(projectId)}/services/${enc(serviceId)}`, opts, { json: { ...service, id: serviceId } });
  }
  updateServiceFromTemplate(
    projectId: string,
    serviceId: string,
    template: string,
    values: Record<string, string> = {},
    opts?: RequestOptions,
  ): Promise<ServiceSpec> {
    return this.#json("PUT", `${P(projectId)}/services/${enc(serviceId)}`, opts, { json: { template, values } });
  }
  deleteService(projectId: string, serviceId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/services/${enc(serviceId)}`, opts);
  }
  /** Where a project service runs: one entry per room it is in. */
  getServiceStatus(projectId: string, serviceId: string, opts?: RequestOptions): Promise<ResponseOf<`${PP}/services/{service_id}/status`, "get">> {
    return this.#json("GET", `${P(projectId)}/services/${enc(serviceId)}/status`, opts);
  }
  createRoomService(projectId: string, roomName: string, service: ServiceSpec, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("POST", `${P(projectId)}/rooms/${enc(roomName)}/services`, opts, { json: service });
  }
  createRoomServiceFromTemplate(
    projectId: string,
    roomName: string,
    template: string,
    values: Record<string, string> = {},
    opts?: RequestOptions,
  ): Promise<ServiceSpec> {
    return this.#json("POST", `${P(projectId)}/rooms/${enc(roomName)}/services`, opts, { json: { template, values } });
  }
  async listRoomServices(projectId: string, roomName: string, opts?: RequestOptions): Promise<ServiceSpec[]> {
    return (await this.#json<ResponseOf<`${PP}/rooms/{room_name}/services`, "get">>("GET", `${P(projectId)}/rooms/${enc(roomName)}/services`, opts)).services;
  }
  getRoomService(projectId: string, roomName: string, serviceId: string, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("GET", `${P(projectId)}/rooms/${enc(roomName)}/services/${enc(serviceId)}`, opts);
  }
  updateRoomService(projectId: string, roomName: string, serviceId: string, service: ServiceSpec, opts?: RequestOptions): Promise<ServiceSpec> {
    return this.#json("PUT", `${P(projectId)}/rooms/${enc(roomName)}/services/${enc(serviceId)}`, opts, { json: { ...service, id: serviceId } });
  }
  updateRoomServiceFromTemplate(
    projectId: string,
    roomName: string,
    serviceId: string,
    template: string,
    values: Record<string, string> = {},
    opts?: RequestOptions,
  ): Promise<ServiceSpec> {
    return this.#json("PUT", `${P(projectId)}/rooms/${enc(roomName)}/services/${enc(serviceId)}`, opts, { json: { template, values } });
  }
  deleteRoomService(projectId: string, roomName: string, serviceId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/rooms/${enc(roomName)}/services/${enc(serviceId)}`, opts);
  }
  getRoomServiceStatus(projectId: string, roomName: string, serviceId: string, opts?: RequestOptions): Promise<ServiceStatus> {
    return this.#json("GET", `${P(projectId)}/rooms/${enc(roomName)}/services/${enc(serviceId)}/status`, opts);
  }
  /** A service template rendered with values (nothing is stored). */
  renderTemplate(template: string, values: Record<string, string> = {}, opts?: RequestOptions): Promise<ServiceTemplateSpec> {
    return this.#json("POST", "/templates/render", opts, { json: { template, values } });
  }
  /** A ServiceSpec (or template) for an MCP server at a URL. */
  discoverMcpSpec(url: string, format: "service" | "template" = "service", opts?: RequestOptions): Promise<ServiceSpec | ServiceTemplateSpec> {
    return this.#json("POST", "/mcp/discover", opts, { json: { url, format } });
  }

  // ── Secrets ──────────────────────────────────────────────────────────────────────────────────────────────────

  /** A PullSecret or KeysSecret, stored as the official clients store it (base64 of its sorted JSON payload). */
  async createSecret(projectId: string, secret: Secret, opts?: RequestOptions): Promise<string> {
    return (await this.createProjectSecret(projectId, secret.name, secret.type, secretBytes(secret), opts)).id;
  }
  /** Every project secret with its value, as PullSecret or KeysSecret. */
  async listSecrets(projectId: string, opts?: RequestOptions): Promise<Secret[]> {
    const infos = await this.listProjectSecrets(projectId, opts);
    const out: Secret[] = [];
    for (const info of infos) {
      const s = await this.getProjectSecret(projectId, info.id, opts);
      let payload: Record<string, string> = {};
      try {
        payload = JSON.parse(new TextDecoder().decode(fromBase64(s.data_base64)));
      } catch {
        // A secret written as raw bytes (not a typed one): its value is not a JSON object.
      }
      if (s.type === "docker")
        out.push({
          id: s.id,
          name: s.name,
          type: "docker",
          server: payload.server,
          username: payload.username,
          password: payload.password,
          email: payload.email,
        });
      else out.push({ id: s.id, name: s.name, type: "keys", data: payload });
    }
    return out;
  }
  updateSecret(projectId: string, secret: Secret & { id: string }, opts?: RequestOptions): Promise<void> {
    return this.updateProjectSecret(projectId, secret.id, secret.name, secret.type, secretBytes(secret), opts);
  }
  deleteSecret(projectId: string, secretId: string, opts?: RequestOptions): Promise<void> {
    return this.deleteProjectSecret(projectId, secretId, opts);
  }
  createProjectSecret(projectId: string, name: string, type: string, data: Uint8Array, opts?: RequestOptions): Promise<{ id: string }> {
    return this.#json("POST", `${P(projectId)}/secrets`, opts, { json: { name, type, data_base64: toBase64(data) } });
  }
  async listProjectSecrets(projectId: string, opts?: RequestOptions): Promise<ManagedSecretInfo[]> {
    return (await this.#json<ResponseOf<`${PP}/secrets`, "get">>("GET", `${P(projectId)}/secrets`, opts)).secrets;
  }
  getProjectSecret(projectId: string, secretId: string, opts?: RequestOptions): Promise<ManagedSecret> {
    return this.#json("GET", `${P(projectId)}/secrets/${enc(secretId)}`, opts);
  }
  updateProjectSecret(projectId: string, secretId: string, name: string, type: string, data: Uint8Array, opts?: RequestOptions): Promise<void> {
    return this.#none("PUT", `${P(projectId)}/secrets/${enc(secretId)}`, opts, { json: { name, type, data_base64: toBase64(data) } });
  }
  deleteProjectSecret(projectId: string, secretId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/secrets/${enc(secretId)}`, opts);
  }
  createRoomSecret(
    projectId: string,
    roomName: string,
    data: Uint8Array,
    options: { secret_id?: string; name?: string; type?: string; delegated_to?: string; for_identity?: string } = {},
    opts?: RequestOptions,
  ): Promise<{ id: string }> {
    return this.#json("POST", `${P(projectId)}/rooms/${enc(roomName)}/secrets`, opts, { json: { data_base64: toBase64(data), ...options } });
  }
  async listRoomSecrets(projectId: string, roomName: string, options: { for_identity?: string } = {}, opts?: RequestOptions): Promise<ManagedSecretInfo[]> {
    return (
      await this.#json<ResponseOf<`${PP}/rooms/{room_name}/secrets`, "get">>("GET", `${P(projectId)}/rooms/${enc(roomName)}/secrets`, opts, { query: options })
    ).secrets;
  }
  getRoomSecret(
    projectId: string,
    roomName: string,
    secretId: string,
    options: { delegated_to?: string; for_identity?: string } = {},
    opts?: RequestOptions,
  ): Promise<ManagedSecret> {
    return this.#json("GET", `${P(projectId)}/rooms/${enc(roomName)}/secrets/${enc(secretId)}`, opts, { query: options });
  }
  updateRoomSecret(
    projectId: string,
    roomName: string,
    secretId: string,
    data: Uint8Array,
    options: { name?: string; type?: string; delegated_to?: string; for_identity?: string } = {},
    opts?: RequestOptions,
  ): Promise<void> {
    return this.#none("PUT", `${P(projectId)}/rooms/${enc(roomName)}/secrets/${enc(secretId)}`, opts, { json: { data_base64: toBase64(data), ...options } });
  }
  deleteRoomSecret(
    projectId: string,
    roomName: string,
    secretId: string,
    options: { delegated_to?: string; for_identity?: string } = {},
    opts?: RequestOptions,
  ): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/rooms/${enc(roomName)}/secrets/${enc(secretId)}`, opts, { query: options });
  }

  // ── Webhooks ─────────────────────────────────────────────────────────────────────────────────────────────────

  createWebhook(projectId: string, webhook: Body<`${PP}/webhooks`, "post">, opts?: RequestOptions): Promise<Webhook> {
    return this.#json("POST", `${P(projectId)}/webhooks`, opts, { json: webhook });
  }
  async listWebhooks(projectId: string, opts?: RequestOptions): Promise<Webhook[]> {
    return (await this.#json<ResponseOf<`${PP}/webhooks`, "get">>("GET", `${P(projectId)}/webhooks`, opts)).webhooks;
  }
  getWebhook(projectId: string, webhookId: string, opts?: RequestOptions): Promise<Webhook> {
    return this.#json("GET", `${P(projectId)}/webhooks/${enc(webhookId)}`, opts);
  }
  updateWebhook(projectId: string, webhookId: string, webhook: Body<`${PP}/webhooks/{webhook_id}`, "put">, opts?: RequestOptions): Promise<Webhook> {
    return this.#json("PUT", `${P(projectId)}/webhooks/${enc(webhookId)}`, opts, { json: webhook });
  }
  deleteWebhook(projectId: string, webhookId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/webhooks/${enc(webhookId)}`, opts);
  }
  /** A webhook's deliveries, newest first, each with every attempt. */
  listWebhookDeliveries(
    projectId: string,
    webhookId: string,
    query: QueryOf<`${PP}/webhooks/{webhook_id}/deliveries`, "get"> = {},
    opts?: RequestOptions,
  ): PagedList<WebhookDelivery> {
    return this.#paged(`${P(projectId)}/webhooks/${enc(webhookId)}/deliveries`, "deliveries", { limit: 50 }, query, opts);
  }
  getWebhookDelivery(projectId: string, webhookId: string, deliveryId: string, opts?: RequestOptions): Promise<WebhookDelivery> {
    return this.#json("GET", `${P(projectId)}/webhooks/${enc(webhookId)}/deliveries/${enc(deliveryId)}`, opts);
  }
  /** Send a delivery again now (same id and body). */
  replayWebhookDelivery(projectId: string, webhookId: string, deliveryId: string, opts?: RequestOptions): Promise<WebhookDelivery> {
    return this.#json("POST", `${P(projectId)}/webhooks/${enc(webhookId)}/deliveries/${enc(deliveryId)}/retry`, opts, { json: {} });
  }
  /** Send a `webhook.test` ping to the webhook. */
  testWebhook(projectId: string, webhookId: string, opts?: RequestOptions): Promise<WebhookDelivery> {
    return this.#json("POST", `${P(projectId)}/webhooks/${enc(webhookId)}/test`, opts, { json: {} });
  }
  /** The event names a webhook can subscribe to. */
  async listWebhookEvents(opts?: RequestOptions): Promise<ResponseOf<"/webhooks/events", "get">["events"]> {
    return (await this.#json<ResponseOf<"/webhooks/events", "get">>("GET", "/webhooks/events", opts)).events;
  }

  // ── OAuth clients ────────────────────────────────────────────────────────────────────────────────────────────

  /** Create an OAuth client; its `client_secret` is in this answer only. */
  createOAuthClient(projectId: string, client: Body<`${PP}/oauth/clients`, "post">, opts?: RequestOptions): Promise<OAuthClient> {
    return this.#json("POST", `${P(projectId)}/oauth/clients`, opts, { json: client });
  }
  listOAuthClients(projectId: string, query: { count?: number; offset?: number; filter?: string } = {}, opts?: RequestOptions): PagedList<OAuthClient> {
    return this.#paged(`${P(projectId)}/oauth/clients`, "clients", { limit: 100, param: "count" }, query, opts);
  }
  getOAuthClient(projectId: string, clientId: string, opts?: RequestOptions): Promise<OAuthClient> {
    return this.#json("GET", `${P(projectId)}/oauth/clients/${enc(clientId)}`, opts);
  }
  updateOAuthClient(projectId: string, clientId: string, client: Body<`${PP}/oauth/clients/{client_id}`, "put">, opts?: RequestOptions): Promise<void> {
    return this.#none("PUT", `${P(projectId)}/oauth/clients/${enc(clientId)}`, opts, { json: client });
  }
  deleteOAuthClient(projectId: string, clientId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/oauth/clients/${enc(clientId)}`, opts);
  }

  // ── Shares ───────────────────────────────────────────────────────────────────────────────────────────────────

  createShare(projectId: string, settings: Record<string, unknown> = {}, opts?: RequestOptions): Promise<RoomShare> {
    return this.#json("POST", `${P(projectId)}/shares`, opts, { json: { settings } });
  }
  listShares(projectId: string, query: Paging = {}, opts?: RequestOptions): PagedList<RoomShare> {
    return this.#paged(`${P(projectId)}/shares`, "shares", { limit: 100 }, query, opts);
  }
  updateShare(projectId: string, shareId: string, settings: Record<string, unknown> = {}, opts?: RequestOptions): Promise<RoomShare> {
    return this.#json("PUT", `${P(projectId)}/shares/${enc(shareId)}`, opts, { json: { settings } });
  }
  deleteShare(projectId: string, shareId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/shares/${enc(shareId)}`, opts);
  }
  /** Join a room through a share link (no credentials needed). */
  connectShare(shareId: string, opts?: RequestOptions): Promise<RoomShareConnectionInfo> {
    return this.#json("POST", `/shares/${enc(shareId)}/connect`, opts, { json: {}, anonymous: true });
  }
  /** Whether a participant token is valid here, and what it grants. */
  validateParticipantToken(token: string, opts?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#json("POST", "/api/participant-token/validate", opts, { json: { token } });
  }

  // ── Mailboxes ────────────────────────────────────────────────────────────────────────────────────────────────

  async createMailbox(
    projectId: string,
    address: string,
    room: string,
    queue: string,
    options: { public?: boolean; annotations?: Record<string, string> } = {},
    opts?: RequestOptions,
  ): Promise<Mailbox> {
    return (await this.#json<ResponseOf<`${PP}/mailboxes`, "post">>("POST", `${P(projectId)}/mailboxes`, opts, { json: { address, room, queue, ...options } }))
      .mailbox;
  }
  listMailboxes(projectId: string, query: { count?: number; offset?: number; filter?: string } = {}, opts?: RequestOptions): PagedList<Mailbox> {
    return this.#paged(`${P(projectId)}/mailboxes`, "mailboxes", { limit: 100, param: "count" }, query, opts);
  }
  listRoomMailboxes(
    projectId: string,
    roomName: string,
    query: { count?: number; offset?: number; filter?: string } = {},
    opts?: RequestOptions,
  ): PagedList<Mailbox> {
    return this.#paged(`${P(projectId)}/rooms/${enc(roomName)}/mailboxes`, "mailboxes", { limit: 100, param: "count" }, query, opts);
  }
  async getMailbox(projectId: string, address: string, opts?: RequestOptions): Promise<Mailbox> {
    return (await this.#json<ResponseOf<`${PP}/mailboxes/{address}`, "get">>("GET", `${P(projectId)}/mailboxes/${enc(address)}`, opts)).mailbox;
  }
  async updateMailbox(
    projectId: string,
    address: string,
    room: string,
    queue: string,
    options: { public?: boolean; annotations?: Record<string, string> } = {},
    opts?: RequestOptions,
  ): Promise<Mailbox> {
    return (
      await this.#json<ResponseOf<`${PP}/mailboxes/{address}`, "put">>("PUT", `${P(projectId)}/mailboxes/${enc(address)}`, opts, {
        json: { room, queue, ...options },
      })
    ).mailbox;
  }
  deleteMailbox(projectId: string, address: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/mailboxes/${enc(address)}`, opts);
  }

  // ── Sessions ─────────────────────────────────────────────────────────────────────────────────────────────────

  async listActiveSessions(projectId: string, opts?: RequestOptions): Promise<RoomSession[]> {
    return (await this.#json<ResponseOf<`${PP}/sessions/active`, "get">>("GET", `${P(projectId)}/sessions/active`, opts)).sessions;
  }
  async listRecentSessions(projectId: string, query: { limit?: number; room_id?: string } = {}, opts?: RequestOptions): Promise<RoomSession[]> {
    return (await this.#json<ResponseOf<`${PP}/sessions`, "get">>("GET", `${P(projectId)}/sessions`, opts, { query })).sessions;
  }
  getSession(projectId: string, sessionId: string, opts?: RequestOptions): Promise<ResponseOf<`${PP}/sessions/{session_id}`, "get">> {
    return this.#json("GET", `${P(projectId)}/sessions/${enc(sessionId)}`, opts);
  }
  async listSessionEvents(
    projectId: string,
    sessionId: string,
    opts?: RequestOptions,
  ): Promise<ResponseOf<`${PP}/sessions/{session_id}/events`, "get">["events"]> {
    return (await this.#json<ResponseOf<`${PP}/sessions/{session_id}/events`, "get">>("GET", `${P(projectId)}/sessions/${enc(sessionId)}/events`, opts)).events;
  }
  async listSessionSpans(
    projectId: string,
    sessionId: string,
    opts?: RequestOptions,
  ): Promise<ResponseOf<`${PP}/sessions/{session_id}/spans`, "get">["spans"]> {
    return (await this.#json<ResponseOf<`${PP}/sessions/{session_id}/spans`, "get">>("GET", `${P(projectId)}/sessions/${enc(sessionId)}/spans`, opts)).spans;
  }
  async listSessionMetrics(
    projectId: string,
    sessionId: string,
    opts?: RequestOptions,
  ): Promise<ResponseOf<`${PP}/sessions/{session_id}/metrics`, "get">["metrics"]> {
    return (await this.#json<ResponseOf<`${PP}/sessions/{session_id}/metrics`, "get">>("GET", `${P(projectId)}/sessions/${enc(sessionId)}/metrics`, opts))
      .metrics;
  }
  /** End a live session (its participants are disconnected). */
  terminate(projectId: string, sessionId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("POST", `${P(projectId)}/sessions/${enc(sessionId)}/terminate`, opts);
  }

  // ── Scheduled tasks ──────────────────────────────────────────────────────────────────────────────────────────

  /** Schedule queue messages (or a container) for a room; answers the new task's id. */
  async createScheduledTask(
    projectId: string,
    roomName: string,
    spec: ScheduledTaskSpec,
    options: Omit<Body<`${PP}/rooms/{room_name}/scheduled-tasks`, "post">, "spec"> = {},
    opts?: RequestOptions,
  ): Promise<ResponseOf<`${PP}/rooms/{room_name}/scheduled-tasks`, "post">> {
    return this.#json("POST", `${P(projectId)}/rooms/${enc(roomName)}/scheduled-tasks`, opts, { json: { spec, ...options } });
  }
  updateScheduledTask(
    projectId: string,
    taskId: string,
    spec: ScheduledTaskSpec,
    options: Omit<Body<`${PP}/scheduled-tasks/{task_id}`, "put">, "spec"> = {},
    opts?: RequestOptions,
  ): Promise<ScheduledTask> {
    return this.#json("PUT", `${P(projectId)}/scheduled-tasks/${enc(taskId)}`, opts, { json: { spec, ...options } });
  }
  getScheduledTask(projectId: string, taskId: string, opts?: RequestOptions): Promise<ScheduledTask> {
    return this.#json("GET", `${P(projectId)}/scheduled-tasks/${enc(taskId)}`, opts);
  }
  deleteScheduledTask(projectId: string, taskId: string, opts?: RequestOptions): Promise<void> {
    return this.#none("DELETE", `${P(projectId)}/scheduled-tasks/${enc(taskId)}`, opts);
  }
  listScheduledTasks(projectId: string, query: QueryOf<`${PP}/scheduled-tasks`, "get"> = {}, opts?: RequestOptions): PagedList<ScheduledTask> {
    return this.#paged(`${P(projectId)}/scheduled-tasks`, "tasks", { limit: 100 }, query, opts);
  }
  listScheduledTaskRuns(projectId: string, taskId: string, query: Paging = {}, opts?: RequestOptions): PagedList<ScheduledTaskRun> {
    return this.#paged(`${P(projectId)}/scheduled-tasks/${enc(taskId)}/runs`, "runs", { limit: 100 }, query, opts);
  }
  /** The next times a task will run. */
  previewScheduledTask(projectId: string, taskId: string, n = 5, opts?: RequestOptions): Promise<ResponseOf<`${PP}/scheduled-tasks/{task_id}/preview`, "get">> {
    return this.#json("GET", `${P(projectId)}/scheduled-tasks/${enc(taskId)}/preview`, opts, { query: { n } });
  }

  // ── Audit log ────────────────────────────────────────────────────────────────────────────────────────────────

  listAuditLog(projectId: string, query: QueryOf<`${PP}/audit-log`, "get"> = {}, opts?: RequestOptions): PagedList<AuditEntry> {
    return this.#paged(`${P(projectId)}/audit-log`, "entries", { limit: 100 }, query, opts);
  }

  // ── Billing and usage ────────────────────────────────────────────────────────────────────────────────────────

  getPricing(opts?: RequestOptions): Promise<ResponseOf<"/pricing", "get">> {
    return this.#json("GET", "/pricing", opts);
  }
  getBalance(projectId: string, opts?: RequestOptions): Promise<Balance> {
    return this.#json("GET", `${P(projectId)}/balance`, opts);
  }
  async getRecentTransactions(projectId: string, query: { limit?: number } = {}, opts?: RequestOptions): Promise<Transaction[]> {
    return (await this.#json<ResponseOf<`${PP}/transactions`, "get">>("GET", `${P(projectId)}/transactions`, opts, { query })).transactions;
  }
  setAutoRecharge(
    projectId: string,
    enabled: boolean,
    amount: number,
    threshold: number,
    options: { monthly_budget?: number | null } = {},
    opts?: RequestOptions,
  ): Promise<Balance> {
    return this.#json("POST", `${P(projectId)}/recharge`, opts, { json: { enabled, amount, threshold, ...options } });
  }
  async getCheckoutUrl(projectId: string, successUrl: string, cancelUrl: string, opts?: RequestOptions): Promise<string> {
    return (
      await this.#json<{ checkout_url: string }>("POST", `${P(projectId)}/subscription`, opts, { json: { success_url: successUrl, cancel_url: cancelUrl } })
    ).checkout_url;
  }
  async getCreditsCheckoutUrl(projectId: string, successUrl: string, cancelUrl: string, quantity: number, opts?: RequestOptions): Promise<string> {
    return (
      await this.#json<{ checkout_url: string }>("POST", `${P(projectId)}/credits`, opts, {
        json: { quantity, success_url: successUrl, cancel_url: cancelUrl },
      })
    ).checkout_url;
  }
  getSubscription(projectId: string, opts?: RequestOptions): Promise<Subscription> {
    return this.#json("GET", `${P(projectId)}/subscription`, opts);
  }
  cancelSubscription(projectId: string, options: { at_period_end?: boolean } = {}, opts?: RequestOptions): Promise<Subscription> {
    return this.#json("POST", `${P(projectId)}/subscription/cancel`, opts, { json: options });
  }
  /** Usage reports; `users` may be an array of ids and `annotations` an object (both encoded as the seed does). */
  async getUsage(
    projectId: string,
    query: Omit<QueryOf<`${PP}/usage`, "get">, "users" | "annotations"> & { users?: string[] | string; annotations?: Record<string, string> | string } = {},
    opts?: RequestOptions,
  ): Promise<UsageEntry[]> {
    const q: Query = { ...(query as Query) };
    if (Array.isArray(query.users)) q.users = query.users.join(",");
    if (query.annotations && typeof query.annotations === "object") q.annotations = JSON.stringify(query.annotations);
    return (await this.#json<ResponseOf<`${PP}/usage`, "get">>("GET", `${P(projectId)}/usage`, opts, { query: q })).usage;
  }
}

export { MeshagentError };
