import type { ProjectAccess } from "../auth/principal.js";

/**
 * Who may read and write project storage.
 *
 * | caller                                  | read | write (upload, delete) |
 * |-----------------------------------------|------|------------------------|
 * | the project's API keys                  | yes  | yes                    |
 * | project admins (and the owner)          | yes  | yes                    |
 * | project developers                      | yes  | yes                    |
 * | project members                         | yes  | no (see below)         |
 * | anyone else (other projects, no member) | 404  | 404                    |
 *
 * Members are meant to get what the `storage` section of their room grants' ApiScope allows
 * (wire-contract §7.3, `{paths?: [{path, read_only}]}`, prefix rules as in room-protocol §5). Room grants are built
 * by another area; until they are connected, `memberStorageScope` gives every member the read-only scope below.
 * To connect grants, make it return the union of the member's grants' `storage` sections (null = no access).
 */

/** The `storage` section of an ApiScope. `paths` absent/null means every path. */
export interface StorageApiScope {
  paths?: { path: string; read_only?: boolean | null }[] | null;
}

export interface StoragePermissions {
  canRead(path: string): boolean;
  canWrite(path: string): boolean;
  /** Whether a list entry (file or folder) may be shown: readable itself, or a folder that leads to a readable path. */
  canSee(path: string, isFolder: boolean): boolean;
}

export const FULL_ACCESS: StoragePermissions = { canRead: () => true, canWrite: () => true, canSee: () => true };
export const NO_ACCESS: StoragePermissions = { canRead: () => false, canWrite: () => false, canSee: () => false };

/** The read-only scope every member gets until room grants are connected (see the table above). */
export const MEMBER_READ_ONLY_SCOPE: StorageApiScope = { paths: [{ path: "", read_only: true }] };

/**
 * The rules of the official clients for a `storage` scope: read when some grant path is a prefix of the path;
 * write when the *first* grant whose path is a prefix is not read-only. Matching is a plain string prefix.
 */
export function permissionsFromScope(scope: StorageApiScope | null | undefined): StoragePermissions {
  if (!scope) return NO_ACCESS;
  const paths = scope.paths;
  if (paths === undefined || paths === null) return FULL_ACCESS;
  const canRead = (p: string) => paths.some((g) => p.startsWith(g.path));
  return {
    canRead,
    canWrite: (p) => {
      const first = paths.find((g) => p.startsWith(g.path));
      return !!first && !first.read_only;
    },
    canSee: (p, isFolder) => canRead(p) || (isFolder && paths.some((g) => g.path.startsWith(p + "/"))),
  };
}

/** The storage scope of a member (not admin, not developer). The one place to connect room grants. */
export async function memberStorageScope(_access: ProjectAccess): Promise<StorageApiScope | null> {
  return MEMBER_READ_ONLY_SCOPE;
}

/** What the caller may do in its project's storage. */
export async function projectStoragePermissions(access: ProjectAccess): Promise<StoragePermissions> {
  if (access.principal.kind === "api_key" || access.role === "admin" || access.role === "developer") return FULL_ACCESS;
  return permissionsFromScope(await memberStorageScope(access));
}

/** The id put in events as `participant_id`: the user id, or the API key id. */
export function participantIdOf(access: ProjectAccess): string {
  return access.principal.kind === "user" ? access.principal.userId : access.principal.keyId;
}
