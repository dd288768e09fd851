import { mkdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { posix, join, resolve, sep } from "node:path";
import { randomUUID } from "node:crypto";
import { parse as shellParse } from "shell-quote";
import type { HostingConfig } from "../config.js";
import type { ContainerSpec, ServiceFileSpec } from "../services/spec.js";
import type { SecretsService } from "../secrets/service.js";
import type { ParticipantTokens } from "../tokens/service.js";
import { agentDefaultScope, type Scope } from "../tokens/scope.js";
import { roomUrl } from "../rooms/service.js";
import type { BindMount, ContainerCreateSpec, RegistryAuth } from "../runtime/types.js";
import { managedLabels, type ManagedOwner } from "../runtime/labels.js";

/** Why a container could not even be created from its spec (a missing secret, a mount this server cannot make). */
export class LaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LaunchError";
  }
}

/** Where room and project storage live on this host, for `storage.room` / `storage.project` mounts. */
export type StorageLocation = { kind: "file"; root: string } | { kind: "s3"; url: string };

export interface LaunchDeps {
  tokens: Pick<ParticipantTokens, "mint">;
  secrets: Pick<SecretsService, "getProject" | "findInRoom">;
  /** The API's public base URL (MESHAGENT_API_URL; the client appends /rooms/{room}). */
  publicUrl: () => string;
  storage: StorageLocation;
  config: HostingConfig;
  /** A directory of this server's own (files and empty dirs for containers are made under it). */
  scratchDir: string;
}

/** Who the container is, where it runs and who it belongs to. */
export interface LaunchTarget {
  projectId: string;
  room: { id: string; name: string };
  /** The participant name of `MESHAGENT_TOKEN`. */
  identity: string;
  /** Role of `MESHAGENT_TOKEN` (default "agent"). */
  role?: string;
  /** ApiScope of `MESHAGENT_TOKEN` (default ApiScope.agent_default()). */
  api?: Scope;
  owner: ManagedOwner;
  /** Where `container.secrets` / `pull_secret` are looked up first: the room (room services), then the project. */
  roomSecrets?: boolean;
  /** More environment (after the spec's; e.g. `containers.run`'s `env`, or MESHAGENT_PORT). */
  env?: Record<string, string>;
  /** ServiceSpec.files: written and mounted read-only. */
  files?: ServiceFileSpec[];
  /** Extra labels (after the managed ones, never over them). */
  labels?: Record<string, string>;
  /** A name for the container. */
  name?: string;
}

/** A container ready to be created, and what to clean up once it is removed. */
export interface Prepared {
  create: ContainerCreateSpec;
  /** Registry credentials from `pull_secret`, for pulling the image when it is not present. */
  auth?: RegistryAuth;
  /** Values that must never appear in what the server shows of the container's output (secrets, tokens). */
  redact: string[];
  /** Remove the files and directories made for the container. */
  cleanup(): Promise<void>;
}

/** The command string of a ContainerSpec as argv: split like a shell would, or run by `/bin/sh -c` when it uses shell syntax. */
export function commandArgv(command: string | undefined): string[] | undefined {
  if (command === undefined || !command.trim()) return undefined;
  let shell = false;
  const parts = shellParse(command, (key) => {
    shell = true;
    return `$${key}`;
  });
  const argv: string[] = [];
  for (const p of parts) {
    if (typeof p === "string") argv.push(p);
    else shell = true;
  }
  return shell ? ["/bin/sh", "-c", command] : argv;
}

/** A free TCP port on 127.0.0.1 (for `ports[].num: "*"`; containers share the host's network). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

function checkContainerPath(p: string, what: string): string {
  if (typeof p !== "string" || !p.startsWith("/")) throw new LaunchError(`${what} must be an absolute path inside the container (got ${JSON.stringify(p)})`);
  const n = posix.normalize(p);
  if (n === "/") throw new LaunchError(`${what} must not be the container's root`);
  return n;
}

/** A subpath below a storage root: relative, no `..` out of it. */
function storageDir(root: string, sub: string | undefined, what: string): string {
  const base = resolve(root);
  const dir = resolve(base, (sub ?? "").replace(/^\/+/, ""));
  if (dir !== base && !dir.startsWith(base + sep)) throw new LaunchError(`${what}.subpath must stay inside the storage (got ${JSON.stringify(sub)})`);
  return dir;
}

