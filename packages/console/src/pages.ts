import { lazy, type ComponentType, type LazyExoticComponent } from "react";
import type { Abilities } from "./project";

export interface PageProps {
  params: Record<string, string>;
}

export interface RouteDef {
  pattern: string;
  page: LazyExoticComponent<ComponentType<PageProps>>;
  /** In the project menu (project pages), with who may see it. */
  nav?: { label: string; needs?: keyof Abilities };
}

const page = (load: () => Promise<{ default: ComponentType<PageProps> }>) => lazy(load);

/** Every page of the console, loaded on demand (so the first load carries only the shell and the current page). */
export const routes: RouteDef[] = [
  { pattern: "/", page: page(() => import("./pages/projects")) },
  { pattern: "/account/tokens", page: page(() => import("./pages/tokens")) },
  { pattern: "/projects/:project/rooms", page: page(() => import("./pages/rooms")), nav: { label: "Rooms" } },
  { pattern: "/projects/:project/rooms/:room", page: page(() => import("./pages/room")) },
  { pattern: "/projects/:project/rooms/:room/grants", page: page(() => import("./pages/room-grants")) },
  { pattern: "/projects/:project/grants", page: page(() => import("./pages/user-grants")), nav: { label: "Room grants", needs: "developer" } },
  { pattern: "/projects/:project/members", page: page(() => import("./pages/members")), nav: { label: "Members", needs: "admin" } },
  { pattern: "/projects/:project/api-keys", page: page(() => import("./pages/api-keys")), nav: { label: "API keys", needs: "admin" } },
  { pattern: "/projects/:project/services", page: page(() => import("./pages/services")), nav: { label: "Services", needs: "developer" } },
  { pattern: "/projects/:project/services/:service", page: page(() => import("./pages/service")) },
  { pattern: "/projects/:project/secrets", page: page(() => import("./pages/secrets")), nav: { label: "Secrets", needs: "developer" } },
  { pattern: "/projects/:project/webhooks", page: page(() => import("./pages/webhooks")), nav: { label: "Webhooks", needs: "admin" } },
  { pattern: "/projects/:project/webhooks/:webhook", page: page(() => import("./pages/webhook")) },
  { pattern: "/projects/:project/mailboxes", page: page(() => import("./pages/mailboxes")), nav: { label: "Mailboxes", needs: "developer" } },
  { pattern: "/projects/:project/sessions", page: page(() => import("./pages/sessions")), nav: { label: "Sessions", needs: "developer" } },
  { pattern: "/projects/:project/sessions/:session", page: page(() => import("./pages/session")) },
  { pattern: "/projects/:project/scheduled-tasks", page: page(() => import("./pages/scheduled-tasks")), nav: { label: "Scheduled tasks", needs: "developer" } },
  { pattern: "/projects/:project/scheduled-tasks/:task", page: page(() => import("./pages/scheduled-task")) },
  { pattern: "/projects/:project/billing", page: page(() => import("./pages/billing")), nav: { label: "Billing", needs: "admin" } },
  { pattern: "/projects/:project/oauth-clients", page: page(() => import("./pages/oauth-clients")), nav: { label: "OAuth clients", needs: "admin" } },
  { pattern: "/projects/:project/settings", page: page(() => import("./pages/settings")), nav: { label: "Settings", needs: "admin" } },
];
