import { createContext, useContext } from "react";
import type { Project } from "@meshagent-oss/sdk";

export type Role = "admin" | "developer" | "member" | "none";

export interface ProjectInfo {
  project: Project;
  role: Role;
  canCreateRooms: boolean;
}

/** What the signed-in user may do in the current project; pages show only what their role allows (the API's rules). */
export interface Abilities {
  /** Members, API keys, secrets, webhooks, OAuth clients, billing, settings: admins. */
  admin: boolean;
  /** Services, sessions, scheduled tasks, mailboxes: admins and developers. */
  developer: boolean;
  createRooms: boolean;
}

export function abilities(info: Pick<ProjectInfo, "role" | "canCreateRooms"> | null): Abilities {
  const admin = info?.role === "admin";
  const developer = admin || info?.role === "developer";
  return { admin, developer, createRooms: admin || !!info?.canCreateRooms };
}

export const ProjectContext = createContext<ProjectInfo | null>(null);

/** The current project (pages under /projects/:project only). */
export function useProject(): ProjectInfo & { can: Abilities } {
  const p = useContext(ProjectContext);
  if (!p) throw new Error("useProject outside a project page");
  return { ...p, can: abilities(p) };
}

export interface Me {
  id: string;
  email: string;
  name?: string;
}
export const MeContext = createContext<Me | null>(null);
export const useMe = () => useContext(MeContext);
