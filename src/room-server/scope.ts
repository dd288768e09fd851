import { isObj } from "../core/json.js";
import { denied, ErrorCode, ToolError } from "./protocol.js";

/**
 * The ApiScope of a participant token, as the room server enforces it (room-protocol.md §5). The official grant
 * classes define the rules; the client never checks its own token, so every toolkit call passes through here.
 *
 * A missing `api` grant allows no room API call at all; a missing section denies that whole toolkit; `{}` means the
 * section is present with its defaults (allowed).
 */
export class RoomScope {
  constructor(private readonly api: Record<string, unknown> | undefined) {}

  private section(name: string): Record<string, unknown> {
    if (!this.api) throw denied("the token has no api grant, so it cannot call the room API");
    const s = this.api[name];
    if (s === undefined || s === null) throw denied(`the token's api grant has no ${name} section`);
    if (!isObj(s)) throw denied(`the token's api.${name} grant is malformed`);
    return s;
  }

  /** The toolkit's grant must exist (enable/disable, open/drain/close need nothing more). */
  require(toolkit: "queues" | "messaging" | "storage" | "secrets" | "developer") {
    this.section(toolkit);
  }

  /** Whether the token has an `admin` section (it may address another identity's room secrets). */
  isAdmin(): boolean {
    return !!this.api && isObj(this.api.admin);
  }

  /**
   * SecretsGrant.canRequestOauthToken (request_oauth_token, get_offline_oauth_token): no `request_oauth_token` list
   * allows any provider; a list needs an entry whose `endpoint` is the authorization endpoint (or, ending in `*`, a
   * prefix of it) and whose `client_id` is the client id.
   */
  secretsOAuth(oauth: { authorization_endpoint?: unknown; client_id?: unknown } | null) {
    const list = this.section("secrets").request_oauth_token;
    if (list === undefined || list === null) return;
    if (!Array.isArray(list)) throw denied("the token's api.secrets.request_oauth_token grant is malformed");
    const endpoint = typeof oauth?.authorization_endpoint === "string" ? oauth.authorization_endpoint.trim() : "";
    const clientId = typeof oauth?.client_id === "string" ? oauth.client_id.trim() : "";
    const ok =
      endpoint !== "" &&
      clientId !== "" &&
      list.some((g) => {
        if (!isObj(g) || typeof g.endpoint !== "string") return false;
        const gid = typeof g.client_id === "string" ? g.client_id : g.clientId;
        const match = g.endpoint === endpoint || (g.endpoint.endsWith("*") && endpoint.startsWith(g.endpoint.slice(0, -1)));
        return match && gid === clientId;
      });
    if (!ok)
      throw denied(`the token may not request OAuth tokens from ${endpoint ? JSON.stringify(endpoint.slice(0, 200)) : "this provider"} for this client_id`);
  }

  /** services.list (ServicesGrant.list, default true). restart needs the section. */
  servicesList() {
    if (this.section("services").list === false) throw denied("the token may not list services (api.services.list is false)");
  }
  servicesRequire() {
    this.section("services");
  }

  /** The token's api grant as it is (a container started for the participant acts with these rights, never more). */
  apiGrant(): Record<string, unknown> | undefined {
    return this.api;
  }

  // ---- containers (ContainersGrant): `use_containers` (default true), `logs` (default true), `pull` / `run` lists
  // of image patterns (absent or null: any image; an entry matches the reference exactly or, ending in `*`, as a
  // prefix; an empty list allows none)

  private containers(): Record<string, unknown> {
    const s = this.section("containers");
    if ((s.use_containers ?? s.useContainers) === false) throw denied("the token may not use containers (api.containers.use_containers is false)");
    return s;
  }

  /** Every containers tool: the section, and `use_containers` not false. */
  containersRequire() {
    this.containers();
  }

  /** containers.logs: reading a container's output (`logs`, default true). */
  containersLogs() {
    if (this.containers().logs === false) throw denied("the token may not read container logs (api.containers.logs is false)");
  }

  private static imageAllowed(list: unknown, image: string, what: string): boolean {
    if (list === undefined || list === null) return true;
    if (!Array.isArray(list)) throw denied(`the token's api.containers.${what} grant is malformed`);
    return list.some((p) => typeof p === "string" && (p === image || (p.endsWith("*") && image.startsWith(p.slice(0, -1)))));
  }

