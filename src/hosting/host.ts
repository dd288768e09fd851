import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.js";
import { iso } from "../core/clock.js";
import type { EventBus } from "../core/events.js";
import type { HostingConfig } from "../config.js";
import type { DB } from "../store/db.js";
import type { ServiceRecord, ServicesService } from "../services/service.js";
import type { PortSpec, ServiceSpec } from "../services/spec.js";
import type { SessionsService } from "../sessions/service.js";
import type { CallHandoff } from "../calls/service.js";
import type { Scope } from "../tokens/scope.js";
import type { Connection, Toolkit } from "../room-server/connection.js";
import type { ActiveRoom } from "../room-server/room.js";
import type { RoomControl, RoomHosting } from "../room-server/server.js";
import { LABEL, listManaged, type ContainerRuntime, type RuntimeAvailability } from "../runtime/index.js";
import { freePort, LaunchError, redactText, type Launcher, type Prepared } from "./launch.js";
import { hostingRepo } from "./repo.js";

export type ServiceState = "pending" | "pulling" | "starting" | "running" | "restarting" | "failed" | "stopped" | "no_runtime";

/** What `services.list` (0.39.9 ServiceRuntimeState) and the status route say of one service in one room. */
export interface ServiceStatus {
  service_id: string;
  state: ServiceState;
  container_id?: string;
  /** Seconds since the epoch (the client reads numbers). */
  restart_scheduled_at?: number;
  started_at?: number;
  restart_count: number;
  last_exit_code?: number;
  last_exit_at?: number;
  last_error?: string;
}

export interface HostDeps {
  db: DB;
  clock: Clock;
  bus: EventBus;
  services: Pick<ServicesService, "records">;
  sessions: Pick<SessionsService, "addSpans" | "event">;
  calls: Pick<CallHandoff, "call">;
  launcher: Launcher;
  runtime: RuntimeAvailability;
  /** The room server's node id (rows say which process runs a room's services). */
  nodeId: () => string;
  /** Whether a server process is gone (its heartbeat stopped or its pid died): its task containers are orphans. */
  isNodeDead: (nodeId: string) => Promise<boolean>;
  /** Scheduled runs left `submitting` by dead processes: recorded as failed (SchedulerEngine.failOrphanedContainerRuns). */
  failOrphanedRuns?: (isOrphan: (runId: number, startedAt: number) => Promise<boolean>) => Promise<void>;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Why the project may not start services now (billing enforcement), else null. */
  refusal?: (projectId: string) => Promise<string | null>;
}

interface Instance {
  rec: ServiceRecord;
  rs: RoomServices;
  state: ServiceState;
  containerId: string | null;
  restartCount: number;
  lastError: string | null;
  lastExitCode: number | null;
  lastExitAt: number | null;
  startedAt: number | null;
  restartScheduledAt: number | null;
  /** Bumped on every start attempt: late callbacks of an older attempt are ignored. */
  attempt: number;
  abort: AbortController | null;
  timer: NodeJS.Timeout | null;
  prepared: Prepared | null;
  /** When the current container started (container-seconds). */
  usageFrom: number | null;
  stopping: boolean;
  /** An on_demand start in progress (or done). */
  demanded: Promise<boolean> | null;
  write: Promise<void>;
}

interface RoomServices {
  active: ActiveRoom<Connection>;
  control: RoomControl;
  instances: Map<string, Instance>;
  /** Participant names of the room's services' agents. */
  names: Set<string>;
  loaded: Promise<void>;
  ended: boolean;
  maxRuntime: NodeJS.Timeout | null;
}

const LOG_LINE_MAX = 8 * 1024;
const secs = (ms: number | null) => (ms === null ? undefined : ms / 1000);
const MAX_RUNTIME_ANNOTATION = "meshagent.room.max-runtime-seconds";

/** The MESHAGENT_TOKEN identity of a service: its first endpoint's meshagent identity, else its first agent, else its name. */
export function serviceIdentity(spec: ServiceSpec): { identity: string; api?: Scope } {
  for (const p of spec.ports ?? []) for (const e of p.endpoints ?? []) if (e.meshagent) return { identity: e.meshagent.identity, api: e.meshagent.api };
  return { identity: spec.agents?.[0]?.name ?? spec.metadata.name };
}

