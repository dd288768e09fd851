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
  require(toolkit: "queues" | "messaging" | "storage") {
    this.section(toolkit);
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