  /** ContainersGrant.canPull: pulling `image` (pull_image, and a run whose image is not present yet). */
  containersPull(image: string) {
    if (!RoomScope.imageAllowed(this.containers().pull, image, "pull"))
      throw denied(`the token may not pull the image ${JSON.stringify(image.slice(0, 200))} (not in api.containers.pull)`);
  }

  /** ContainersGrant.canRun: starting a container of `image` (run, run_service). */
  containersRun(image: string) {
    if (!RoomScope.imageAllowed(this.containers().run, image, "run"))
      throw denied(`the token may not run the image ${JSON.stringify(image.slice(0, 200))} (not in api.containers.run)`);
  }

  /** developer.logs: watching the room's developer logs (`developer.logs`, default true). */
  developerLogs() {
    if (this.section("developer").logs === false) throw denied("the token may not watch developer logs (api.developer.logs is false)");
  }

  private static listAllows(list: unknown, name: string) {
    return list === undefined || list === null || (Array.isArray(list) && list.includes(name));
  }

  canSend(queue: string) {
    return RoomScope.listAllows(this.section("queues").send, queue);
  }
  canReceive(queue: string) {
    return RoomScope.listAllows(this.section("queues").receive, queue);
  }

  queueSend(queue: string) {
    if (!this.canSend(queue)) throw denied(`the token may not send to queue "${queue}"`);
  }
  queueReceive(queue: string) {
    if (!this.canReceive(queue)) throw denied(`the token may not receive from queue "${queue}"`);
  }
  /** open/drain/close: no rule in the client; we require send or receive rights on the queue. */
  queueManage(queue: string) {
    if (!this.canSend(queue) && !this.canReceive(queue)) throw denied(`the token may neither send to nor receive from queue "${queue}"`);
  }
  queueList() {
    if (this.section("queues").list === false) throw denied("the token may not list queues");
  }

  messagingBroadcast() {
    if (this.section("messaging").broadcast === false) throw denied("the token may not broadcast messages");
  }
  messagingSend() {
    if (this.section("messaging").send === false) throw denied("the token may not send messages");
  }
  /** Whether the participant sees the participant list and presence events. */
  messagingList(): boolean {
    if (!this.api) return false;
    const s = this.api.messaging;
    return !!s && typeof s === "object" && (s as Record<string, unknown>).list !== false;
  }

  private storagePaths(): { path: string; read_only: boolean }[] | null {
    const paths = this.section("storage").paths;
    if (paths === undefined || paths === null) return null;
    if (!Array.isArray(paths)) throw denied("the token's api.storage.paths grant is malformed");
    return paths
      .filter((p): p is Record<string, unknown> => !!p && typeof p === "object" && typeof (p as { path?: unknown }).path === "string")
      .map((p) => ({ path: normalizeGrantPath(p.path as string), read_only: p.read_only === true }));
  }

  /** canRead: no paths, or some grant path is a prefix. `path` is already normalized. */
  storageRead(path: string) {
    const paths = this.storagePaths();
    if (paths && !paths.some((g) => path.startsWith(g.path))) throw denied(`the token may not read "${path}"`);
  }

  /** canWrite: no paths, or the FIRST grant whose path is a prefix is not read-only. */
  storageWrite(path: string) {
    const paths = this.storagePaths();
    if (!paths) return;
    const g = paths.find((p) => path.startsWith(p.path));
    if (!g || g.read_only) throw denied(`the token may not write "${path}"`);
  }

  // ---- sync (agents-protocol.md §2.5): `paths` [{path, read_only}], a path ending in `*` a prefix; none: everything

  private syncRule(path: string): { read_only: boolean } | null {
    const paths = this.section("sync").paths;
    if (paths === undefined || paths === null) return { read_only: false };
    if (!Array.isArray(paths)) throw denied("the token's api.sync.paths grant is malformed");
    for (const p of paths) {
      if (!p || typeof p !== "object" || typeof (p as { path?: unknown }).path !== "string") continue;
      const g = (p as { path: string }).path.replace(/^(\.\/|\/)+/, "");
      const match = g.endsWith("*") ? path.startsWith(g.slice(0, -1)) : path === g;
      if (match) return { read_only: (p as { read_only?: unknown }).read_only === true };
    }
    return null;
  }

