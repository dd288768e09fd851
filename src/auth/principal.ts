import { forbidden } from "../core/errors.js";

/** Who is calling: a project API key, a user (access token), or a participant JWT (a room service acting in a room). */
export type Principal = { kind: "api_key"; keyId: string; projectId: string } | UserPrincipal | ParticipantPrincipal;

/**
 * A user: a personal access token (every right the user has), or an OAuth access token, which carries `scopes` (only
 * what they allow: src/auth/scopes.ts) and, when a project's client got it, that `projectId` (it acts there only).
 */
export interface UserPrincipal {
  kind: "user";
  userId: string;
  tokenId: string;
  scopes?: string[];
  projectId?: string;
}

/**
 * A verified participant JWT (minted by connect_room / connect_share, or signed by a client with its API key).
 * Narrow rights: it acts in its own project (`sub`) as a plain member without a user, may read its own room
 * (`room` grant) and nothing project-wide; `api` is the token's ApiScope for the room server to enforce.
 */
export interface ParticipantPrincipal {
  kind: "participant";
  /** The kid that signed the token (an API key id or a project signing key id). */
  keyId: string;
  projectId: string;
  name: string;
  /** The `room` grant, when present. */
  room?: string;
  role: string;
  api?: Record<string, unknown>;
  /** `exp` in epoch seconds, when the token has one. */
  exp?: number;
}

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

/** A stable id for "who did this" columns: the user id, "api_key:<key id>" or "participant:<kid>". */
export function actorId(p: Principal): string {
  return p.kind === "user" ? p.userId : `${p.kind}:${p.keyId}`;
}

/** The caller's role must be at least `min` (403 otherwise); the access gate and domain rules share the message. */
export function requireRole(access: ProjectAccess, min: Role) {
  if (!atLeast(access.role, min)) throw forbidden(`this call needs the ${min} role in the project; you are ${access.role}`);
}
