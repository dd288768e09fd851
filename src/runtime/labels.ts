import type { ContainerRuntime, ContainerSummary } from "./types.js";

/**
 * Labels on every container the server creates, so that a restarted server (or another process of the same database)
 * finds its containers by label alone and reconciles them with the rooms that are live: `meshagent.managed=1` plus
 * who the container belongs to. Keys and values stay within what Kubernetes allows for labels too.
 */
export const LABEL = {
  managed: "meshagent.managed",
  /** What started it: a room's service, a scheduled task, or the room `containers` toolkit. */
  kind: "meshagent.kind",
  project: "meshagent.project",
  room: "meshagent.room",
  session: "meshagent.session",
  service: "meshagent.service",
  revision: "meshagent.service.revision",
  task: "meshagent.task",
  /** The server instance that created it (informational: ownership of a room can move between processes). */
  server: "meshagent.server",
} as const;

export type ManagedKind = "service" | "task" | "container";

/** Who a managed container belongs to. */
export interface ManagedOwner {
  kind: ManagedKind;
  projectId: string;
  roomId?: string;
  sessionId?: string;
  serviceId?: string;
  revision?: number;
  taskId?: string;
  server?: string;
}

/** The labels for a container of `owner` (merge extra labels of your own after these, not over them). */
export function managedLabels(owner: ManagedOwner): Record<string, string> {
  const labels: Record<string, string> = { [LABEL.managed]: "1", [LABEL.kind]: owner.kind, [LABEL.project]: owner.projectId };
  const put = (key: string, value: string | number | undefined) => {
    if (value !== undefined) labels[key] = String(value);
  };
  put(LABEL.room, owner.roomId);
  put(LABEL.session, owner.sessionId);
  put(LABEL.service, owner.serviceId);
  put(LABEL.revision, owner.revision);
  put(LABEL.task, owner.taskId);
  put(LABEL.server, owner.server);
  return labels;
}

/** The owner recorded in a container's labels, or null when it is not one of ours. */
export function ownerOf(labels: Record<string, string>): ManagedOwner | null {
  if (labels[LABEL.managed] !== "1") return null;
  const kind = labels[LABEL.kind];
  const projectId = labels[LABEL.project];
  if ((kind !== "service" && kind !== "task" && kind !== "container") || !projectId) return null;
  const owner: ManagedOwner = { kind, projectId };
  if (labels[LABEL.room]) owner.roomId = labels[LABEL.room];
  if (labels[LABEL.session]) owner.sessionId = labels[LABEL.session];
  if (labels[LABEL.service]) owner.serviceId = labels[LABEL.service];
  if (labels[LABEL.revision] && /^\d+$/.test(labels[LABEL.revision])) owner.revision = Number(labels[LABEL.revision]);
  if (labels[LABEL.task]) owner.taskId = labels[LABEL.task];
  if (labels[LABEL.server]) owner.server = labels[LABEL.server];
  return owner;
}

export interface ManagedContainer extends ContainerSummary {
  owner: ManagedOwner;
}

/** The label filter for a (partial) owner: `{kind: "service", roomId}` → the service containers of that room. */
function filterOf(match: Partial<ManagedOwner>): Record<string, string> {
  const filter: Record<string, string> = { [LABEL.managed]: "1" };
  const keys: [keyof ManagedOwner, string][] = [
    ["kind", LABEL.kind],
    ["projectId", LABEL.project],
    ["roomId", LABEL.room],
    ["sessionId", LABEL.session],
    ["serviceId", LABEL.service],
    ["revision", LABEL.revision],
    ["taskId", LABEL.task],
    ["server", LABEL.server],
  ];
  for (const [field, label] of keys) if (match[field] !== undefined) filter[label] = String(match[field]);
  return filter;
}

/** Our containers (running or not) whose owner matches every field given. */
export async function listManaged(runtime: ContainerRuntime, match: Partial<ManagedOwner> = {}): Promise<ManagedContainer[]> {
  const out: ManagedContainer[] = [];
  for (const c of await runtime.list(filterOf(match))) {
    const owner = ownerOf(c.labels);
    if (owner) out.push({ ...c, owner });
  }
  return out;
}

/**
 * Reconcile: remove (force) every managed container matching `match` whose owner `keep` does not claim, e.g. after a
 * restart every service container of a room whose session is no longer live. Resolves with the removed ones; a
 * container that vanished meanwhile counts as removed, any other failure is collected and rethrown at the end (as an
 * AggregateError) so that one stuck container does not keep the others.
 */
export async function removeOrphans(
  runtime: ContainerRuntime,
  keep: (owner: ManagedOwner, container: ManagedContainer) => boolean | Promise<boolean>,
  match: Partial<ManagedOwner> = {},
): Promise<ManagedContainer[]> {
  const removed: ManagedContainer[] = [];
  const errors: unknown[] = [];
  for (const c of await listManaged(runtime, match)) {
    try {
      if (await keep(c.owner, c)) continue;
      await runtime.remove(c.id, { force: true });
      removed.push(c);
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, `removing orphaned containers: ${errors.length} failed`);
  return removed;
}