/** Every participant name the service's agents may join as. */
function participantNames(spec: ServiceSpec): string[] {
  const out = [serviceIdentity(spec).identity, spec.metadata.name, ...(spec.agents ?? []).map((a) => a.name)];
  for (const p of spec.ports ?? []) for (const e of p.endpoints ?? []) if (e.meshagent) out.push(e.meshagent.identity);
  for (const e of spec.container?.environment ?? []) if (e.token) out.push(e.token.identity);
  return out;
}

/** Toolkits the service says its agents host (agents[].channels.toolkit[].name): what an on_demand start is for. */
function declaredToolkits(spec: ServiceSpec): Set<string> {
  const out = new Set<string>();
  for (const a of spec.agents ?? []) for (const t of a.channels?.toolkit ?? []) out.add(t.name);
  return out;
}

const runnable = (r: ServiceRecord) => !!r.spec.container || !!r.spec.external?.url;

/**
 * The service runtime (issue 16): when a room's session starts, every project service and the room's own services
 * that have a container or an external URL start for it (`on_demand` ones when a toolkit they declare is first
 * called); when the session ends they stop and their containers are removed.
 *
 * A container gets the official client's environment (launch.ts). Each port with `meshagent` endpoints waits for its
 * `liveness` path (or the port) to answer, then each endpoint is invoked with `room.call`, so its agent joins. An
 * external service is invoked with `room.call` at its URL. A container that exits non-zero (or fails to start, pull,
 * answer or take the call) is restarted after 1 s, 2 s, 4 s … (capped), at most MESHAGENT_SERVICE_MAX_RESTARTS times;
 * then it is `failed`. Its state is kept per room in `service_runs`, published as `service.started|stopped|failed`, its
 * output goes to the room's developer logs, starts and restarts become session spans, and container-seconds are
 * metered (`usage.recorded` with `usage_type: "container"`).
 */
export class ServiceHost implements RoomHosting {
  private readonly rooms = new Map<string, RoomServices>();
  private readonly stopping = new Set<Promise<void>>();
  private reconcileTimer: NodeJS.Timeout | null = null;
  private closed = false;
  toolkits: Record<string, Toolkit> = {};
  private readonly endListeners = new Set<(active: ActiveRoom<Connection>) => Promise<void>>();

  /** Also run when a session ends (the containers toolkit removes the session's containers); awaited by close(). */
  onRoomEnded(fn: (active: ActiveRoom<Connection>) => Promise<void>) {
    this.endListeners.add(fn);
  }

  constructor(
    private readonly deps: HostDeps,
    private readonly config: HostingConfig,
  ) {
    // A service created, replaced or deleted while rooms run: those rooms follow.
    deps.bus.on((e) => {
      if (e.type !== "service.created" && e.type !== "service.updated" && e.type !== "service.deleted") return;
      for (const rs of this.rooms.values())
        if (rs.active.room.project_id === e.project_id && (!e.data.room_name || e.data.room_name === rs.active.room.name))
          void this.refresh(rs).catch(() => {});
    });
  }

  get runtime(): ContainerRuntime | null {
    return this.deps.runtime.status === "ready" ? this.deps.runtime.runtime : null;
  }

  // ------------------------------------------------------------------ RoomHosting

  started(active: ActiveRoom<Connection>, control: RoomControl): void {
    const rs: RoomServices = { active, control, instances: new Map(), names: new Set(), loaded: Promise.resolve(), ended: false, maxRuntime: null };
    this.rooms.set(active.id, rs);
    rs.loaded = this.refresh(rs).catch((e) => this.deps.log.warn({ err: e, room: active.room.name }, "could not start the room's services"));
  }

  ended(active: ActiveRoom<Connection>, reason: string): void {
    const rs = this.rooms.get(active.id);
    if (!rs || rs.active !== active) return;
    rs.ended = true;
    this.rooms.delete(active.id);
    if (rs.maxRuntime) clearTimeout(rs.maxRuntime);
    const p = rs.loaded
      .then(() =>
        Promise.all([
          ...[...rs.instances.values()].map((i) => this.stopInstance(i, `the session ended (${reason})`)),
          ...[...this.endListeners].map((fn) => fn(active).catch((e) => this.deps.log.warn({ err: e }, "a session-end listener failed"))),
        ]),
      )
      .then(() => {});
    this.stopping.add(p);
    void p.finally(() => this.stopping.delete(p));
  }

  isService(active: ActiveRoom<Connection>, name: string, role: string): boolean {
    if (role !== "agent") return false;
    const rs = this.rooms.get(active.id);
    return !!rs && rs.active === active && rs.names.has(name);
  }

