/**
 * The server's container image (the repository's Dockerfile), for the image smoke test (test/image.test.ts) and the
 * container cold-start benchmark (bench/startup.ts). Everything goes through the `docker` command line, so it needs
 * a daemon that answers and nothing else (only Node's built-ins are imported here).
 *
 *  - {@link buildServerImage}: the two base images (scripts/docker-base-images.sh, which keeps those that exist: no
 *    registry is reachable here, they are made from this machine), then `docker build --network host -t <tag> .`.
 *    Docker's layer cache makes a rebuild with unchanged inputs take seconds; {@link removeServerImage} drops the tag
 *    but keeps those layers (`docker rmi --no-prune`).
 *  - {@link runServerContainer}: `docker run -d --network host` on a free port with a named volume on /data, then
 *    waits for /healthz; `coldStartMs` is the time from just before `docker run` to the first healthy answer.
 *  - {@link benchContainerStart}: the median of a few such cold starts and the idle server's RSS (bench/startup.ts).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

export const ROOT = join(import.meta.dirname, "..", "..");
/** The tag the test builds (MESHAGENT_TEST_IMAGE overrides it). */
export const SERVER_IMAGE = process.env.MESHAGENT_TEST_IMAGE || "meshagent-server:test";
/** Every container and volume made here carries this label (and its value names the process that made it). */
export const IMAGE_TEST_LABEL = "meshagent.test.image";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to its end (no shell); `check` (default) throws on a non-zero exit, with its output. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; check?: boolean; onOutput?: (chunk: string) => void } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      opts.onOutput?.(d.toString());
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
      opts.onOutput?.(d.toString());
    });
    const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      const res = { code, stdout, stderr };
      if (code !== 0 && opts.check !== false) {
        const tail = (stdout + stderr).slice(-4000);
        reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}${code === null ? " (killed: timed out?)" : ""}:\n${tail}`));
      } else resolve(res);
    });
  });
}

const docker = (args: string[], opts: Parameters<typeof run>[2] = {}) => run("docker", args, opts);

/** Whether the docker command answers and reaches a daemon (the reason when not). */
export async function dockerCli(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const r = await docker(["version", "--format", "{{.Server.Version}}"], { check: false, timeoutMs: 10_000 });
    return r.code === 0 ? { ok: true } : { ok: false, reason: `docker version: ${(r.stderr || r.stdout).trim()}` };
  } catch (e) {
    return { ok: false, reason: `the docker command is not installed (${(e as Error).message})` };
  }
}

/** A TCP port free on this machine (the containers run with --network host), below the ephemeral range. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "0.0.0.0", () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export interface BuiltImage {
  tag: string;
  /** scripts/docker-base-images.sh (near 0 when both base images exist). */
  baseMs: number;
  /** docker build. */
  buildMs: number;
  /** The image's size in bytes. */
  size: number;
}

let buildxAnswer: Promise<boolean> | undefined;
/** The BuildKit front end (buildx) is a plugin; without it the docker CLI falls back to the legacy builder. */
const hasBuildx = () =>
  (buildxAnswer ??= docker(["buildx", "version"], { check: false, timeoutMs: 10_000 }).then(
    (r) => r.code === 0,
    () => false,
  ));

/**
 * Build the server image from the repository (base images first when missing). `log` gets the build's output as
 * it comes (the test leaves it out and shows the tail when the build fails).
 */
export async function buildServerImage(opts: { tag?: string; log?: (chunk: string) => void; timeoutMs?: number } = {}): Promise<BuiltImage> {
  const tag = opts.tag ?? SERVER_IMAGE;
  const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
  let t = performance.now();
  await run("bash", [join(ROOT, "scripts", "docker-base-images.sh")], { timeoutMs, onOutput: opts.log });
  const baseMs = performance.now() - t;
  const env = { ...process.env };
  if (!env.DOCKER_BUILDKIT && !(await hasBuildx())) env.DOCKER_BUILDKIT = "0";
  t = performance.now();
  await docker(["build", "--network", "host", "-t", tag, "."], { env, timeoutMs, onOutput: opts.log });
  const buildMs = performance.now() - t;
  const size = Number((await docker(["image", "inspect", "-f", "{{.Size}}", tag])).stdout.trim());
  return { tag, baseMs, buildMs, size };
}

/** Drop the image's tag but keep its layers, which are the build cache of the next build. */
export async function removeServerImage(tag = SERVER_IMAGE): Promise<void> {
  await docker(["rmi", "--no-prune", tag], { check: false });
}

export interface ContainerOptions {
  image?: string;
  /** The port the server listens on (on this machine: --network host); a free one when absent. */
  port?: number;
  /** The named volume on /data; a new one (removed by `remove()`) when absent. */
  volume?: string;
  env?: Record<string, string>;
  /** HEALTHCHECK's interval (docker run --health-interval); default 1s, so `waitHealthy()` is quick. */
  healthInterval?: string;
  /** How long to wait for /healthz (default 60 s). */
  timeoutMs?: number;
  /** More `docker run` options, before the image. */
  args?: string[];
  /** The command after the image (default: the image's, `serve`). */
  command?: string[];
}

export interface ServerContainer {
  id: string;
  name: string;
  url: string;
  port: number;
  volume: string;
  /** From just before `docker run` to the first `200` of /healthz. */
  coldStartMs: number;
  /** `docker exec` in it (as the image's user). */
  exec(args: string[], opts?: { check?: boolean }): Promise<RunResult>;
  /** `docker inspect`'s object. */
  inspect(): Promise<any>;
  /** stdout and stderr so far. */
  logs(): Promise<string>;
  /** State.Health.Status (the image's HEALTHCHECK) turns `healthy`: the time it took. */
  waitHealthy(timeoutMs?: number): Promise<number>;
  /** `docker stop -t <seconds>`: the exit code. */
  stop(timeoutSeconds?: number): Promise<number>;
  /** `docker kill -s <signal>`, then waits for the exit: the exit code. */
  kill(signal: string): Promise<number>;
  /** Remove the container (forced) and, unless `keepVolume` or the volume was given, its volume. */
  remove(opts?: { keepVolume?: boolean }): Promise<void>;
}

/** Start the server image in a container and wait for /healthz. */
export async function runServerContainer(opts: ContainerOptions = {}): Promise<ServerContainer> {
  const image = opts.image ?? SERVER_IMAGE;
  const port = opts.port ?? (await freePort());
  const suffix = `${process.pid}-${randomBytes(3).toString("hex")}`;
  const name = `meshagent-image-test-${suffix}`;
  const ownVolume = !opts.volume;
  const volume = opts.volume ?? `meshagent-image-test-${suffix}`;
  const label = `${IMAGE_TEST_LABEL}=${process.pid}`;
  if (ownVolume) await docker(["volume", "create", "--label", label, volume]);
  const env = { MESHAGENT_PORT: String(port), ...opts.env };
  const args = ["run", "-d", "--name", name, "--label", label, "--network", "host", "-v", `${volume}:/data`];
  args.push("--health-interval", opts.healthInterval ?? "1s");
  for (const [k, v] of Object.entries(env)) args.push("-e", `${k}=${v}`);
  args.push(...(opts.args ?? []), image, ...(opts.command ?? []));
  const url = `http://127.0.0.1:${port}`;

  const t0 = performance.now();
  let id: string;
  try {
    id = (await docker(args)).stdout.trim();
  } catch (e) {
    if (ownVolume) await docker(["volume", "rm", "-f", volume], { check: false });
    throw e;
  }
  const inspect = async () => JSON.parse((await docker(["inspect", id])).stdout)[0];
  const logs = async () => {
    const r = await docker(["logs", id], { check: false });
    return r.stdout + r.stderr;
  };
  const remove = async (o: { keepVolume?: boolean } = {}) => {
    await docker(["rm", "-f", "-v", id], { check: false });
    if (ownVolume && !o.keepVolume) await docker(["volume", "rm", "-f", volume], { check: false });
  };
  const exitCode = async () => Number((await docker(["wait", id])).stdout.trim());

  let coldStartMs: number;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) {
        coldStartMs = performance.now() - t0;
        break;
      }
    } catch {
      // not listening yet
    }
    const state = (await inspect()).State;
    if (!state.Running || Date.now() > deadline) {
      const out = await logs();
      await remove();
      throw new Error(`container ${name} ${state.Running ? "not healthy in time" : `exited (${state.ExitCode})`}:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }

  return {
    id,
    name,
    url,
    port,
    volume,
    coldStartMs,
    exec: (cmd, o = {}) => docker(["exec", id, ...cmd], { check: o.check }),
    inspect,
    logs,
    async waitHealthy(timeoutMs = 60_000) {
      const t = performance.now();
      for (const end = Date.now() + timeoutMs; ;) {
        const state = (await inspect()).State;
        if (state.Health?.Status === "healthy") return performance.now() - t;
        if (!state.Running) throw new Error(`container ${name} exited (${state.ExitCode})`);
        if (Date.now() > end) throw new Error(`container ${name}: health ${state.Health?.Status ?? "none"} after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop(timeoutSeconds = 20) {
      await docker(["stop", "-t", String(timeoutSeconds), id]);
      return exitCode();
    },
    async kill(signal: string) {
      await docker(["kill", "-s", signal, id]);
      return exitCode();
    },
    remove,
  };
}

