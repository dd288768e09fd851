import type { Readable, Writable } from "node:stream";

/**
 * The container runtime: what the service lifecycle, the room `containers` toolkit and scheduled `container` tasks
 * need from a container engine, and no more. One backend is real here (Docker Engine API, docker.ts); the interface
 * is kept small and engine-neutral so that a Kubernetes backend could implement it later (a container ↔ a pod with
 * one container, labels ↔ pod labels, bind mounts ↔ volumes, `exec`/`logs` ↔ the pod subresources, images ↔ what
 * the nodes pull; `loadImage`/`saveImage` would answer "not supported" there).
 *
 * Every method that names a container takes the id {@link ContainerRuntime.run} returned. Methods that end or remove
 * something are idempotent: stopping a stopped container or removing a removed one succeeds.
 */
export interface ContainerRuntime {
  /** Which engine: "docker" (podman's Docker-compatible API answers as "docker" too). */
  readonly kind: string;
  /** The engine's version and platform, as it reports them. */
  info(): Promise<RuntimeInfo>;

  /** Create and start a container. Fails with a RuntimeError (`not_found` when the image is not present locally). */
  run(spec: ContainerCreateSpec): Promise<{ id: string }>;
  /** The container's state, or null when there is no such container. */
  inspect(id: string): Promise<ContainerState | null>;
  /** Containers (running or not) carrying every label given (`{key: value}`; a value of `""`: the key with any value). */
  list(labels: Record<string, string>): Promise<ContainerSummary[]>;
  /** Stop: SIGTERM, then SIGKILL after `timeoutSeconds` (default 10). Already stopped or gone: nothing happens. */
  stop(id: string, opts?: { timeoutSeconds?: number }): Promise<void>;
  /** Remove the container (`force`: a running one is killed first). Already gone: nothing happens. */
  remove(id: string, opts?: { force?: boolean }): Promise<void>;
  /** Resolves with the exit code once the container has exited (at once when it already has). */
  wait(id: string, opts?: { signal?: AbortSignal }): Promise<{ exitCode: number }>;
  /**
   * The container's output, in order: the last `tail` lines (default all) and then, with `follow`, what it writes
   * until it exits (or `signal` aborts; the iterator then ends quietly). Breaking out of the loop releases the stream.
   */
  logs(id: string, opts?: LogOptions): AsyncIterable<OutputChunk>;
  /** Run a command in a running container with streamed input and output. */
  exec(id: string, opts: ExecOptions): Promise<ExecSession>;

  /** Images present locally. */
  listImages(): Promise<ImageInfo[]>;
  /** One image by reference (`name:tag`, `name@digest` or id), or null when it is not present. */
  inspectImage(ref: string): Promise<ImageInfo | null>;
  /** Pull from a registry (`auth` for a private one); resolves once the image is present, rejects on the engine's error. */
  pullImage(ref: string, opts?: { auth?: RegistryAuth; signal?: AbortSignal }): Promise<void>;
  /** Remove an image (`force`: even when tagged more than once or used by a stopped container). Absent: nothing happens. */
  removeImage(ref: string, opts?: { force?: boolean }): Promise<void>;
  /** Load an image tarball (the `docker save` / OCI layout format); resolves with the references it loaded. */
  loadImage(tarball: Readable): Promise<string[]>;
  /** The images as one tarball that {@link loadImage} (and `docker load`) accepts. */
  saveImage(refs: string[]): Promise<Readable>;
}

export interface RuntimeInfo {
  kind: string;
  /** The engine's version, e.g. "20.10.24". */
  version: string;
  /** The API version spoken, e.g. "1.41". */
  apiVersion: string;
  os: string;
  arch: string;
}

/** A bind mount of a host path (room and project storage when the blob store is a local directory). */
export interface BindMount {
  /** Absolute path on the host. */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly?: boolean;
}

export interface ContainerCreateSpec {
  image: string;
  /** A name for the container (unique per engine); absent: the engine picks one. */
  name?: string;
  /** The command as argv (overrides the image's CMD); absent: the image's. A shell string is the caller's to split. */
  command?: string[];
  /** Overrides the image's entrypoint (argv); `[]` clears it. */
  entrypoint?: string[];
  workingDir?: string;
  env?: Record<string, string>;
  /** Labels; callers put {@link managedLabels} here so a restarted server finds its containers again. */
  labels: Record<string, string>;
  mounts?: BindMount[];
  /** "host" (the default: the container reaches the server on 127.0.0.1), "none", or the engine's default network. */
  network?: "host" | "none" | "default";
  /** Memory limit in bytes. */
  memoryBytes?: number;
  /** CPU limit in cores (fractions allowed). */
  cpus?: number;
  /** false: the root filesystem is read-only (mounts stay as they are). Default true. */
  writableRootFs?: boolean;
  /** Run as this user (`uid[:gid]` or a name the image knows). */
  user?: string;
}

export type ContainerStatus = "created" | "running" | "exited";

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  status: ContainerStatus;
  /** ms since the epoch */
  createdAt: number;
}

export interface ContainerState extends ContainerSummary {
  /** Set once the container has exited. */
  exitCode: number | null;
  /** ms since the epoch, null when it never started. */
  startedAt: number | null;
  /** ms since the epoch, null while it has not finished. */
  finishedAt: number | null;
  /** Killed for exceeding its memory limit. */
  oomKilled: boolean;
  /** The engine's error when the container could not start (e.g. no such executable). */
  error: string | null;
}

export interface LogOptions {
  follow?: boolean;
  /** The last this many lines only (default: all). */
  tail?: number;
  /** Only output after this time (ms since the epoch). */
  since?: number;
  signal?: AbortSignal;
}

export interface OutputChunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

export interface ExecOptions {
  command: string[];
  env?: Record<string, string>;
  workingDir?: string;
  user?: string;
  /** Attach standard input (then write to and end {@link ExecSession.stdin}). Default false. */
  stdin?: boolean;
}

export interface ExecSession {
  /** The command's standard input when `stdin` was asked for: end() it to send end-of-file. */
  stdin: Writable | null;
  /** stdout and stderr chunks, in order, until the command exits. Read it (or break out): it is not buffered forever. */
  output: AsyncIterable<OutputChunk>;
  /** Resolves with the exit code once the command has exited and its output has ended. */
  wait(): Promise<{ exitCode: number }>;
  /** Drop the connection (the command may keep running in the container). */
  close(): void;
}

export interface ImageInfo {
  id: string;
  /** `name:tag` references; empty for an untagged image. */
  tags: string[];
  size: number;
  /** ms since the epoch */
  createdAt: number;
  labels: Record<string, string>;
}

/** Registry credentials for a pull (`pull_secret`). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  /** A registry identity token instead of username/password. */
  identityToken?: string;
  serverAddress?: string;
}

export type RuntimeErrorCode = "not_found" | "conflict" | "invalid" | "unavailable" | "failed";

/** An engine's refusal, classified; `message` carries the engine's own words. */
export class RuntimeError extends Error {
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "RuntimeError";
  }
}

/** Whether this server can start containers: a runtime that answered, or why there is none. */
export type RuntimeAvailability = { status: "ready"; runtime: ContainerRuntime; info: RuntimeInfo } | { status: "no_runtime"; reason: string };