  demand(active: ActiveRoom<Connection>, toolkit: string): Promise<boolean> | null {
    const rs = this.rooms.get(active.id);
    if (!rs || rs.active !== active) return null;
    const find = () => [...rs.instances.values()].find((i) => i.rec.spec.container?.on_demand && declaredToolkits(i.rec.spec).has(toolkit));
    const now = find();
    if (now) return this.startDemanded(now);
    return null;
  }

  private startDemanded(inst: Instance): Promise<boolean> {
    if (inst.state === "running") return Promise.resolve(true);
    if (!inst.demanded || inst.state === "stopped" || inst.state === "failed") inst.demanded = this.attemptStart(inst, true);
    return inst.demanded;
  }

  // ------------------------------------------------------------------ per room

  /** Load the room's services and bring what runs in line with them (new ones start, deleted ones stop, replaced ones restart). */
  private async refresh(rs: RoomServices): Promise<void> {
    const room = rs.active.room;
    const recs = [...(await this.deps.services.records(room.project_id, null)), ...(await this.deps.services.records(room.project_id, room.name))].filter(
      runnable,
    );
    if (rs.ended) return;
    const seen = new Set<string>();
    for (const rec of recs) {
      seen.add(rec.id);
      for (const n of participantNames(rec.spec)) rs.names.add(n);
      const cur = rs.instances.get(rec.id);
      if (cur && cur.rec.revision === rec.revision) continue;
      if (cur) await this.stopInstance(cur, "the service was replaced");
      if (rs.ended) return;
      const inst = this.instance(rs, rec);
      rs.instances.set(rec.id, inst);
      if (rec.spec.container?.on_demand) this.set(inst, "stopped");
      else void this.attemptStart(inst, false);
    }
    for (const [id, inst] of rs.instances)
      if (!seen.has(id)) {
        rs.instances.delete(id);
        await this.stopInstance(inst, "the service was deleted");
      }
    // meshagent.room.max-runtime-seconds: the shortest any of the room's services asks for.
    const limits = recs.map((r) => Number(r.spec.metadata.annotations?.[MAX_RUNTIME_ANNOTATION])).filter((n) => Number.isFinite(n) && n > 0);
    if (rs.maxRuntime) clearTimeout(rs.maxRuntime);
    rs.maxRuntime = null;
    if (limits.length) {
      const left = Number(rs.active.session.created_at) + Math.min(...limits) * 1000 - this.deps.clock.now();
      rs.maxRuntime = setTimeout(
        () => void rs.control.end("max_runtime", `the room reached its maximum runtime (${MAX_RUNTIME_ANNOTATION})`),
        Math.max(0, left),
      );
      rs.maxRuntime.unref();
    }
  }

  private instance(rs: RoomServices, rec: ServiceRecord): Instance {
    return {
      rec,
      rs,
      state: "pending",
      containerId: null,
      restartCount: 0,
      lastError: null,
      lastExitCode: null,
      lastExitAt: null,
      startedAt: null,
      restartScheduledAt: null,
      attempt: 0,
      abort: null,
      timer: null,
      prepared: null,
      usageFrom: null,
      stopping: false,
      demanded: null,
      write: Promise.resolve(),
    };
  }

  /** The state of the room's services (services.list). */
  async states(active: ActiveRoom<Connection>): Promise<{ records: ServiceRecord[]; states: ServiceStatus[] }> {
    const rs = this.rooms.get(active.id);
    if (rs) await rs.loaded;
    const room = active.room;
    const records = [...(await this.deps.services.records(room.project_id, null)), ...(await this.deps.services.records(room.project_id, room.name))];
    const states: ServiceStatus[] = [];
    for (const r of records) {
      const inst = rs?.instances.get(r.id);
      if (inst) states.push(statusOf(inst));
    }
    return { records, states };
  }

  /** services.restart: stop the service's container (if any) and start it again, with its restart count reset. */
  async restart(active: ActiveRoom<Connection>, serviceId: string): Promise<"restarted" | "not_found"> {
    const rs = this.rooms.get(active.id);
    if (!rs || rs.active !== active) return "not_found";
    await rs.loaded;
    const inst = rs.instances.get(serviceId);
    if (!inst) return "not_found";
    await this.halt(inst);
    inst.stopping = false;
    inst.restartCount = 0;
    inst.lastError = null;
    void this.attemptStart(inst, false);
    return "restarted";
  }

