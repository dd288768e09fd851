import { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { check } from "../../core/strict.js";
import { KeyedSerial } from "../../core/serial.js";
import type { Connection, Toolkit, ToolCall, ToolStream } from "../../room-server/connection.js";
import { binary, control, denied, empty, ErrorCode, invalid, json, ToolError, type Content } from "../../room-server/protocol.js";
import type { ActiveRoom } from "../../room-server/room.js";
import { normalizePath, type RoomScope } from "../../room-server/scope.js";
import type { RoomRef, RoomStorage } from "../../room-server/storage.js";
import type { ServiceRecord, ServicesService } from "../../services/service.js";
import { ContainerMountSchema, type ContainerMountSpec, type ContainerSpec } from "../../services/spec.js";
import { LABEL, RuntimeError, type ContainerRuntime, type ContainerSummary, type ExecSession, type ImageInfo, type RegistryAuth } from "../../runtime/index.js";
import { serviceIdentity, type ServiceHost } from "../host.js";
import { commandArgv, freePort, LaunchError, redactText, type Launcher, type LaunchTarget, type Prepared } from "../launch.js";

/** Labels this toolkit adds to its containers (next to the managed ones of src/runtime/labels.ts). */
export const CONTAINER_LABEL = {
  /** The participant (connection id) that started it: a private container is visible to that participant only. */
  startedById: "meshagent.started_by.id",
  startedByName: "meshagent.started_by.name",
  /** "1" (the default) or "0": visible to everyone in the room. */
  private: "meshagent.private",
  /** The `name` given to `run`: a label, not the engine's container name (those are unique per engine, across rooms). */
  name: "meshagent.name",
  /** The container ports given to `run` (comma-separated); containers use the host's network, nothing is mapped. */
  ports: "meshagent.ports",
} as const;

export interface ContainersDeps {
  /** The container runtime, or null when this server has none. */
  runtime: () => ContainerRuntime | null;
  /** Why there is no runtime (RuntimeAvailability's reason). */
  reason: () => string;
  launcher: Pick<Launcher, "prepare">;
  services: Pick<ServicesService, "records">;
  host: Pick<ServiceHost, "projectContainers" | "recordUsage" | "onRoomEnded">;
  /** Room storage: where `load_image` / `save_image` / `load` read and write their archives. */
  storage: RoomStorage;
  /** MESHAGENT_CONTAINER_MAX_PER_PROJECT */
  maxContainersPerProject: number;
  nodeId: () => string;
  log?: { warn(obj: object, msg: string): void };
}

/** What this process knows of a container it started in a session (beyond its labels). */
interface Run {
  prepared: Prepared | null;
  /** When it started (ms; container-seconds are metered from here). */
  from: number;
  /** Values never shown in its logs (the minted token, secrets). */
  redact: string[];
}

const MAX_ID = 128;
const MAX_TEXT = 4096;
const MAX_LIST = 256;
const READ_CHUNK = 1024 * 1024;
/** After `kill` (the exec connection is dropped), how long the command has to exit before the stream ends without a status. */
const KILL_GRACE_MS = 2000;
/** Session end: SIGTERM, then SIGKILL after this many seconds. */
const END_STOP_SECONDS = 2;

const notFound = (id: string) => new ToolError(`no container ${JSON.stringify(id.slice(0, MAX_ID))} in this room`, ErrorCode.CONTAINER_NOT_FOUND);
const unsupported = (tool: string, why: string) => new ToolError(`not supported by this server: containers.${tool} (${why})`, ErrorCode.INVALID_REQUEST);

/** A failure as a ToolError the client can read: runtime and launch errors carry the engine's (or launcher's) words. */
function toolError(e: unknown, notFoundCode: number = ErrorCode.NOT_FOUND): unknown {
  if (e instanceof ToolError) return e;
  if (e instanceof LaunchError) return new ToolError(e.message, ErrorCode.INVALID_REQUEST);
  if (e instanceof RuntimeError) {
    const code =
      e.code === "not_found"
        ? notFoundCode
        : e.code === "invalid"
          ? ErrorCode.INVALID_REQUEST
          : e.code === "conflict"
            ? ErrorCode.CONFLICT
            : ErrorCode.OPERATION_FAILED;
    return new ToolError(e.message, code);
  }
  return e;
}

// ---------------------------------------------------------------------------------------------------------------
// arguments

function optStr(args: Record<string, unknown>, key: string, max = MAX_TEXT): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(`${key} must be a string`);
  if (v.length > max) throw invalid(`${key} must be at most ${max} characters`);
  // eslint-disable-next-line no-control-regex -- a NUL cannot reach the engine
  if (/\u0000/.test(v)) throw invalid(`${key} must not contain NUL`);
  return v;
}

