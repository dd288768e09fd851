/**
 * The key space of the blob store. Every storage area derives its keys here, so no two areas can collide and a
 * validated path of one scope can never reach another scope's keys:
 *
 *   projects/<project_id>/<path>   project storage (REST /projects/{id}/storage/…)
 *   rooms/<room_id>/<path>         room storage (the room server's storage toolkit)
 *
 * `path` must already be validated by storage/paths.ts (relative, no empty/./.. segments).
 */
export type StorageScope = { kind: "project"; projectId: string } | { kind: "room"; projectId: string; roomId: string };

export const projectScope = (projectId: string): StorageScope => ({ kind: "project", projectId });
export const roomScope = (projectId: string, roomId: string): StorageScope => ({ kind: "room", projectId, roomId });

/** "projects/<id>/" or "rooms/<id>/": the prefix that holds everything of one scope. */
export function scopePrefix(scope: StorageScope): string {
  return scope.kind === "project" ? `projects/${scope.projectId}/` : `rooms/${scope.roomId}/`;
}

/** The blob key of a file ("" is the scope's root, which is only ever a folder). */
export function blobKey(scope: StorageScope, path: string): string {
  return scopePrefix(scope) + path;
}

/** The key prefix of a folder: "" → the scope root, "a/b" → ".../a/b/". */
export function folderPrefix(scope: StorageScope, path: string): string {
  return scopePrefix(scope) + (path ? path + "/" : "");
}

/** A short stable name of a scope for database rows ("projects/<id>" or "rooms/<id>"). */
export function scopeId(scope: StorageScope): string {
  return scopePrefix(scope).slice(0, -1);
}

export function scopeFromId(id: string, projectId: string): StorageScope {
  const [kind, sid] = id.split("/", 2);
  if (kind === "projects") return projectScope(sid);
  if (kind === "rooms") return roomScope(projectId, sid);
  throw new Error(`unknown storage scope ${id}`);
}