  // ------------------------------------------------------------------ one service

  private set(inst: Instance, state: ServiceState, patch: Partial<Pick<Instance, "lastError">> = {}) {
    inst.state = state;
    if (patch.lastError !== undefined) inst.lastError = patch.lastError;
    const room = inst.rs.active.room;
    const row = {
      room_id: room.id,
      service_id: inst.rec.id,
      project_id: room.project_id,
      session_id: inst.rs.active.session.id,
      node_id: this.deps.nodeId(),
      state,
      revision: inst.rec.revision,
      container_id: inst.containerId,
      restart_count: inst.restartCount,
      last_error: inst.lastError,
      last_exit_code: inst.lastExitCode,
      last_exit_at: inst.lastExitAt,
      started_at: inst.startedAt,
      restart_scheduled_at: inst.restartScheduledAt,
      updated_at: this.deps.clock.now(),
    };
    // In order, one at a time per service; a room deleted meanwhile takes its rows with it (the insert then fails).
    inst.write = inst.write.then(() =>
      hostingRepo.upsertRun(this.deps.db, row).then(
        () => {},
        () => {},
      ),
    );
  }

  private async publish(inst: Instance, type: "service.started" | "service.stopped" | "service.failed", extra: Record<string, unknown> = {}) {
    const room = inst.rs.active.room;
    const data = {
      service_id: inst.rec.id,
      service_name: inst.rec.name,
      room_name: room.name,
      room_id: room.id,
      session_id: inst.rs.active.session.id,
      ...(inst.containerId ? { container_id: inst.containerId } : {}),
      ...extra,
    };
    try {
      (await this.deps.bus.publish(this.deps.db, { type, project_id: room.project_id, data }))();
    } catch {
      // the room (or project) is gone
    }
  }

  private span(inst: Instance, name: string, at: number, ok: boolean, message: string | null, attributes: Record<string, unknown>) {
    const s = inst.rs.active.session;
    void this.deps.sessions
      .addSpans(s.id, [
        {
          session_id: s.id,
          trace_id: randomBytes(16).toString("hex"),
          span_id: randomBytes(8).toString("hex"),
          parent_span_id: null,
          name,
          kind: 1,
          start_ms: at,
          duration_ns: Math.max(0, Math.round((this.deps.clock.now() - at) * 1e6)),
          status_code: ok ? 1 : 2,
          status_message: ok ? null : (message ?? "").slice(0, 1000),
          attributes: JSON.stringify({ "service.id": inst.rec.id, "service.name": inst.rec.name, ...attributes }),
          resource_attributes: JSON.stringify({ "service.name": "meshagent-service-host" }),
          participant_name: null,
        },
      ])
      .catch(() => {});
  }

  /** Containers of a project now (services, toolkit runs, tasks): the per-project limit. */
  async projectContainers(projectId: string): Promise<number> {
    const rt = this.runtime;
    if (!rt) return 0;
    return (await rt.list({ [LABEL.managed]: "1", [LABEL.project]: projectId })).filter((c) => c.status !== "exited").length;
  }