  /** sync.open: reading the document at `path`. */
  syncRead(path: string) {
    if (!this.syncRule(path)) throw denied(`the token may not open the document "${path}"`);
  }

  /** Whether the participant may change the document at `path` (sync chunks, create). */
  canSyncWrite(path: string): boolean {
    const r = this.syncRule(path);
    return !!r && !r.read_only;
  }

  syncWrite(path: string) {
    if (!this.canSyncWrite(path)) throw denied(`the document "${path}" is read-only for this token`);
  }

  // ---- agents (agents-protocol.md §1.6): AgentsGrant reads snake_case and camelCase keys; a missing key is true

  private agentsFlag(key: string, camel: string): boolean {
    const s = this.section("agents");
    const v = s[key] ?? s[camel];
    return v !== false;
  }

  /** room.register_toolkit: register_public_toolkit / register_private_toolkit. */
  agentsRegister(isPublic: boolean) {
    if (isPublic && !this.agentsFlag("register_public_toolkit", "registerPublicToolkit"))
      throw denied("the token may not register public toolkits (api.agents.register_public_toolkit is false)");
    if (!isPublic && !this.agentsFlag("register_private_toolkit", "registerPrivateToolkit"))
      throw denied("the token may not register private toolkits (api.agents.register_private_toolkit is false)");
  }

  /** room.list_toolkits and routed invokes: use_tools. */
  agentsUseTools() {
    if (!this.agentsFlag("use_tools", "useTools")) throw denied("the token may not use toolkits (api.agents.use_tools is false)");
  }

  /** allowed_toolkits: absent allows every toolkit; a list allows the toolkits it names. */
  agentsToolkitAllowed(toolkit: string): boolean {
    const s = this.section("agents");
    const list = s.allowed_toolkits ?? s.allowedToolkits;
    if (list === undefined || list === null) return true;
    if (!Array.isArray(list)) throw denied("the token's api.agents.allowed_toolkits grant is malformed");
    return list.includes(toolkit);
  }

  /** A routed invoke: use_tools and allowed_toolkits. */
  agentsInvoke(toolkit: string) {
    this.agentsUseTools();
    if (!this.agentsToolkitAllowed(toolkit))
      throw denied(`the token may not call toolkit ${JSON.stringify(toolkit.slice(0, 100))} (not in api.agents.allowed_toolkits)`);
  }

  /** room.call: call. */
  agentsCall() {
    if (!this.agentsFlag("call", "call")) throw denied("the token may not use room.call (api.agents.call is false)");
  }
}

function normalizeGrantPath(p: string): string {
  let s = p;
  for (;;) {
    const t = s.replace(/^\/+/, "").replace(/^\.\/+/, "");
    if (t === s) break;
    s = t;
  }
  return s;
}

/**
 * A room storage path, normalized: leading `/` and `./` stripped, repeated slashes collapsed, no `.`/`..` segments,
 * no NUL or backslash. "" is the room root. Throws STORAGE_INVALID_PATH.
 */
export function normalizePath(raw: unknown, field = "path", allowRoot = true): string {
  if (typeof raw !== "string") throw new ToolError(`${field} must be a string`, ErrorCode.STORAGE_INVALID_PATH);
  // eslint-disable-next-line no-control-regex -- a NUL in a path is refused
  if (/[\u0000\\]/.test(raw)) throw new ToolError(`${field} must not contain NUL or backslash`, ErrorCode.STORAGE_INVALID_PATH);
  const segs = raw.split("/").filter((s) => s !== "" && s !== ".");
  if (segs.some((s) => s === "..")) throw new ToolError(`${field} must not contain ".."`, ErrorCode.STORAGE_INVALID_PATH);
  if (segs.some((s) => s.length > 255)) throw new ToolError(`${field} has a segment longer than 255 characters`, ErrorCode.STORAGE_INVALID_PATH);
  const p = segs.join("/");
  if (!p && !allowRoot) throw new ToolError(`${field} must name a file, not the room root`, ErrorCode.STORAGE_INVALID_PATH);
  if (p.length > 4096) throw new ToolError(`${field} is longer than 4096 characters`, ErrorCode.STORAGE_INVALID_PATH);
  return p;
}
