import type { EventSpec } from "../core/events.js";
import type { Domain } from "../domain.js";
import { serviceRoutes, serviceSchemas } from "./routes.js";

const data = { id: "string", name: "string (metadata.name)", room_name: "string (room services only)" };
const events: EventSpec[] = [
  { event: "service.created", description: "a project or room service was created", data },
  { event: "service.updated", description: "a service's spec was replaced", data },
  { event: "service.deleted", description: "a service was deleted", data },
];

/** The services area: project and room ServiceSpec records, templates (spec.ts, template.ts). */
export const servicesDomain: Domain = { name: "services", routes: serviceRoutes, schemas: serviceSchemas, events };