/** Remove every container and volume that this process made (by label), e.g. after a failed test. */
export async function removeTestContainers(): Promise<void> {
  const filter = `label=${IMAGE_TEST_LABEL}=${process.pid}`;
  const ids = (await docker(["ps", "-aq", "--filter", filter], { check: false })).stdout.split(/\s+/).filter(Boolean);
  if (ids.length) await docker(["rm", "-f", "-v", ...ids], { check: false });
  const vols = (await docker(["volume", "ls", "-q", "--filter", filter], { check: false })).stdout.split(/\s+/).filter(Boolean);
  if (vols.length) await docker(["volume", "rm", "-f", ...vols], { check: false });
}

/**
 * The container cold start for bench/startup.ts: build the image (cached layers make that quick when nothing
 * changed) as `meshagent-server:bench`, then `rounds` times a new container on a new volume, from `docker run` to the
 * first healthy /healthz; the median of those, and the server's resident memory (PID 1's VmRSS, MiB) once idle.
 * Containers and volumes are removed, and the tag (not the layers).
 */
export async function benchContainerStart(rounds = 3, opts: { idleMs?: number; tag?: string } = {}): Promise<{ ms: number; rss: number; runs: number[] }> {
  const { tag } = await buildServerImage({ tag: opts.tag ?? "meshagent-server:bench" });
  const runs: number[] = [];
  const rss: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const c = await runServerContainer({ image: tag });
      try {
        runs.push(c.coldStartMs);
        await new Promise((r) => setTimeout(r, opts.idleMs ?? 1000));
        const status = await c.exec(["node", "-e", "process.stdout.write(require('fs').readFileSync('/proc/1/status', 'utf8'))"]);
        const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status.stdout)?.[1] ?? NaN);
        rss.push(kb / 1024);
      } finally {
        await c.remove();
      }
    }
  } finally {
    await removeServerImage(tag);
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  return { ms: median(runs), rss: median(rss), runs };
}