  /** One start attempt. Resolves true once running (its agents were invoked), false when it did not get there. */
  private async attemptStart(inst: Instance, onDemand: boolean): Promise<boolean> {
    const attempt = ++inst.attempt;
    const current = () => inst.attempt === attempt && !inst.stopping && !inst.rs.ended;
    const abort = new AbortController();
    inst.abort = abort;
    inst.restartScheduledAt = null;
    const t0 = this.deps.clock.now();
    const spec = inst.rec.spec;
    const room = inst.rs.active.room;
    try {
      if (spec.container) {
        const rt = this.runtime;
        if (!rt) {
          this.set(inst, "no_runtime", { lastError: (this.deps.runtime as { reason: string }).reason });
          return false;
        }
        this.set(inst, "pending");
        const refused = await this.deps.refusal?.(room.project_id);
        if (refused) {
          this.set(inst, "failed", { lastError: `payment required: ${refused}` });
          await this.publish(inst, "service.failed", { error: inst.lastError });
          return false;
        }
        if ((await this.projectContainers(room.project_id)) >= this.config.maxContainersPerProject) {
          this.set(inst, "failed", {
            lastError: `limit: the project already has ${this.config.maxContainersPerProject} containers running (MESHAGENT_CONTAINER_MAX_PER_PROJECT)`,
          });
          await this.publish(inst, "service.failed", { error: inst.lastError });
          return false;
        }
        const { identity, api } = serviceIdentity(spec);
        const ports = await Promise.all(
          (spec.ports ?? []).map(async (p) => ({ spec: p, num: p.num === undefined || p.num === "*" ? await freePort() : p.num })),
        );
        const env: Record<string, string> = {};
        if (ports.length) env.MESHAGENT_PORT = String(ports[0].num);
        const prepared = await this.deps.launcher.prepare(spec.container, {
          projectId: room.project_id,
          room: { id: room.id, name: room.name },
          identity,
          api,
          roomSecrets: inst.rec.roomId !== null,
          env,
          files: spec.files,
          owner: {
            kind: "service",
            projectId: room.project_id,
            roomId: room.id,
            sessionId: inst.rs.active.session.id,
            serviceId: inst.rec.id,
            revision: inst.rec.revision,
            server: this.deps.nodeId(),
          },
        });
        if (!current()) {
          await prepared.cleanup();
          return false;
        }
        inst.prepared = prepared;
        if (!(await rt.inspectImage(spec.container.image))) {
          this.set(inst, "pulling");
          await rt.pullImage(spec.container.image, { auth: prepared.auth, signal: abort.signal });
          if (!current()) return false;
        }
        this.set(inst, "starting");
        const { id } = await rt.run(prepared.create);
        inst.containerId = id;
        inst.usageFrom = this.deps.clock.now();
        if (!current()) {
          await this.halt(inst);
          return false;
        }
        this.pump(inst, rt, id, prepared.redact, abort.signal);
        void rt.wait(id, { signal: abort.signal }).then(
          ({ exitCode }) => {
            if (inst.containerId === id) void this.exited(inst, attempt, exitCode);
          },
          () => {},
        );
        for (const p of ports) await this.live(inst, p.spec, p.num, abort.signal, current);
        for (const p of ports)
          for (const e of p.spec.endpoints ?? [])
            if (e.meshagent && current())
              await this.deps.calls.call({
                projectId: room.project_id,
                roomId: room.id,
                roomName: room.name,
                name: e.meshagent.identity,
                api: e.meshagent.api,
                url: `http://127.0.0.1:${p.num}${e.path.startsWith("/") ? e.path : `/${e.path}`}`,
                arguments: null,
                callerId: `service:${inst.rec.id}`,
                trusted: true,
              });
      } else {
        this.set(inst, "starting");
        const { identity, api } = serviceIdentity(spec);
        await this.deps.calls.call({
          projectId: room.project_id,
          roomId: room.id,
          roomName: room.name,
          name: identity,
          api,
          url: spec.external!.url!,
          arguments: null,
          callerId: `service:${inst.rec.id}`,
        });
      }
      if (!current()) return false;
      inst.startedAt = this.deps.clock.now();
      this.set(inst, "running", { lastError: null });
      this.span(inst, inst.restartCount > 0 ? "service.restart" : "service.start", t0, true, null, {
        "service.restart_count": inst.restartCount,
        "service.on_demand": onDemand,
        ...(inst.containerId ? { "container.id": inst.containerId } : {}),
      });
      await this.publish(inst, "service.started");
      return true;
    } catch (e) {
      if (!current()) return false;
      const message = e instanceof Error ? e.message : String(e);
      this.span(inst, inst.restartCount > 0 ? "service.restart" : "service.start", t0, false, message, { "service.restart_count": inst.restartCount });
      if (e instanceof LaunchError) {
        // The spec cannot run here (a missing secret, an unsupported mount): retrying would not help.
        await this.halt(inst);
        this.set(inst, "failed", { lastError: message });
        await this.publish(inst, "service.failed", { error: message });
        return false;
      }
      await this.crashed(inst, attempt, message, null);
      return false;
    }
  }

