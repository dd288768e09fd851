import { ApiError } from "../core/errors.js";
import type { Principal, Role } from "./principal.js";

/**
 * What an OAuth access token's scopes allow (personal access tokens, API keys and participant tokens have no scopes
 * and are not limited here). A route needs:
 * - `project/*` or `project/<its project id>` for anything under a project (and `project/*`, or any project scope, to
 *   list or create projects);
 * - `room/*` or `room/<room name>` for the routes of rooms (`…/rooms…`);
 * - `developer` (or `admin`) where the developer role is needed, `admin` where the admin role is (the token acts
 *   with the lower of the user's role and what its scopes allow), `admin` for server administration;
 * - `profile` for the caller's own profile and tokens (`/accounts/profiles…`);
 * - what the route declares besides (`config.scopes`): `create_rooms`, `update_room`, `delete_room`, `connect_room`,
 *   `create_users`.
 */
export interface ScopeNeeds {
  project: boolean;
  room: boolean;
  named: string[];
}

export function scopeNeeds(url: string, access: string, declared: string[] = []): ScopeNeeds {
  const underProject = url.includes(":project_id");
  const named = [...declared];
  if (url.startsWith("/accounts/profiles")) named.push("profile");
  if (access === "server_admin") named.push("admin");
  return {
    project: underProject || (access === "user" && url.startsWith("/accounts/projects")),
    room: underProject && /\/rooms(\/|$)/.test(url),
    named,
  };
}

const insufficient = (what: string) =>
  new ApiError(403, "insufficient_scope", `this OAuth token lacks the ${what} scope: sign in again asking for it (meshagent auth login)`);

const has = (scopes: string[], s: string) => scopes.includes(s);
const hasProject = (scopes: string[], projectId?: string) =>
  has(scopes, "project/*") || (projectId ? has(scopes, `project/${projectId}`) : scopes.some((s) => s.startsWith("project/")));
const hasRoom = (scopes: string[], room?: string) => has(scopes, "room/*") || (room ? has(scopes, `room/${room}`) : false);

/** The highest project role a token's scopes allow. */
export const scopeRole = (scopes: string[]): Role => (has(scopes, "admin") ? "admin" : has(scopes, "developer") ? "developer" : "member");

/** Refuses (403 insufficient_scope) a scoped token that lacks what the route needs. */
export function checkScopes(p: Principal, needs: ScopeNeeds, params: { project_id?: string; room_name?: string; room_id?: string }) {
  if (p.kind !== "user" || !p.scopes) return;
  const scopes = p.scopes;
  if (needs.project && !hasProject(scopes, params.project_id))
    throw insufficient(params.project_id ? `project/* (or project/${params.project_id})` : "project/*");
  if (needs.room && !hasRoom(scopes, params.room_name ?? params.room_id)) throw insufficient("room/*");
  for (const s of needs.named) if (!has(scopes, s)) throw insufficient(s);
}

/** A project role needed of a scoped token: its scopes must allow that role. */
export function checkScopeRole(p: Principal, min: Role) {
  if (p.kind !== "user" || !p.scopes || min === "member") return;
  const r = scopeRole(p.scopes);
  if (min === "developer" && r === "member") throw insufficient("developer");
  if (min === "admin" && r !== "admin") throw insufficient("admin");
}
