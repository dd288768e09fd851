import { once } from "node:events";
import type { Duplex, Readable } from "node:stream";
import Docker from "dockerode";
import {
  RuntimeError,
  type BindMount,
  type ContainerCreateSpec,
  type ContainerRuntime,
  type ContainerState,
  type ContainerStatus,
  type ContainerSummary,
  type ExecOptions,
  type ExecSession,
  type ImageInfo,
  type LogOptions,
  type OutputChunk,
  type RegistryAuth,
  type RuntimeErrorCode,
  type RuntimeInfo,
} from "./types.js";

/** dockerode's options for a Docker host URL: `unix:///path`, `tcp://host:port`, `http(s)://host:port`. */
export function modemOptions(host: string): Docker.DockerOptions {
  const u = new URL(host);
  if (u.protocol === "unix:") return { socketPath: decodeURIComponent(u.pathname) };
  if (u.protocol === "tcp:" || u.protocol === "http:" || u.protocol === "https:") {
    const protocol = u.protocol === "https:" ? "https" : "http";
    return { host: u.hostname, port: u.port ? Number(u.port) : protocol === "https" ? 2376 : 2375, protocol };
  }
  throw new RuntimeError("invalid", `unsupported Docker host ${JSON.stringify(host)}: expected unix://, tcp://, http:// or https://`);
}

interface DockerApiError {
  statusCode?: number;
  json?: { message?: string } | null;
  reason?: string;
  message?: string;
  code?: string;
}

/** The engine's message for an error of dockerode (its JSON body's `message` when there is one). */
function messageOf(e: unknown): string {
  const err = e as DockerApiError;
  const body = err?.json;
  if (body && typeof body === "object" && typeof body.message === "string") return body.message;
  if (Buffer.isBuffer(body)) return (body as Buffer).toString("utf8").trim();
  return err?.message ?? String(e);
}

const status = (e: unknown) => (e as DockerApiError)?.statusCode;

/** A dockerode error as a {@link RuntimeError}, by HTTP status (connection errors: `unavailable`). */
function toRuntimeError(e: unknown, what: string): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const s = status(e);
  const code: RuntimeErrorCode =
    s === 404
      ? "not_found"
      : s === 409
        ? "conflict"
        : s === 400
          ? "invalid"
          : s === undefined && /^(ECONNREFUSED|ENOENT|EACCES|ECONNRESET|EPIPE|ETIMEDOUT)$/.test((e as DockerApiError)?.code ?? "")
            ? "unavailable"
            : "failed";
  return new RuntimeError(code, `${what}: ${messageOf(e)}`, s);
}

/** Run `fn`; the statuses in `ignore` count as success (undefined), any other error becomes a RuntimeError. */
async function tolerate<T>(what: string, ignore: number[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    const s = status(e);
    if (s !== undefined && ignore.includes(s)) return undefined;
    throw toRuntimeError(e, what);
  }
}

/** Docker's zero time ("0001-01-01T00:00:00Z") is "never". */
function timeOf(iso: string | undefined): number | null {
  if (!iso || iso.startsWith("0001-")) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

function statusOf(state: string | undefined): ContainerStatus {
  switch (state) {
    case "created":
      return "created";
    case "running":
    case "paused":
    case "restarting":
      return "running";
    default:
      return "exited";
  }
}

/** `o` without its undefined values (dockerode would send them as empty query parameters). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const envList = (env: Record<string, string> | undefined) => (env ? Object.entries(env).map(([k, v]) => `${k}=${v}`) : undefined);

/**
 * The frames of Docker's multiplexed stdout/stderr stream (a non-TTY container's logs and attach/exec output): each
 * frame is an 8-byte header (stream type, 3 zero bytes, big-endian payload length) and the payload.
 */
export async function* demux(source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): AsyncGenerator<OutputChunk> {
  let buf = Buffer.alloc(0);
  for await (const chunk of source) {
    buf = buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([buf, Buffer.from(chunk)]);
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const kind = buf[0];
      const data = buf.subarray(8, 8 + size);
      buf = buf.subarray(8 + size);
      // 0 = stdin (never sent to us), 1 = stdout, 2 = stderr, 3 = system error (as stderr).
      if (kind === 1 || kind === 2 || kind === 3) yield { stream: kind === 1 ? "stdout" : "stderr", data: Buffer.from(data) };
    }
  }
}

