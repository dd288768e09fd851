/** Who is calling. Participant JWTs join this union with the rooms area. */
export type Principal =
  | { kind: "api_key"; keyId: string; projectId: string }
  | { kind: "user"; userId: string; tokenId: string };

export type Role = "admin" | "developer" | "member";

/** What the caller may do in one project, resolved once per request. */
export interface ProjectAccess {
  projectId: string;
  principal: Principal;
  role: Role;
  isOwner: boolean;
  canCreateRooms: boolean;
  canUseLlmProxy: boolean;
  /** The calling user, when the caller is a user (undefined for API keys). */
  userId?: string;
}

const RANK: Record<Role, number> = { member: 0, developer: 1, admin: 2 };
export const atLeast = (role: Role, min: Role) => RANK[role] >= RANK[min];

/** A stable id for "who did this" columns: the user id, or "api_key:<key id>". */
export function actorId(p: Principal): string {
  return p.kind === "user" ? p.userId : `${p.kind}:${p.keyId}`;
}