function decodeJsonObject(b64: string, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(Buffer.from(b64, "base64").toString("utf8")) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // below
  }
  throw new LaunchError(`${what} does not hold a JSON object (a "keys" or "docker" secret)`);
}

/**
 * Turns a ContainerSpec into what the runtime creates (wire-contract §7.4): the four variables the official client's
 * environment factory reads (`MESHAGENT_ROOM`, `MESHAGENT_TOKEN`, `MESHAGENT_ROOM_URL`, `MESHAGENT_API_URL`), every
 * `environment[]` entry (`value`; `token` → a participant token minted for that identity, ApiScope and role;
 * `secret` → the room secret of that identity), each `container.secrets` secret's keys as variables, `pull_secret` as
 * registry credentials, the command (argv, or `/bin/sh -c` for shell syntax), `working_dir`, files, empty dirs and
 * storage mounts, `writable_root_fs`, the limits of the settings, host networking and the managed labels.
 */
export class Launcher {
  constructor(private readonly deps: LaunchDeps) {}

  /** A participant token for `identity` in the room (what MESHAGENT_TOKEN and `token` variables carry). */
  mint(projectId: string, room: string, identity: string, role: string | undefined, api: Scope | undefined): Promise<string> {
    return this.deps.tokens.mint({ projectId, signer: { kind: "project" }, name: identity, room, role: role ?? "agent", api: api ?? agentDefaultScope() });
  }

  private async secretJson(t: LaunchTarget, id: string, what: string): Promise<Record<string, unknown>> {
    if (t.roomSecrets) {
      const found = await this.deps.secrets.findInRoom(t.projectId, t.room, { secretId: id, forIdentity: "", delegatedTo: "" });
      if (found) return decodeJsonObject(found.value.toString("base64"), what);
    }
    try {
      const s = await this.deps.secrets.getProject(t.projectId, id);
      return decodeJsonObject(s.data_base64, what);
    } catch (e) {
      if (e instanceof LaunchError) throw e;
      throw new LaunchError(`${what}: no secret ${JSON.stringify(id)} in the project`);
    }
  }