  /** Wait for a port: its liveness path answering (any HTTP status below 500), or a TCP connect when it has none. */
  private async live(inst: Instance, port: PortSpec, num: number, signal: AbortSignal, current: () => boolean) {
    if (!port.liveness && !(port.endpoints ?? []).some((e) => e.meshagent)) return;
    const deadline = Date.now() + this.config.livenessTimeoutMs;
    const path = port.liveness ? (port.liveness.startsWith("/") ? port.liveness : `/${port.liveness}`) : null;
    let last = "no answer";
    for (let delay = 20; Date.now() < deadline && current(); delay = Math.min(500, delay * 2)) {
      try {
        if (path) {
          const res = await fetch(`http://127.0.0.1:${num}${path}`, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) });
          await res.body?.cancel();
          if (res.status < 500) return;
          last = `HTTP ${res.status}`;
        } else {
          await tcpConnect(num, signal);
          return;
        }
      } catch (e) {
        last = (e as Error).message;
      }
      if (inst.state !== "starting") throw new Error(`the container exited before port ${num} answered`);
      await new Promise((r) => setTimeout(r, delay));
    }
    if (!current()) return;
    throw new Error(`port ${num}${path ? ` (liveness ${path})` : ""} did not answer within ${this.config.livenessTimeoutMs / 1000} s: ${last}`);
  }

  /** The container's output, line by line, into the room's developer logs (secrets and tokens redacted). */
  private pump(inst: Instance, rt: ContainerRuntime, id: string, redact: string[], signal: AbortSignal) {
    const partial = { stdout: "", stderr: "" };
    const emit = (stream: "stdout" | "stderr", line: string) =>
      inst.rs.control.log("service.log", {
        service_id: inst.rec.id,
        service_name: inst.rec.name,
        container_id: id,
        stream,
        line: redactText(line, redact).slice(0, LOG_LINE_MAX),
      });
    void (async () => {
      try {
        for await (const c of rt.logs(id, { follow: true, signal })) {
          const text = partial[c.stream] + c.data.toString("utf8");
          const lines = text.split("\n");
          partial[c.stream] = lines.pop() ?? "";
          if (partial[c.stream].length > LOG_LINE_MAX) {
            lines.push(partial[c.stream]);
            partial[c.stream] = "";
          }
          for (const l of lines) emit(c.stream, l);
        }
      } catch {
        // the container is gone
      }
      for (const s of ["stdout", "stderr"] as const) if (partial[s]) emit(s, partial[s]);
    })();
  }

  private async exited(inst: Instance, attempt: number, exitCode: number) {
    if (inst.attempt !== attempt || inst.stopping || inst.rs.ended) return;
    inst.lastExitCode = exitCode;
    if (exitCode === 0) inst.attempt++;
    inst.lastExitAt = this.deps.clock.now();
    if (exitCode === 0) {
      // Done on its own: not a crash, nothing to restart.
      await this.halt(inst);
      // The room ended meanwhile (an agent exits when its room closes): stopInstance reports the stop, once.
      if (inst.stopping) return;
      this.set(inst, "stopped");
      await this.publish(inst, "service.stopped", { exit_code: 0 });
      return;
    }
    const state = inst.containerId ? await this.runtime?.inspect(inst.containerId).catch(() => null) : null;
    const why = state?.oomKilled ? `killed: out of memory (exit code ${exitCode})` : state?.error ? state.error : `the container exited with code ${exitCode}`;
    await this.crashed(inst, attempt, why, exitCode);
  }

  /** A failed attempt: remove what it left and schedule the next one, or give up once the restarts are used up. */
  private async crashed(inst: Instance, attempt: number, why: string, exitCode: number | null) {
    if (inst.attempt !== attempt || inst.stopping || inst.rs.ended) return;
    // This attempt is over: whatever else of it reports a failure later (a liveness wait, the exit) is ignored.
    const next = ++inst.attempt;
    if (exitCode !== null) inst.lastExitCode = exitCode;
    await this.halt(inst);
    if (inst.attempt !== next || inst.stopping || inst.rs.ended) return;
    if (inst.restartCount >= this.config.maxRestarts) {
      this.set(inst, "failed", { lastError: `${why}; gave up after ${inst.restartCount} restart(s) (MESHAGENT_SERVICE_MAX_RESTARTS)` });
      this.deps.log.warn({ service: inst.rec.id, room: inst.rs.active.room.name, error: why }, "service failed");
      await this.publish(inst, "service.failed", { error: inst.lastError, ...(inst.lastExitCode !== null ? { exit_code: inst.lastExitCode } : {}) });
      return;
    }
    const delay = Math.min(this.config.restartMaxMs, this.config.restartBaseMs * 2 ** inst.restartCount);
    inst.restartCount++;
    inst.restartScheduledAt = this.deps.clock.now() + delay;
    this.set(inst, "restarting", { lastError: why });
    inst.timer = setTimeout(() => {
      inst.timer = null;
      if (inst.attempt === next && !inst.stopping && !inst.rs.ended) void this.attemptStart(inst, false);
    }, delay);
    inst.timer.unref();
  }

  /** Stop and remove the current container (if any), meter it, and drop its files. Leaves the state as it is. */
  private async halt(inst: Instance) {
    inst.abort?.abort();
    inst.abort = null;
    if (inst.timer) clearTimeout(inst.timer);
    inst.timer = null;
    const id = inst.containerId;
    inst.containerId = null;
    const rt = this.runtime;
    if (id && rt) {
      await rt.stop(id, { timeoutSeconds: 5 }).catch(() => {});
      await rt.remove(id, { force: true }).catch((e) => this.deps.log.warn({ err: e, container: id }, "could not remove a service container"));
    }
    if (id && inst.usageFrom !== null) await this.meter(inst, id, inst.usageFrom, this.deps.clock.now());
    inst.usageFrom = null;
    const p = inst.prepared;
    inst.prepared = null;
    await p?.cleanup();
  }

  private async stopInstance(inst: Instance, why: string) {
    if (inst.stopping) return;
    inst.stopping = true;
    inst.attempt++;
    const had = inst.containerId !== null || inst.state === "running";
    const containerId = inst.containerId;
    await this.halt(inst);
    if (inst.state === "failed" || inst.state === "no_runtime") {
      this.set(inst, inst.state);
    } else {
      inst.restartScheduledAt = null;
      this.set(inst, "stopped");
      if (had) await this.publish(inst, "service.stopped", { reason: why, ...(containerId ? { container_id: containerId } : {}) });
    }
    await inst.write;
  }

  /** Container-seconds of one container of a service (usage.recorded, usage_type "container"). */
  private async meter(inst: Instance, containerId: string, from: number, to: number) {
    const room = inst.rs.active.room;
    await this.recordUsage(room.project_id, {
      room_id: room.id,
      room_name: room.name,
      session_id: inst.rs.active.session.id,
      service_id: inst.rec.id,
      service_name: inst.rec.name,
      container_id: containerId,
      from,
      to,
    });
  }

  /** One `usage.recorded` of container-seconds (services, toolkit containers, scheduled tasks). */
  async recordUsage(projectId: string, u: Record<string, unknown> & { from: number; to: number }) {
    const { from, to, ...rest } = u;
    try {
      const after = await this.deps.bus.publish(this.deps.db, {
        type: "usage.recorded",
        project_id: projectId,
        data: {
          usage_type: "container",
          unit: "container_second",
          quantity: Math.max(0, (to - from) / 1000),
          ...rest,
          started_at: iso(from),
          ended_at: iso(to),
        },
      });
      after();
    } catch {
      // the project is gone
    }
  }

  // ------------------------------------------------------------------ reconciliation

  /**
   * Remove the containers of services whose session is no longer active (a process killed with -9 left them), and
   * mark their rows stopped. Containers of sessions another live process serves are left alone. Runs at start and
   * then every `everyMs`.
   */
  async reconcile(): Promise<number> {
    let removed = 0;
    const now = this.deps.clock.now();
    await hostingRepo.stopStale(this.deps.db, now).catch(() => {});
    const rt = this.runtime;
    // A run is an orphan when a dead process's container of it was found, or when it has no container at all and
    // started long enough ago that a live process would have created one (a grace of two minutes for pulls).
    const grace = now - 120_000;
    if (!rt) {
      await this.deps.failOrphanedRuns?.(async (_id, startedAt) => startedAt < grace).catch(() => {});
      return 0;
    }
    // Scheduled tasks' containers belong to the process that runs them: a dead one's are removed, their runs failed.
    // Only containers of this database's projects: another installation may share the Docker engine.
    const ours = new Map<string, Promise<boolean>>();
    const isOurs = (projectId: string) => {
      let v = ours.get(projectId);
      if (!v) ours.set(projectId, (v = hostingRepo.projectExists(this.deps.db, projectId).catch(() => false)));
      return v;
    };
    const tasks = await listManaged(rt, { kind: "task" }).catch(() => []);
    const deadTaskRuns = new Set<number>();
    const liveTaskRuns = new Set<number>();
    for (const c of tasks) {
      if (!(await isOurs(c.owner.projectId))) continue;
      const run = Number(c.labels["meshagent.task.run"]);
      if (c.owner.server && !(await this.deps.isNodeDead(c.owner.server).catch(() => false))) {
        liveTaskRuns.add(run);
        continue;
      }
      await rt.remove(c.id, { force: true }).catch(() => {});
      deadTaskRuns.add(run);
      removed++;
    }
    await this.deps.failOrphanedRuns?.(async (runId, startedAt) => deadTaskRuns.has(runId) || (!liveTaskRuns.has(runId) && startedAt < grace)).catch(() => {});
    // Service containers and the containers toolkit's: both belong to a session.
    const managed = [...(await listManaged(rt, { kind: "service" }).catch(() => [])), ...(await listManaged(rt, { kind: "container" }).catch(() => []))];
    const verdicts = new Map<string, Promise<"active" | "ended" | "unknown">>();
    for (const c of managed) {
      const sid = c.owner.sessionId;
      if (!sid || !(await isOurs(c.owner.projectId))) continue;
      let v = verdicts.get(sid);
      if (!v) verdicts.set(sid, (v = hostingRepo.sessionState(this.deps.db, sid).catch(() => "active" as const)));
      if ((await v) !== "ended") continue;
      await rt.remove(c.id, { force: true }).catch(() => {});
      removed++;
      this.deps.log.info({ container: c.id, session: sid }, "removed the container of an ended session");
    }
    return removed;
  }

  start(everyMs = 30_000) {
    void this.reconcile().catch((e) => this.deps.log.warn({ err: e }, "container reconciliation failed"));
    this.reconcileTimer = setInterval(() => void this.reconcile().catch(() => {}), everyMs);
    this.reconcileTimer.unref();
  }

  /** Wait for the stops in flight (the room server's stop() ended every session first). */
  async close() {
    if (this.closed) return;
    this.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    await Promise.all([...this.stopping]);
  }
}

