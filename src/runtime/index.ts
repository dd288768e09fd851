import { DockerRuntime } from "./docker.js";
import type { RuntimeAvailability } from "./types.js";

export * from "./types.js";
export * from "./labels.js";
export { DockerRuntime, modemOptions, demux } from "./docker.js";

/** Why there is no Docker host to try (see `MESHAGENT_DOCKER_HOST` in src/config.ts). */
export const NO_DOCKER_HOST =
  "no container runtime configured: MESHAGENT_DOCKER_HOST is `none`, or it and DOCKER_HOST are unset and /var/run/docker.sock does not exist";

/**
 * The container runtime at `dockerHost` (the config's `docker.host`), when a daemon answers there within `timeoutMs`;
 * otherwise `no_runtime` and why. Without a runtime the server still runs: container services report `no_runtime`.
 */
export async function detectRuntime(dockerHost: string | null, opts: { timeoutMs?: number } = {}): Promise<RuntimeAvailability> {
  if (!dockerHost) return { status: "no_runtime", reason: NO_DOCKER_HOST };
  let runtime: DockerRuntime;
  try {
    runtime = new DockerRuntime(dockerHost);
  } catch (e) {
    return { status: "no_runtime", reason: (e as Error).message };
  }
  try {
    const info = await runtime.info({ signal: AbortSignal.timeout(opts.timeoutMs ?? 5000) });
    return { status: "ready", runtime, info };
  } catch (e) {
    return { status: "no_runtime", reason: `no container runtime: ${(e as Error).message}` };
  }
}