  async prepare(spec: ContainerSpec, t: LaunchTarget): Promise<Prepared> {
    const redact: string[] = [];
    const scratch = join(this.deps.scratchDir, randomUUID());
    let made = false;
    const cleanup = async () => {
      if (made) await rm(scratch, { recursive: true, force: true }).catch(() => {});
    };
    const ensureScratch = async (sub: string) => {
      made = true;
      const d = join(scratch, sub);
      await mkdir(d, { recursive: true });
      return d;
    };
    try {
      const token = await this.mint(t.projectId, t.room.name, t.identity, t.role, t.api);
      redact.push(token);
      const api = this.deps.publicUrl();
      const env: Record<string, string> = {
        MESHAGENT_ROOM: t.room.name,
        MESHAGENT_TOKEN: token,
        MESHAGENT_API_URL: api,
        MESHAGENT_ROOM_URL: roomUrl(api, t.room.name).replace(/\/rooms\/[^/]*$/, ""),
      };
      for (const [i, e] of (spec.environment ?? []).entries()) {
        const what = `container.environment[${i}] (${e.name})`;
        if (e.token) {
          const v = await this.mint(t.projectId, t.room.name, e.token.identity, e.token.role, e.token.api);
          redact.push(v);
          env[e.name] = v;
        } else if (e.secret) {
          const found = await this.deps.secrets.findInRoom(t.projectId, t.room, { secretId: e.secret.id, forIdentity: e.secret.identity });
          if (!found) throw new LaunchError(`${what}: no room secret ${JSON.stringify(e.secret.id)} for identity ${JSON.stringify(e.secret.identity)}`);
          const v = found.value.toString("utf8");
          if (v) redact.push(v);
          env[e.name] = v;
        } else env[e.name] = e.value ?? "";
      }
      for (const [i, id] of (spec.secrets ?? []).entries()) {
        const data = await this.secretJson(t, id, `container.secrets[${i}]`);
        for (const [k, v] of Object.entries(data)) {
          const s = typeof v === "string" ? v : JSON.stringify(v);
          if (s) redact.push(s);
          env[k] = s;
        }
      }
      let auth: RegistryAuth | undefined;
      if (spec.pull_secret) {
        const d = await this.secretJson(t, spec.pull_secret, "container.pull_secret");
        auth = {
          username: typeof d.username === "string" ? d.username : undefined,
          password: typeof d.password === "string" ? d.password : undefined,
          serverAddress: typeof d.server === "string" ? d.server : undefined,
        };
        if (auth.password) redact.push(auth.password);
      }
      Object.assign(env, t.env ?? {});

      const mounts: BindMount[] = [];
      const files = [...(t.files ?? []).map((f) => ({ ...f, read_only: true })), ...(spec.storage?.files ?? [])];
      if (files.length) {
        const dir = await ensureScratch("files");
        for (const [i, f] of files.entries()) {
          const target = checkContainerPath(f.path, `files[${i}].path`);
          const src = join(dir, String(i));
          await writeFile(src, f.text ?? "");
          mounts.push({ source: src, target, readOnly: f.read_only ?? true });
        }
      }
      for (const [i, d] of (spec.storage?.empty_dirs ?? []).entries()) {
        const target = checkContainerPath(d.path, `storage.empty_dirs[${i}].path`);
        mounts.push({ source: await ensureScratch(`dirs/${i}`), target, readOnly: d.read_only ?? false });
      }
      for (const [i, c] of (spec.storage?.configs ?? []).entries()) {
        const target = checkContainerPath(c.path ?? "/var/run/meshagent", `storage.configs[${i}].path`);
        const dir = await ensureScratch(`configs/${i}`);
        await writeFile(join(dir, "room"), t.room.name);
        await writeFile(join(dir, "api_url"), env.MESHAGENT_API_URL);
        await writeFile(join(dir, "room_url"), env.MESHAGENT_ROOM_URL);
        await writeFile(join(dir, "token"), token);
        mounts.push({ source: dir, target, readOnly: true });
      }
      const storageMounts = [
        ...(spec.storage?.room ?? []).map((m, i) => ({ m, what: `storage.room[${i}]`, prefix: `rooms/${t.room.id}`, ro: m.read_only ?? false })),
        ...(spec.storage?.project ?? []).map((m, i) => ({ m, what: `storage.project[${i}]`, prefix: `projects/${t.projectId}`, ro: m.read_only ?? true })),
      ];
      if (storageMounts.length && this.deps.storage.kind !== "file")
        throw new LaunchError(
          `${storageMounts[0].what}: storage mounts need the local blob store (MESHAGENT_STORAGE_URL is ${this.deps.storage.url}, an S3 bucket cannot be mounted into a container)`,
        );
      for (const { m, what, prefix, ro } of storageMounts) {
        const root = join((this.deps.storage as { root: string }).root, prefix);
        const source = storageDir(root, m.subpath, what);
        await mkdir(source, { recursive: true });
        mounts.push({ source, target: checkContainerPath(m.path, `${what}.path`), readOnly: ro });
      }
      if (spec.storage?.images?.length)
        throw new LaunchError(
          "storage.images: mounting another image's files is not supported by this server's Docker runtime; copy them into the image instead",
        );

      const c = this.deps.config;
      const create: ContainerCreateSpec = {
        image: spec.image,
        name: t.name,
        command: commandArgv(spec.command),
        workingDir: spec.working_dir || undefined,
        env,
        labels: { ...(t.labels ?? {}), ...managedLabels(t.owner) },
        mounts,
        network: "host",
        memoryBytes: c.memoryBytes > 0 ? c.memoryBytes : undefined,
        cpus: c.cpus > 0 ? c.cpus : undefined,
        writableRootFs: spec.writable_root_fs ?? true,
      };
      return { create, auth, redact, cleanup };
    } catch (e) {
      await cleanup();
      throw e;
    }
  }
}

/** Replace every occurrence of the values in `redact` (longest first) with `[redacted]`. */
export function redactText(text: string, redact: readonly string[]): string {
  let out = text;
  for (const v of [...redact].sort((a, b) => b.length - a.length)) if (v.length >= 4 && out.includes(v)) out = out.split(v).join("[redacted]");
  return out;
}