function statusOf(i: Instance): ServiceStatus {
  const s: ServiceStatus = { service_id: i.rec.id, state: i.state, restart_count: i.restartCount };
  if (i.containerId) s.container_id = i.containerId;
  if (i.restartScheduledAt !== null) s.restart_scheduled_at = secs(i.restartScheduledAt);
  if (i.startedAt !== null) s.started_at = secs(i.startedAt);
  if (i.lastExitCode !== null) s.last_exit_code = i.lastExitCode;
  if (i.lastExitAt !== null) s.last_exit_at = secs(i.lastExitAt);
  if (i.lastError) s.last_error = i.lastError;
  return s;
}

/** The REST form of a `service_runs` row. */
export function statusOfRow(r: {
  service_id: string;
  state: string;
  container_id: string | null;
  restart_scheduled_at: number | null;
  started_at: number | null;
  restart_count: number;
  last_exit_code: number | null;
  last_exit_at: number | null;
  last_error: string | null;
}): ServiceStatus {
  const s: ServiceStatus = { service_id: r.service_id, state: r.state as ServiceState, restart_count: Number(r.restart_count) };
  if (r.container_id) s.container_id = r.container_id;
  if (r.restart_scheduled_at !== null) s.restart_scheduled_at = Number(r.restart_scheduled_at) / 1000;
  if (r.started_at !== null) s.started_at = Number(r.started_at) / 1000;
  if (r.last_exit_code !== null) s.last_exit_code = Number(r.last_exit_code);
  if (r.last_exit_at !== null) s.last_exit_at = Number(r.last_exit_at) / 1000;
  if (r.last_error) s.last_error = r.last_error;
  return s;
}

function tcpConnect(port: number, signal: AbortSignal): Promise<void> {
  return import("node:net").then(
    ({ connect }) =>
      new Promise<void>((resolve, reject) => {
        const s = connect({ host: "127.0.0.1", port, signal });
        s.once("connect", () => {
          s.destroy();
          resolve();
        });
        s.once("error", reject);
      }),
  );
}

/** The status routes' reads (any process: the rows are in the database). */
export const hostingStatus = {
  /** Every room the service ran in, newest first. */
  async ofService(db: DB, projectId: string, serviceId: string) {
    const rows = await hostingRepo.runsOfService(db, projectId, serviceId);
    return rows.map((r) => ({ ...statusOfRow(r), room_name: r.room_name, session_id: r.session_id }));
  },
  /** The service in one room, or its `stopped` state when it never ran there. */
  async inRoom(db: DB, roomId: string, roomName: string, serviceId: string) {
    const r = await hostingRepo.runInRoom(db, roomId, serviceId);
    return r
      ? { ...statusOfRow(r), room_name: roomName, session_id: r.session_id }
      : { service_id: serviceId, state: "stopped" as const, restart_count: 0, room_name: roomName };
  },
};