function reqStr(args: Record<string, unknown>, key: string, max = MAX_TEXT): string {
  const v = optStr(args, key, max);
  if (v === undefined || !v.trim()) throw invalid(`${key} must be a non-empty string`);
  return v;
}

function optBool(args: Record<string, unknown>, key: string): boolean | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw invalid(`${key} must be a boolean`);
  return v;
}

function list(args: Record<string, unknown>, key: string): unknown[] {
  const v = args[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(`${key} must be a list`);
  if (v.length > MAX_LIST) throw invalid(`${key} must have at most ${MAX_LIST} entries`);
  return v;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** `[{key, value}]` (what the client sends; a plain object is accepted too). */
function envArg(args: Record<string, unknown>, key = "env"): Record<string, string> {
  const raw = args[key];
  const pairs: [unknown, unknown][] = isObj(raw) ? Object.entries(raw) : list(args, key).map((e) => (isObj(e) ? [e.key, e.value] : [undefined, undefined]));
  const env: Record<string, string> = {};
  for (const [i, [k, v]] of pairs.entries()) {
    // eslint-disable-next-line no-control-regex -- NUL and "=" cannot be in a variable's name
    if (typeof k !== "string" || !k || k.length > 1024 || /[=\u0000]/.test(k)) throw invalid(`${key}[${i}].key must be a variable name (no "=")`);
    // eslint-disable-next-line no-control-regex -- nor NUL in its value
    if (typeof v !== "string" || v.length > 128 * 1024 || /\u0000/.test(v)) throw invalid(`${key}[${i}].value must be a string`);
    env[k] = v;
  }
  return env;
}

interface Credential {
  registry: string | null;
  username: string;
  password: string;
}

function credentialsArg(args: Record<string, unknown>): Credential[] {
  return list(args, "credentials").map((c, i) => {
    if (!isObj(c)) throw invalid(`credentials[${i}] must be an object {registry, username, password}`);
    const r = c.registry;
    if (r !== undefined && r !== null && typeof r !== "string") throw invalid(`credentials[${i}].registry must be a string or null`);
    if (typeof c.username !== "string" || typeof c.password !== "string") throw invalid(`credentials[${i}] needs string username and password`);
    return { registry: r ? r : null, username: c.username, password: c.password };
  });
}

/** The registry host of an image reference ("docker.io" for Docker Hub names). */
function registryOf(image: string): string {
  const first = image.split("/")[0];
  return image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost") ? first.toLowerCase() : "docker.io";
}

function normRegistry(r: string): string {
  const host = r
    .replace(/^[a-z]+:\/\//i, "")
    .split("/")[0]
    .toLowerCase();
  return host === "index.docker.io" || host === "registry-1.docker.io" ? "docker.io" : host;
}

/** The credentials for pulling `image`: the entry for its registry, else one without a registry; never another registry's. */
function authFor(image: string, creds: Credential[]): RegistryAuth | undefined {
  const host = registryOf(image);
  const c = creds.find((x) => x.registry && normRegistry(x.registry) === host) ?? creds.find((x) => !x.registry);
  return c ? { username: c.username, password: c.password, serverAddress: c.registry ?? undefined } : undefined;
}

function containerIdArg(v: unknown, key = "container_id"): string {
  if (typeof v !== "string" || !v) throw invalid(`${key} must be a non-empty string`);
  if (v.length > MAX_ID) throw notFound(v);
  return v;
}

/** The exec command: a string (split like a shell would, or run by /bin/sh -c for shell syntax) or an argv list. */
function commandOf(v: unknown): string[] {
  if (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === "string")) return v as string[];
  if (typeof v === "string" && v.length <= MAX_TEXT) {
    const argv = commandArgv(v);
    if (argv) return argv;
  }
  throw invalid("command must be a non-empty string (or a list of strings)");
}

const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : undefined);

function imageJson(i: ImageInfo) {
  return { id: i.id, references: i.tags, labels: i.labels, ...(iso(i.createdAt) ? { created_at: iso(i.createdAt) } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// visibility

const kindOf = (c: ContainerSummary) => c.labels[LABEL.kind];

/** The room's service containers are everyone's to see; the toolkit's are the starter's unless started with private false. */
function visible(call: ToolCall, c: ContainerSummary): boolean {
  const kind = kindOf(c);
  if (kind === "service") return true;
  if (kind !== "container") return false;
  return c.labels[CONTAINER_LABEL.private] === "0" || c.labels[CONTAINER_LABEL.startedById] === call.conn.id;
}

/** A service's container runs with the service's own token and secrets: its output and a shell in it are for admins. */
function guardService(scope: RoomScope, c: ContainerSummary, what: string) {
  if (kindOf(c) === "service" && !scope.isAdmin())
    throw denied(`${what} of a service's container needs the admin section (its output is in the developer logs, redacted)`);
}

/** The room's service containers are the service runtime's: services.restart restarts one. */
function refuseService(c: ContainerSummary, what: string) {
  if (kindOf(c) === "service")
    throw new ToolError(
      `cannot ${what} container ${c.id.slice(0, 12)}: it belongs to service ${JSON.stringify(c.labels[LABEL.service] ?? "")}; use services.restart`,
      ErrorCode.INVALID_REQUEST,
    );
}

function portsOf(c: ContainerSummary): number[] {
  const raw = c.labels[CONTAINER_LABEL.ports];
  if (!raw) return [];
  return raw
    .split(",")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0 && n < 65536);
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * The room `containers` toolkit, as the official 0.39.9 ContainersClient calls it: containers a participant starts in
 * the room (`run`, or `run_service` for one of the room's services), their output (`logs`, streamed), commands in them
 * (`exec`, streamed stdin/stdout/stderr and the exit status), stop / wait / delete, and the engine's images (list,
 * inspect, pull, delete, and load/save through archives in room storage).
 *
 * Confinement: a tool that names a container finds it among the containers labelled with this room (managed, kind
 * `container` or `service`) and visible to the caller; anything else, another room's or another participant's
 * private one, is CONTAINER_NOT_FOUND, exactly like an id that does not exist. A container runs with the server's
 * environment for the official client (launch.ts): a token for `participant_name` (default: the caller's name) with
 * the caller's own ApiScope (never more), host networking, the settings' limits. Room storage mounts need the
 * caller's storage rights on the subpath (read, or write unless read-only); project storage mounts the admin section.
 *
 * The toolkit's containers belong to the session: when it ends they are stopped and removed, and each container's
 * running time is metered (`usage.recorded`, usage_type "container") when it is deleted or removed with the session.
 * Every tool needs the `containers` section (`use_containers` not false); `logs` needs `logs`, pulling an image the
 * `pull` list, starting one the `run` list. The registry sub-grant is not enforced: this server has no registry.
 * Builds and pushes answer "not supported". Without a container runtime every tool answers why there is none.
 */
export function containersToolkit(deps: ContainersDeps): Toolkit {
  const runs = new WeakMap<ActiveRoom<Connection>, Map<string, Run>>();
  const runsOf = (room: ActiveRoom<Connection>) => {
    let m = runs.get(room);
    if (!m) runs.set(room, (m = new Map()));
    return m;
  };
  // The per-project limit is checked and the container created one at a time per project (in this process).
  const serial = new KeyedSerial();

  const runtimeOr = (): ContainerRuntime => {
    const rt = deps.runtime();
    if (rt) return rt;
    const why = deps.reason() || "the container runtime is not available";
    throw new ToolError(/^no container runtime/i.test(why) ? why : `no container runtime: ${why}`, ErrorCode.OPERATION_FAILED);
  };

  const roomRef = (call: ToolCall): RoomRef => ({ projectId: call.room.room.project_id, roomId: call.room.id, participantId: call.conn.id });

  /** The container `raw` names (its id, or a unique prefix of 12+ characters) among those of the room the caller sees. */
  async function locate(call: ToolCall, rt: ContainerRuntime, raw: unknown): Promise<ContainerSummary> {
    const id = containerIdArg(raw);
    const mine = (await rt.list({ [LABEL.managed]: "1", [LABEL.room]: call.room.id })).filter((c) => visible(call, c));
    const exact = mine.find((c) => c.id === id);
    const hits = exact ? [exact] : id.length >= 12 ? mine.filter((c) => c.id.startsWith(id)) : [];
    if (hits.length !== 1) throw notFound(id);
    return hits[0];
  }

  /** Meter a container that is gone now (or going) and drop what was made for it. */
  async function retire(
    room: ActiveRoom<Connection>,
    id: string,
    run: Run | undefined,
    state: { startedAt: number | null; finishedAt: number | null; createdAt: number } | null,
  ) {
    const to = state?.finishedAt ?? Date.now();
    const from = run?.from ?? state?.startedAt ?? state?.createdAt ?? to;
    await deps.host.recordUsage(room.room.project_id, {
      room_id: room.id,
      room_name: room.room.name,
      session_id: room.session.id,
      container_id: id,
      from,
      to: Math.max(from, to),
    });
    await run?.prepared?.cleanup().catch(() => {});
  }

  /** Remove one of the session's containers (force), meter it and clean up after it. */
  async function teardown(rt: ContainerRuntime, room: ActiveRoom<Connection>, id: string, opts: { stopFirst: boolean }) {
    const m = runs.get(room);
    const run = m?.get(id);
    m?.delete(id);
    if (opts.stopFirst) await rt.stop(id, { timeoutSeconds: END_STOP_SECONDS }).catch(() => {});
    const state = await rt.inspect(id).catch(() => null);
    try {
      await rt.remove(id, { force: true });
    } finally {
      await retire(room, id, run, state);
    }
  }

  // The session's containers go with it.
  deps.host.onRoomEnded(async (active) => {
    const m = runs.get(active);
    const rt = deps.runtime();
    if (!rt) {
      for (const r of m?.values() ?? []) await r.prepared?.cleanup().catch(() => {});
      runs.delete(active);
      return;
    }
    const labelled = await rt
      .list({ [LABEL.managed]: "1", [LABEL.kind]: "container", [LABEL.room]: active.id, [LABEL.session]: active.session.id })
      .catch(() => [] as ContainerSummary[]);
    const ids = new Set([...labelled.map((c) => c.id), ...(m?.keys() ?? [])]);
    await Promise.all(
      [...ids].map((id) =>
        teardown(rt, active, id, { stopFirst: true }).catch((e) =>
          deps.log?.warn({ err: e, container: id }, "could not remove a container of an ended session"),
        ),
      ),
    );
    runs.delete(active);
  });

  interface LaunchOpts {
    spec: ContainerSpec;
    identity: string;
    role?: string;
    api?: Record<string, unknown>;
    roomSecrets?: boolean;
    env: Record<string, string>;
    files?: LaunchTarget["files"];
    serviceId?: string;
    private: boolean;
    name?: string;
    ports: number[];
    /** Pull credentials given by the caller (else the spec's pull_secret). */
    auth?: RegistryAuth;
  }

  /**
   * Prepare the container (token, files, mounts), pull its image when it is missing, then, within the project's
   * limit, start it. The limit is checked and the container created one at a time per project (in this process);
   * pulls run outside of that.
   */
  async function launch(call: ToolCall, rt: ContainerRuntime, o: LaunchOpts): Promise<string> {
    const room = call.room;
    const projectId = room.room.project_id;
    const scope = call.conn.scope;
    scope.containersRun(o.spec.image);
    const limit = async () => {
      if ((await deps.host.projectContainers(projectId)) >= deps.maxContainersPerProject)
        throw new ToolError(
          `limit: the project already has ${deps.maxContainersPerProject} containers running (MESHAGENT_CONTAINER_MAX_PER_PROJECT)`,
          ErrorCode.INVALID_STATE,
        );
    };
    // Refused early when the project is at its limit already (no token minted, no pull).
    await limit();
    const labels: Record<string, string> = {
      [CONTAINER_LABEL.startedById]: call.conn.id,
      [CONTAINER_LABEL.startedByName]: call.conn.name,
      [CONTAINER_LABEL.private]: o.private ? "1" : "0",
    };
    if (o.name) labels[CONTAINER_LABEL.name] = o.name;
    if (o.ports.length) labels[CONTAINER_LABEL.ports] = o.ports.join(",");
    const prepared = await deps.launcher.prepare(o.spec, {
      projectId,
      room: { id: room.id, name: room.room.name },
      identity: o.identity,
      role: o.role,
      api: o.api,
      roomSecrets: o.roomSecrets,
      env: o.env,
      files: o.files,
      labels,
      owner: { kind: "container", projectId, roomId: room.id, sessionId: room.session.id, serviceId: o.serviceId, server: deps.nodeId() },
    });
    let id: string;
    try {
      if (!(await rt.inspectImage(o.spec.image))) {
        scope.containersPull(o.spec.image);
        await rt.pullImage(o.spec.image, { auth: o.auth ?? prepared.auth, signal: call.conn.abort.signal });
      }
      id = await serial.run(projectId, async () => {
        await limit();
        return (await rt.run(prepared.create)).id;
      });
    } catch (e) {
      await prepared.cleanup();
      throw e;
    }
    runsOf(room).set(id, { prepared, from: Date.now(), redact: prepared.redact });
    if (room.closing) {
      // The session ended while the container was being made: it goes at once.
      await teardown(rt, room, id, { stopFirst: false }).catch(() => {});
      throw new ToolError("the room's session ended", ErrorCode.INVALID_STATE);
    }
    return id;
  }

  /** Room and project storage mounts: the caller's own rights on them. */
  function checkMounts(scope: RoomScope, m: ContainerMountSpec) {
    for (const [i, r] of (m.room ?? []).entries()) {
      const sub = normalizePath(r.subpath ?? "", `mounts.room[${i}].subpath`);
      const probe = sub ? `${sub}/` : "";
      if (r.read_only) scope.storageRead(probe);
      else scope.storageWrite(probe);
    }
    if ((m.project ?? []).length && !scope.isAdmin()) throw denied("mounting project storage into a container needs the admin section");
  }

  /** `mounts` (ContainerMountSpec) as the ServiceSpec models have it; null values dropped. */
  function mountsArg(v: unknown, path: string): ContainerMountSpec {
    if (v === undefined || v === null) return {};
    return check(ContainerMountSchema, v, path) as ContainerMountSpec;
  }

  /**
   * Where an archive is in room storage. With `mounts` (the client's ContainerMountSpec list) `archive_path` is a path
   * inside the container they describe, and must lie under one of their room mounts (`path` → `subpath`); without
   * mounts it is a room storage path.
   */
  function archivePath(call: ToolCall, write: boolean): string {
    const raw = reqStr(call.args, "archive_path");
    const mounts = list(call.args, "mounts").map((m, i) => mountsArg(m, `mounts[${i}]`));
    let path: string | null = null;
    if (!mounts.length) path = normalizePath(raw, "archive_path", false);
    else {
      for (const m of mounts) {
        for (const r of m.room ?? []) {
          const base = r.path.replace(/\/+$/, "");
          if (raw.startsWith(`${base}/`)) {
            if (write && r.read_only) throw invalid(`archive_path ${JSON.stringify(raw)} is in a read-only mount`);
            path = normalizePath(`${r.subpath ?? ""}/${raw.slice(base.length + 1)}`, "archive_path", false);
            break;
          }
        }
        if (path !== null) break;
        if ((m.project ?? []).some((p) => raw.startsWith(`${p.path.replace(/\/+$/, "")}/`)))
          throw unsupported(
            write ? "save_image" : "load_image",
            "archives are read and written in room storage; project storage mounts are not reachable here",
          );
      }
      if (path === null) throw invalid(`archive_path ${JSON.stringify(raw.slice(0, 200))} is not inside any room storage mount of mounts`);
    }
    if (write) call.conn.scope.storageWrite(path);
    else call.conn.scope.storageRead(path);
    return path;
  }

  /** Load the image tarball at `path` of room storage; the references it loaded. */
  async function loadFrom(call: ToolCall, rt: ContainerRuntime, path: string): Promise<string[]> {
    const file = await deps.storage.openRead(roomRef(call), path);
    try {
      const chunks = async function* () {
        let offset = 0;
        while (offset < file.size) {
          const data = await file.read(offset, Math.min(READ_CHUNK, file.size - offset));
          if (data.length === 0) throw new ToolError("the archive changed while it was read", ErrorCode.OPERATION_FAILED);
          offset += data.length;
          yield data;
        }
      };
      const refs = await rt.loadImage(Readable.from(chunks()));
      if (!refs.length) throw new ToolError(`${path} held no image the engine could load`, ErrorCode.INVALID_REQUEST);
      return refs;
    } finally {
      await file.close().catch(() => {});
    }
  }

  const tool =
    (fn: (call: ToolCall, rt: ContainerRuntime) => Promise<Content>, notFoundCode: number = ErrorCode.NOT_FOUND) =>
    async (call: ToolCall): Promise<Content> => {
      try {
        call.conn.scope.containersRequire();
        return await fn(call, runtimeOr());
      } catch (e) {
        throw toolError(e, notFoundCode);
      }
    };

  const notSupported = (name: string, why: string) => async (): Promise<Content> => {
    throw unsupported(name, why);
  };
  const NO_BUILDS = "this server builds no images; build elsewhere and load_image or pull_image the result";

  /** A failure on a stream: an error chunk, then close (the client reads the error as RoomServerException). */
  const failOn = (call: ToolCall, out: (c: Content) => void, e: unknown, what: string) => {
    out(call.conn.errorFor(toolError(e, ErrorCode.CONTAINER_NOT_FOUND), what));
    out(control("close"));
  };

  return {
    tools: {
      run: tool(async (call, rt) => {
        const a = call.args;
        const image = reqStr(a, "image", 1024);
        const storage = mountsArg(a.mounts, "mounts");
        const mountPath = optStr(a, "mount_path", 1024);
        const mountSubpath = optStr(a, "mount_subpath", 1024);
        if (mountSubpath !== undefined && !mountPath) throw invalid("mount_subpath needs mount_path");
        if (mountPath) storage.room = [...(storage.room ?? []), { path: mountPath, ...(mountSubpath ? { subpath: mountSubpath } : {}) }];
        checkMounts(call.conn.scope, storage);
        const role = optStr(a, "role") ?? "agent";
        if (role !== "user" && role !== "agent" && role !== "tool") throw invalid('role must be "user", "agent" or "tool"');
        const identity = optStr(a, "participant_name", 256) ?? call.conn.name;
        if (!identity.trim()) throw invalid("participant_name must be a non-empty string");
        const ports = list(a, "ports").map((p, i) => {
          const cp = isObj(p) ? p.container_port : undefined;
          const hp = isObj(p) ? p.host_port : undefined;
          if (typeof cp !== "number" || !Number.isInteger(cp) || cp < 1 || cp > 65535) throw invalid(`ports[${i}].container_port must be a port number`);
          if (hp !== undefined && hp !== null && (typeof hp !== "number" || !Number.isInteger(hp) || hp < 1 || hp > 65535))
            throw invalid(`ports[${i}].host_port must be a port number`);
          return cp;
        });
        const name = optStr(a, "name", 256);
        const writableRootFs = optBool(a, "writable_root_fs");
        const spec: ContainerSpec = {
          image,
          ...(optStr(a, "command") !== undefined ? { command: optStr(a, "command") } : {}),
          ...(optStr(a, "working_dir", 1024) ? { working_dir: optStr(a, "working_dir", 1024) } : {}),
          ...(Object.keys(storage).length ? { storage } : {}),
          ...(writableRootFs !== undefined ? { writable_root_fs: writableRootFs } : {}),
        };
        const id = await launch(call, rt, {
          spec,
          identity,
          role,
          api: call.conn.scope.apiGrant(),
          env: envArg(a),
          private: optBool(a, "private") ?? true,
          name,
          ports,
          auth: authFor(image, credentialsArg(a)),
        });
        return json({ container_id: id });
      }),

      run_service: tool(async (call, rt) => {
        const serviceId = reqStr(call.args, "service_id", 256);
        const env = envArg(call.args);
        const room = call.room.room;
        const records = [...(await deps.services.records(room.project_id, null)), ...(await deps.services.records(room.project_id, room.name))];
        const rec = records.find((r) => r.id === serviceId);
        if (!rec) throw new ToolError(`no service ${JSON.stringify(serviceId.slice(0, 100))} in this room`, ErrorCode.SERVICE_NOT_FOUND);
        const container = rec.spec.container;
        if (!container) throw new ToolError(`service ${JSON.stringify(rec.name)} has no container to run`, ErrorCode.INVALID_REQUEST);
        const { identity, api } = serviceIdentity(rec.spec);
        const ports = await Promise.all((rec.spec.ports ?? []).map(async (p) => (p.num === undefined || p.num === "*" ? await freePort() : p.num)));
        const id = await launch(call, rt, {
          spec: container,
          identity,
          api,
          roomSecrets: rec.roomId !== null,
          env: { ...(ports.length ? { MESHAGENT_PORT: String(ports[0]) } : {}), ...env },
          files: rec.spec.files,
          serviceId: rec.id,
          private: container.private ?? true,
          name: rec.name,
          ports,
        });
        return json({ container_id: id });
      }),

      list_containers: tool(async (call, rt) => {
        const all = optBool(call.args, "all") ?? false;
        const found = (await rt.list({ [LABEL.managed]: "1", [LABEL.room]: call.room.id })).filter((c) => visible(call, c) && (all || c.status === "running"));
        let services = new Map<string, ServiceRecord>();
        if (found.some((c) => kindOf(c) === "service")) {
          const room = call.room.room;
          const records = [...(await deps.services.records(room.project_id, null)), ...(await deps.services.records(room.project_id, room.name))];
          services = new Map(records.map((r) => [r.id, r]));
        }
        const containers = found.map((c) => {
          const serviceId = c.labels[LABEL.service];
          if (kindOf(c) === "service") {
            const rec = serviceId ? services.get(serviceId) : undefined;
            const ports = (rec?.spec.ports ?? []).map((p) => p.num).filter((n): n is number => typeof n === "number");
            return {
              id: c.id,
              image: c.image,
              ...(rec ? { name: rec.name } : {}),
              ports,
              started_by: { id: "server", name: rec?.name ?? "service" },
              state: c.status,
              private: false,
              ...(serviceId ? { service_id: serviceId } : {}),
            };
          }
          const name = c.labels[CONTAINER_LABEL.name];
          return {
            id: c.id,
            image: c.image,
            ...(name ? { name } : {}),
            ports: portsOf(c),
            started_by: { id: c.labels[CONTAINER_LABEL.startedById] ?? "", name: c.labels[CONTAINER_LABEL.startedByName] ?? "" },
            state: c.status,
            private: c.labels[CONTAINER_LABEL.private] !== "0",
            ...(serviceId ? { service_id: serviceId } : {}),
          };
        });
        return json({ containers });
      }),

      stop_container: tool(async (call, rt) => {
        const c = await locate(call, rt, call.args.container_id);
        refuseService(c, "stop");
        const force = optBool(call.args, "force") ?? false;
        await rt.stop(c.id, { timeoutSeconds: force ? 0 : 10 });
        return empty();
      }, ErrorCode.CONTAINER_NOT_FOUND),

      wait_for_exit: tool(async (call, rt) => {
        const c = await locate(call, rt, call.args.container_id);
        const { exitCode } = await rt.wait(c.id, { signal: call.conn.abort.signal });
        return json({ exit_code: exitCode });
      }, ErrorCode.CONTAINER_NOT_FOUND),

      delete_container: tool(async (call, rt) => {
        const c = await locate(call, rt, call.args.container_id);
        refuseService(c, "delete");
        await teardown(rt, call.room, c.id, { stopFirst: false });
        return empty();
      }, ErrorCode.CONTAINER_NOT_FOUND),

      list_images: tool(async (_call, rt) => json({ images: (await rt.listImages()).map(imageJson) })),

      inspect_image: tool(async (call, rt) => {
        const ref = reqStr(call.args, "image_id", 1024);
        const i = await rt.inspectImage(ref);
        if (!i) throw new ToolError(`no image ${JSON.stringify(ref.slice(0, 200))}`, ErrorCode.NOT_FOUND);
        // The Docker engine shows an image by its config digest (the image id); manifests and layers of the
        // registry's view are not part of what it keeps for a local image.
        return json({
          image: imageJson(i),
          target: { digest: i.id, size: i.size, annotations: {} },
          manifests: [],
          layers: [],
          content_size: i.size,
        });
      }),

      pull_image: tool(async (call, rt) => {
        const tag = reqStr(call.args, "tag", 1024);
        call.conn.scope.containersPull(tag);
        await rt.pullImage(tag, { auth: authFor(tag, credentialsArg(call.args)), signal: call.conn.abort.signal });
        return empty();
      }),

      delete_image: tool(async (call, rt) => {
        const ref = reqStr(call.args, "image", 1024);
        await rt.removeImage(ref);
        return empty();
      }),

      // load_image / save_image: the official server runs a helper container with `mounts` that loads or saves the
      // archive, and answers that container's id. Here the server streams the archive between room storage and the
      // engine itself and is done when it answers, so there is no container: `container_id` carries what the
      // operation produced instead (the first reference loaded; the tag saved). `private` has no meaning for an
      // image in this engine and is ignored.
      load_image: tool(async (call, rt) => {
        const path = archivePath(call, false);
        const refs = await loadFrom(call, rt, path);
        return json({ container_id: refs[0] });
      }),

      save_image: tool(async (call, rt) => {
        const tag = reqStr(call.args, "tag", 1024);
        const path = archivePath(call, true);
        const release = deps.storage.uploadSlot(roomRef(call));
        try {
          const tar = await rt.saveImage([tag]);
          const w = await deps.storage.createWriter(roomRef(call), path, {
            overwrite: true,
            name: path.slice(path.lastIndexOf("/") + 1),
            mimeType: "application/x-tar",
          });
          try {
            for await (const chunk of tar) await w.write(Buffer.from(chunk as Buffer));
            await w.commit();
          } catch (e) {
            tar.destroy();
            await w.abort().catch(() => {});
            throw e;
          }
        } finally {
          release();
        }
        return json({ container_id: tag });
      }),

      load: tool(async (call, rt) => {
        const path = normalizePath(reqStr(call.args, "archive_path"), "archive_path", false);
        call.conn.scope.storageRead(path);
        const refs = await loadFrom(call, rt, path);
        return json({ resolved_ref: refs[0], refs });
      }),

      list_builds: notSupported("list_builds", NO_BUILDS),
      cancel_build: notSupported("cancel_build", NO_BUILDS),
      delete_build: notSupported("delete_build", NO_BUILDS),
      push_image: notSupported("push_image", "this server has no image registry"),
    },

    streams: {
      exec(call, out): ToolStream {
        call.conn.scope.containersRequire();
        const rt = runtimeOr();
        let session: ExecSession | null = null;
        let started = false;
        let done = false;
        let killed = false;
        const finish = (...cs: Content[]) => {
          if (done) return;
          done = true;
          for (const c of cs) out(c);
        };
        const fail = (e: unknown) => {
          if (done) return;
          done = true;
          session?.close();
          failOn(call, out, e, "containers.exec");
        };
        const endStdin = () => {
          const w = session?.stdin;
          if (w && !w.writableEnded && !w.destroyed) w.end();
        };
        const pump = async (s: ExecSession) => {
          try {
            try {
              for await (const o of s.output) {
                if (done) return;
                out(binary({ channel: o.stream === "stdout" ? 1 : 2 }, o.data));
              }
            } catch (e) {
              // After a kill the dropped connection ends the output early; the command may still exit in time.
              if (!killed) throw e;
            }
            if (done) return;
            let timer: NodeJS.Timeout | undefined;
            const r = await (killed
              ? Promise.race([s.wait(), new Promise<null>((res) => (timer = setTimeout(() => res(null), KILL_GRACE_MS)))]).finally(() => clearTimeout(timer))
              : s.wait());
            if (!r)
              throw new ToolError("the exec was killed: its connection was dropped and the command may still run in the container", ErrorCode.OPERATION_FAILED);
            finish(binary({ channel: 3 }, Buffer.from(JSON.stringify({ status: r.exitCode }))), control("close"));
          } catch (e) {
            fail(e);
          }
        };
        return {
          async chunk(c) {
            if (done) return;
            if (!started) {
              if (c.type === "control") {
                if (c.method === "close") finish(control("close"));
                return;
              }
              started = true;
              try {
                if (c.type !== "binary" || c.headers.kind !== "start") throw invalid("an exec starts with a binary chunk of kind start");
                const target = await locate(call, rt, c.headers.container_id);
                guardService(call.conn.scope, target, "exec");
                // No TTY: the output is the command's stdout and stderr apart (`tty` is not supported and ignored).
                const s = await rt.exec(target.id, { command: commandOf(c.headers.command), stdin: true });
                s.stdin?.on("error", () => {});
                if (done) {
                  s.close();
                  return;
                }
                session = s;
                void pump(s);
              } catch (e) {
                fail(e);
              }
              return;
            }
            if (!session) return;
            if (c.type === "control") {
              // The client closed its input (ExecSession.stop): end of the command's stdin.
              if (c.method === "close") endStdin();
              return;
            }
            if (c.type !== "binary" || c.headers.kind !== "input") return;
            const channel = c.headers.channel;
            if (channel === 1) {
              const w = session.stdin;
              if (w && !w.writableEnded && !w.destroyed && c.data.length) await new Promise<void>((res) => w.write(c.data, () => res()));
            } else if (channel === 5) {
              // kill: the engine cannot signal an exec'd process; drop the connection (stdin ends, output stops).
              killed = true;
              endStdin();
              session.close();
            }
            // channel 4 (resize) means nothing without a TTY.
          },
          async abort() {
            done = true;
            session?.close();
          },
        };
      },

      logs(call, out): ToolStream {
        call.conn.scope.containersLogs();
        const rt = runtimeOr();
        const abort = new AbortController();
        let started = false;
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          out(control("close"));
        };
        const pump = async (id: string, follow: boolean, redact: string[]) => {
          // Both streams on channel 1, as text (the client decodes UTF-8 strictly): a character split between two
          // chunks waits for its second half.
          const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
          const emit = (text: string) => {
            if (text && !done) out(binary({ channel: 1 }, Buffer.from(redactText(text, redact), "utf8")));
          };
          try {
            for await (const o of rt.logs(id, { follow, signal: abort.signal })) {
              if (done) return;
              emit(decoders[o.stream].write(o.data));
            }
            emit(decoders.stdout.end());
            emit(decoders.stderr.end());
            finish();
          } catch (e) {
            if (done) return;
            done = true;
            failOn(call, out, e, "containers.logs");
          }
        };
        return {
          async chunk(c) {
            if (done) return;
            if (!started) {
              if (c.type === "control") {
                if (c.method === "close") finish();
                return;
              }
              started = true;
              try {
                if (c.type !== "binary" || c.headers.kind !== "start") throw invalid("logs start with a binary chunk of kind start");
                const follow = c.headers.follow;
                if (follow !== undefined && follow !== null && typeof follow !== "boolean") throw invalid("follow must be a boolean");
                const target = await locate(call, rt, c.headers.container_id);
                guardService(call.conn.scope, target, "reading the logs");
                void pump(target.id, follow === true, runs.get(call.room)?.get(target.id)?.redact ?? []);
              } catch (e) {
                done = true;
                failOn(call, out, e, "containers.logs");
              }
              return;
            }
            // The client's close (it stopped reading): stop following; the pump then closes the stream.
            if (c.type === "control" && c.method === "close") abort.abort();
          },
          async abort() {
            done = true;
            abort.abort();
          },
        };
      },

      build() {
        throw unsupported("build", NO_BUILDS);
      },
      get_build_logs() {
        throw unsupported("get_build_logs", NO_BUILDS);
      },
    },
  };
}
