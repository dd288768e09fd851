/**
 * The event catalog: every event a webhook may subscribe to, with the keys of its `data`. Areas publish these on
 * ctx.bus (inside the transaction of the change); the README's "Webhooks" section documents the same list.
 * A webhook's `events` may name an event, "*" (everything), or a prefix wildcard such as "room.*" or "storage.*".
 */
export interface CatalogEntry {
  event: string;
  description: string;
  data: Record<string, string>;
}

export const CATALOG: CatalogEntry[] = [
  // MeshAgent's own events (wire-contract §9)
  { event: "room.started", description: "a room session started", data: { room_name: "string", room_url: "string (wss://…/rooms/{room})" } },
  { event: "room.ended", description: "a room session ended", data: { room_name: "string" } },
  {
    event: "room.call",
    description: "a call handoff to the receiver (webhooks with action \"call\")",
    data: { room_name: "string", room_url: "string", token: "string (participant JWT)", arguments: "object | null" },
  },
  {
    event: "storage.file.updated",
    description: "a file in project or room storage was written",
    data: { path: "string", participant_id: "string | null", room_id: "string (room storage only)", size: "number (bytes)", etag: "string" },
  },
  {
    event: "storage.file.deleted",
    description: "a file was deleted",
    data: { path: "string", participant_id: "string | null", room_id: "string (room storage only)", size: "number (bytes)", etag: "string | null" },
  },
  {
    event: "storage.file.moved",
    description: "a file was moved or renamed",
    data: { source_path: "string", destination_path: "string", participant_id: "string | null" },
  },
  // Ours
  { event: "room.created", description: "a room was created", data: { id: "string", room_name: "string" } },
  { event: "room.updated", description: "a room's metadata or annotations changed", data: { id: "string", room_name: "string" } },
  { event: "room.deleted", description: "a room was deleted", data: { id: "string", room_name: "string" } },
  { event: "grant.changed", description: "a room grant was created, changed or removed", data: { room_name: "string", user_id: "string", change: "\"created\" | \"updated\" | \"deleted\"" } },
  { event: "share.created", description: "a share link was created", data: { id: "string", room_name: "string" } },
  { event: "share.deleted", description: "a share link was deleted", data: { id: "string" } },
  { event: "api_key.created", description: "a project API key was created (never the key itself)", data: { id: "string", name: "string" } },
  { event: "api_key.deleted", description: "a project API key was revoked", data: { id: "string" } },
  { event: "project.created", description: "the project was created", data: { id: "string", name: "string" } },
  { event: "project.user.added", description: "a user was added to the project", data: { user_id: "string" } },
  { event: "project.user.removed", description: "a user was removed from the project", data: { user_id: "string" } },
  {
    event: "scheduled_task.run.succeeded",
    description: "a scheduled task run delivered its message",
    data: { task_id: "string", run_id: "string", room_name: "string", queue: "string" },
  },
  {
    event: "scheduled_task.run.failed",
    description: "a scheduled task run failed",
    data: { task_id: "string", run_id: "string", room_name: "string", queue: "string", error: "string" },
  },
  { event: "billing.balance_low", description: "the project's balance fell below its threshold", data: { balance: "number", threshold: "number", currency: "string" } },
];

/** Sent by POST …/webhooks/{id}/test to that one webhook, whatever it subscribes to. */
export const PING_EVENT = "webhook.test";

const NAMES = new Set(CATALOG.map((e) => e.event));
const PREFIXES = new Set(CATALOG.flatMap((e) => e.event.split(".").slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join("."))));

/** Why a subscription entry is invalid, or null when it is fine. */
export function invalidSubscription(entry: string): string | null {
  if (entry === "*" || NAMES.has(entry)) return null;
  if (entry.endsWith(".*") && PREFIXES.has(entry.slice(0, -2))) return null;
  return `unknown event "${entry}" (see the catalog: e.g. room.started, storage.file.updated, api_key.created, room.*, *)`;
}

/** Does a webhook subscribed to `events` receive `type`? */
export function matches(events: string[], type: string): boolean {
  for (const e of events) {
    if (e === "*" || e === type) return true;
    if (e.endsWith(".*") && type.startsWith(e.slice(0, -1))) return true;
  }
  return false;
}