function splitRef(ref: string): { name: string; tag?: string; digest?: string } {
  const at = ref.indexOf("@");
  if (at >= 0) return { name: ref.slice(0, at), digest: ref.slice(at + 1) };
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash ? { name: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { name: ref };
}

function authConfig(auth: RegistryAuth | undefined): Record<string, string> | undefined {
  if (!auth) return undefined;
  const a: Record<string, string> = {};
  if (auth.username !== undefined) a.username = auth.username;
  if (auth.password !== undefined) a.password = auth.password;
  if (auth.identityToken !== undefined) a.identitytoken = auth.identityToken;
  if (auth.serverAddress !== undefined) a.serveraddress = auth.serverAddress;
  return a;
}

/** The JSON messages of a progress stream (pull, load), one object per line. */
async function jsonMessages(stream: Readable): Promise<Record<string, unknown>[]> {
  let text = "";
  for await (const chunk of stream) text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
  const out: Record<string, unknown>[] = [];
  for (const line of text.split(/\r?\n/)) {
    const s = line.trim();
    if (!s) continue;
    try {
      out.push(JSON.parse(s) as Record<string, unknown>);
    } catch {
      out.push({ stream: s });
    }
  }
  return out;
}

function streamError(messages: Record<string, unknown>[]): string | null {
  for (const m of messages) {
    if (typeof m.error === "string") return m.error;
    const d = m.errorDetail as { message?: string } | undefined;
    if (d && typeof d.message === "string") return d.message;
  }
  return null;
}

const mountsOf = (mounts: BindMount[] | undefined) =>
  mounts?.map((m) => ({ Type: "bind" as const, Source: m.source, Target: m.target, ReadOnly: m.readOnly ?? false }));

/** The Docker Engine API backend (also podman's compatible API), on dockerode. */
export class DockerRuntime implements ContainerRuntime {
  readonly kind = "docker";
  readonly docker: Docker;

  constructor(
    readonly host: string,
    docker?: Docker,
  ) {
    this.docker = docker ?? new Docker(modemOptions(host));
  }

  async info(opts: { signal?: AbortSignal } = {}): Promise<RuntimeInfo> {
    try {
      // dockerode passes `abortSignal` on; its typings do not say so
      const version = this.docker.version.bind(this.docker) as unknown as (o: { abortSignal?: AbortSignal }) => Promise<Docker.DockerVersion>;
      const v = await version({ abortSignal: opts.signal });
      return { kind: this.kind, version: v.Version, apiVersion: v.ApiVersion, os: v.Os, arch: v.Arch };
    } catch (e) {
      throw toRuntimeError(e, `the Docker daemon at ${this.host} does not answer`);
    }
  }

  async run(spec: ContainerCreateSpec): Promise<{ id: string }> {
    const network = spec.network ?? "host";
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Cmd: spec.command,
        Entrypoint: spec.entrypoint,
        WorkingDir: spec.workingDir,
        Env: envList(spec.env),
        Labels: spec.labels,
        User: spec.user,
        HostConfig: {
          NetworkMode: network === "default" ? undefined : network,
          Mounts: mountsOf(spec.mounts),
          Memory: spec.memoryBytes,
          NanoCpus: spec.cpus === undefined ? undefined : Math.round(spec.cpus * 1e9),
          ReadonlyRootfs: spec.writableRootFs === false,
        },
      });
    } catch (e) {
      throw toRuntimeError(e, `creating a container of ${spec.image}`);
    }
    try {
      await container.start();
    } catch (e) {
      // A container that cannot start (no such executable, a bad mount) is not left behind.
      await container.remove({ force: true }).catch(() => undefined);
      throw toRuntimeError(e, `starting a container of ${spec.image}`);
    }
    return { id: container.id };
  }

  async inspect(id: string): Promise<ContainerState | null> {
    const c = await tolerate(`inspecting container ${id}`, [404], () => this.docker.getContainer(id).inspect());
    if (!c) return null;
    const s = c.State;
    const st = statusOf(s.Status);
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ""),
      image: c.Config.Image,
      labels: c.Config.Labels ?? {},
      status: st,
      createdAt: Date.parse(c.Created),
      exitCode: st === "exited" ? s.ExitCode : null,
      startedAt: timeOf(s.StartedAt),
      finishedAt: st === "exited" ? timeOf(s.FinishedAt) : null,
      oomKilled: s.OOMKilled,
      error: s.Error ? s.Error : null,
    };
  }

  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const label = Object.entries(labels).map(([k, v]) => (v === "" ? k : `${k}=${v}`));
    const rows = await tolerate("listing containers", [], () => this.docker.listContainers({ all: true, filters: { label } }));
    return (rows ?? []).map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? "").replace(/^\//, ""),
      image: c.Image,
      labels: c.Labels ?? {},
      status: statusOf(c.State),
      createdAt: c.Created * 1000,
    }));
  }

  async stop(id: string, opts: { timeoutSeconds?: number } = {}): Promise<void> {
    // 304: already stopped; 404: gone.
    await tolerate(`stopping container ${id}`, [304, 404], () => this.docker.getContainer(id).stop({ t: opts.timeoutSeconds ?? 10 }));
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: opts.force ?? false, v: true });
    } catch (e) {
      if (status(e) === 404) return;
      // "removal of container … is already in progress"
      if (status(e) === 409 && /already in progress/i.test(messageOf(e))) return;
      throw toRuntimeError(e, `removing container ${id}`);
    }
  }

  async wait(id: string, opts: { signal?: AbortSignal } = {}): Promise<{ exitCode: number }> {
    try {
      const r = (await this.docker.getContainer(id).wait(defined({ abortSignal: opts.signal }))) as { StatusCode: number };
      return { exitCode: r.StatusCode };
    } catch (e) {
      throw toRuntimeError(e, `waiting for container ${id}`);
    }
  }

  async *logs(id: string, opts: LogOptions = {}): AsyncGenerator<OutputChunk> {
    const query: Docker.ContainerLogsOptions = { stdout: true, stderr: true };
    if (opts.tail !== undefined) query.tail = opts.tail;
    if (opts.since !== undefined) query.since = Math.floor(opts.since / 1000);
    if (opts.signal) query.abortSignal = opts.signal;
    const container = this.docker.getContainer(id);
    if (!opts.follow) {
      let body: Buffer;
      try {
        body = await container.logs({ ...query, follow: false });
      } catch (e) {
        if (opts.signal?.aborted) return;
        throw toRuntimeError(e, `reading the logs of container ${id}`);
      }
      yield* demux([body]);
      return;
    }
    let stream: Readable;
    try {
      stream = (await container.logs({ ...query, follow: true })) as unknown as Readable;
    } catch (e) {
      if (opts.signal?.aborted) return;
      throw toRuntimeError(e, `following the logs of container ${id}`);
    }
    try {
      yield* demux(stream);
    } catch (e) {
      if (opts.signal?.aborted) return;
      throw toRuntimeError(e, `following the logs of container ${id}`);
    } finally {
      stream.destroy();
    }
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
    const container = this.docker.getContainer(id);
    let exec: Docker.Exec;
    let sock: Duplex;
    try {
      exec = await container.exec({
        Cmd: opts.command,
        Env: envList(opts.env),
        WorkingDir: opts.workingDir,
        User: opts.user,
        AttachStdin: opts.stdin ?? false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      sock = (await exec.start({ hijack: true, stdin: opts.stdin ?? false, Tty: false })) as Duplex;
    } catch (e) {
      throw toRuntimeError(e, `exec in container ${id}`);
    }
    const closed = once(sock, "close").then(() => undefined);
    let iterating = false;
    const frames = demux(sock);
    const output: AsyncIterable<OutputChunk> = {
      [Symbol.asyncIterator]() {
        if (iterating) throw new Error("the output of an exec is read once");
        iterating = true;
        return frames;
      },
    };
    const exitCode = async (): Promise<number> => {
      // The output ends when the command has exited; Docker records the exit code a moment later.
      for (let i = 0; ; i++) {
        const r = await exec.inspect();
        if (!r.Running && r.ExitCode !== null) return r.ExitCode;
        await new Promise((res) => setTimeout(res, Math.min(200, 10 * 2 ** i)));
      }
    };
    return {
      stdin: opts.stdin ? sock : null,
      output,
      wait: async () => {
        if (!iterating) {
          iterating = true;
          for await (const _ of frames) void _; // nobody reads the output: drain it so the command is not blocked
        }
        await closed;
        try {
          return { exitCode: await exitCode() };
        } catch (e) {
          throw toRuntimeError(e, `exec in container ${id}`);
        }
      },
      close: () => sock.destroy(),
    };
  }

  async listImages(): Promise<ImageInfo[]> {
    const rows = (await tolerate("listing images", [], () => this.docker.listImages())) ?? [];
    return rows.map((i) => ({
      id: i.Id,
      tags: (i.RepoTags ?? []).filter((t) => t !== "<none>:<none>"),
      size: i.Size,
      createdAt: i.Created * 1000,
      labels: i.Labels ?? {},
    }));
  }

  async inspectImage(ref: string): Promise<ImageInfo | null> {
    const i = await tolerate(`inspecting image ${ref}`, [404], () => this.docker.getImage(ref).inspect());
    if (!i) return null;
    return { id: i.Id, tags: i.RepoTags ?? [], size: i.Size, createdAt: Date.parse(i.Created), labels: i.Config?.Labels ?? {} };
  }

  async pullImage(ref: string, opts: { auth?: RegistryAuth; signal?: AbortSignal } = {}): Promise<void> {
    const { tag, digest } = splitRef(ref);
    // Without a tag the engine would pull every tag of the repository; a client means `latest`.
    const full = tag || digest ? ref : `${ref}:latest`;
    try {
      const stream = (await this.docker.pull(full, defined({ authconfig: authConfig(opts.auth), abortSignal: opts.signal }))) as Readable;
      const error = streamError(await jsonMessages(stream));
      if (error) throw new RuntimeError("failed", `pulling ${full}: ${error}`);
    } catch (e) {
      throw toRuntimeError(e, `pulling ${full}`);
    }
  }

  async removeImage(ref: string, opts: { force?: boolean } = {}): Promise<void> {
    await tolerate(`removing image ${ref}`, [404], () => this.docker.getImage(ref).remove({ force: opts.force ?? false }));
  }

  async loadImage(tarball: Readable): Promise<string[]> {
    let messages: Record<string, unknown>[];
    try {
      const res = (await this.docker.loadImage(tarball, { quiet: true })) as Readable;
      messages = await jsonMessages(res);
    } catch (e) {
      throw toRuntimeError(e, "loading an image");
    }
    const error = streamError(messages);
    if (error) throw new RuntimeError("invalid", `loading an image: ${error}`);
    const refs: string[] = [];
    for (const m of messages) {
      const line = typeof m.stream === "string" ? m.stream.trim() : "";
      const hit = /^Loaded image(?: ID)?: (.+)$/.exec(line);
      if (hit) refs.push(hit[1]);
    }
    return refs;
  }

  async saveImage(refs: string[]): Promise<Readable> {
    // The engine answers 200 and then breaks the stream off for an unknown image: check them first.
    for (const ref of refs) {
      if (!(await this.inspectImage(ref))) throw new RuntimeError("not_found", `saving image ${ref}: no such image`, 404);
    }
    try {
      // GET /images/get?names=…: dockerode has it, its typings do not
      const docker = this.docker as unknown as { getImages(o: { names: string[] }): Promise<Readable> };
      return await docker.getImages({ names: refs });
    } catch (e) {
      throw toRuntimeError(e, `saving ${refs.join(", ")}`);
    }
  }
}
