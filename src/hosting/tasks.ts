import type { HostingConfig } from "../config.js";
import type { ContainerSpec } from "../services/spec.js";
import type { ContainerRun, ContainerRunResult, TaskContainerRunner } from "../scheduler/engine.js";
import type { RuntimeAvailability } from "../runtime/index.js";
import { LaunchError, redactText, type Launcher } from "./launch.js";
import type { ServiceHost } from "./host.js";

/** The tail of a task container's output kept on its run record. */
export const TASK_LOG_BYTES = 64 * 1024;

/**
 * Scheduled tasks with a `container` target (src/scheduler): the container runs in the task's room with the official
 * client's environment (launch.ts; participant `metadata.name` of the task, else "scheduled-task"), until it exits or
 * MESHAGENT_TASK_CONTAINER_TIMEOUT; the run records its exit code and the last 64 KiB of its output (secrets
 * redacted). The container is removed afterwards and its seconds are metered.
 */
export class TaskContainers implements TaskContainerRunner {
  constructor(
    private readonly deps: {
      runtime: RuntimeAvailability;
      launcher: Launcher;
      host: Pick<ServiceHost, "projectContainers" | "recordUsage">;
      nodeId: () => string;
      clock: { now(): number };
    },
    private readonly config: HostingConfig,
  ) {}

  unavailable(): string | null {
    return this.deps.runtime.status === "ready" ? null : `no container runtime: ${this.deps.runtime.reason}`;
  }

  async run(run: ContainerRun, started: (containerId: string, timeoutAt: number) => Promise<void>, signal: AbortSignal): Promise<ContainerRunResult> {
    if (this.deps.runtime.status !== "ready") return { containerId: null, exitCode: null, logs: "", error: this.unavailable() };
    const rt = this.deps.runtime.runtime;
    const spec = run.spec.container as unknown as ContainerSpec;
    if ((await this.deps.host.projectContainers(run.projectId)) >= this.config.maxContainersPerProject)
      return {
        containerId: null,
        exitCode: null,
        logs: "",
        error: `limit: the project already has ${this.config.maxContainersPerProject} containers running (MESHAGENT_CONTAINER_MAX_PER_PROJECT)`,
      };
    let prepared;
    try {
      prepared = await this.deps.launcher.prepare(spec, {
        projectId: run.projectId,
        room: { id: run.roomId, name: run.roomName },
        identity: run.spec.metadata?.name || "scheduled-task",
        roomSecrets: true,
        owner: { kind: "task", projectId: run.projectId, roomId: run.roomId, taskId: run.taskId, server: this.deps.nodeId() },
        labels: { "meshagent.task.run": String(run.runId) },
      });
    } catch (e) {
      return {
        containerId: null,
        exitCode: null,
        logs: "",
        error: e instanceof LaunchError ? e.message : `the container could not be prepared: ${(e as Error).message}`,
      };
    }
    let id: string | null = null;
    let from = 0;
    try {
      if (!(await rt.inspectImage(spec.image))) await rt.pullImage(spec.image, { auth: prepared.auth, signal });
      ({ id } = await rt.run(prepared.create));
      from = this.deps.clock.now();
      const timeoutAt = from + this.config.taskTimeoutMs;
      await started(id, timeoutAt);
      const timeout = AbortSignal.timeout(this.config.taskTimeoutMs);
      const stopped = AbortSignal.any([signal, timeout]);
      const exit = await rt.wait(id, { signal: stopped }).then(
        (r) => r.exitCode,
        () => null,
      );
      if (exit === null) await rt.stop(id, { timeoutSeconds: 5 }).catch(() => {});
      const logs = await this.tail(rt, id);
      const error =
        exit !== null
          ? null
          : timeout.aborted
            ? `the container ran longer than ${this.config.taskTimeoutMs / 1000} s (MESHAGENT_TASK_CONTAINER_TIMEOUT) and was stopped`
            : "the server stopped while the container ran";
      return { containerId: id, exitCode: exit, logs: redactText(logs, prepared.redact), error };
    } catch (e) {
      return { containerId: id, exitCode: null, logs: "", error: `the container could not run: ${(e as Error).message}` };
    } finally {
      if (id) {
        await rt.remove(id, { force: true }).catch(() => {});
        await this.deps.host.recordUsage(run.projectId, {
          room_id: run.roomId,
          room_name: run.roomName,
          task_id: run.taskId,
          run_id: String(run.runId),
          container_id: id,
          from,
          to: this.deps.clock.now(),
        });
      }
      await prepared.cleanup();
    }
  }

  /** The last TASK_LOG_BYTES of the container's output (stdout and stderr, in order). */
  private async tail(rt: import("../runtime/types.js").ContainerRuntime, id: string): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of rt.logs(id, { tail: 2000 })) {
      chunks.push(c.data);
      size += c.data.length;
      while (size > TASK_LOG_BYTES && chunks.length > 1) size -= chunks.shift()!.length;
    }
    const all = Buffer.concat(chunks);
    return all.subarray(Math.max(0, all.length - TASK_LOG_BYTES)).toString("utf8");
  }
}
