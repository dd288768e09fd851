import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { projectRoutes, projectSchemas } from "./routes.js";

const events: EventSpec[] = [
  { event: "project.created", description: "the project was created", data: { id: "string", name: "string" } },
  { event: "project.user.added", description: "a user was added to the project", data: { user_id: "string" } },
  { event: "project.user.removed", description: "a user was removed from the project", data: { user_id: "string" } },
];

/** The projects area: projects, members and their roles. */
export const projectsDomain: Domain = { name: "projects", routes: projectRoutes, schemas: projectSchemas, events };
