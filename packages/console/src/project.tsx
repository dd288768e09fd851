import { createContext, useContext, type ReactNode } from "react";
import type { Project } from "@meshagent-oss/sdk";
import { accessNote } from "./ops-lib";
import { Empty, Page } from "./ui";

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

/**
 * A page only some roles may use (the API refuses the others): its content for them, and for everyone else the page's
 * title with why it is empty and whom to ask. `what` names the page's things, plural ("webhooks").
 */
export function RoleGate({
  need,
  title,
  what,
  children,
}: {
  need: "admin" | "developer";
  title: string;
  what: string;
  children: (p: ProjectInfo) => ReactNode;
}) {
  const p = useProject();
  if (p.can[need]) return <>{children(p)}</>;
  const noun = what.charAt(0).toUpperCase() + what.slice(1);
  return (
    <Page title={title}>
      <Empty title={`${noun} ${what === "billing" ? "is" : "are"} for ${need === "admin" ? "administrators" : "developers"}`}>{accessNote(need, what)}</Empty>
    </Page>
  );
}
